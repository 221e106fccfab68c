"""Bars: loading, validation, the embedded sample market, resampling and wide views.

>>> import alphatrade_lab as atl
>>> bars = atl.data.load_sample()
>>> atl.data.resample(bars, "1D").groupby("symbol").size().min() >= 360
True
"""

from alphatrade_lab.data.io import load
from alphatrade_lab.data.resample import bar_length, resample, to_wide
from alphatrade_lab.data.sample import SAMPLE_SEED, SYMBOLS, load_sample, sample_path, synthetic
from alphatrade_lab.data.schema import BAR_COLUMNS, PRICE_COLUMNS, validate

__all__ = [
    "BAR_COLUMNS",
    "PRICE_COLUMNS",
    "SAMPLE_SEED",
    "SYMBOLS",
    "bar_length",
    "load",
    "load_sample",
    "resample",
    "sample_path",
    "synthetic",
    "to_wide",
    "validate",
]
