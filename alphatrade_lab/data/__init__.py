"""Bars: loading, validation, the embedded sample market, resampling and wide views.

>>> import alphatrade_lab as atl
>>> bars = atl.data.load_sample()
>>> int(atl.data.resample(bars, "1D").groupby("symbol").size().min())
365
"""

from alphatrade_lab.data.io import load
from alphatrade_lab.data.news import SAMPLE_COMPANIES, synthetic_news
from alphatrade_lab.data.resample import bar_length, resample, to_wide
from alphatrade_lab.data.sample import (
    REGIME_NAMES,
    SAMPLE_SEED,
    SYMBOLS,
    load_sample,
    sample_path,
    sample_regimes,
    synthetic,
)
from alphatrade_lab.data.schema import BAR_COLUMNS, PRICE_COLUMNS, validate
from alphatrade_lab.data.summary import plot_bars, summarize

__all__ = [
    "BAR_COLUMNS",
    "PRICE_COLUMNS",
    "REGIME_NAMES",
    "SAMPLE_COMPANIES",
    "SAMPLE_SEED",
    "SYMBOLS",
    "bar_length",
    "load",
    "load_sample",
    "plot_bars",
    "resample",
    "sample_path",
    "sample_regimes",
    "summarize",
    "synthetic",
    "synthetic_news",
    "to_wide",
    "validate",
]
