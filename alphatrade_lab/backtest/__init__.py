"""Numba backtests: signals and target weights in, a labelled :class:`Portfolio` out.

>>> import numpy as np
>>> import alphatrade_lab as atl
>>> from alphatrade_lab import backtest
>>> close = atl.data.to_wide(atl.data.load_sample(), "close").iloc[:2000]
>>> fast, slow = close.rolling(20).mean(), close.rolling(80).mean()
>>> pf = backtest.from_signals(close, fast > slow, fast < slow, fees=0.001)
>>> list(pf.equity.columns) == list(close.columns)
True
"""

from alphatrade_lab.backtest.frames import (
    daily_performance_frame,
    fingerprint,
    portfolio_frames,
    trades_frame,
)
from alphatrade_lab.backtest.metrics import STAT_NAMES
from alphatrade_lab.backtest.portfolio import Portfolio
from alphatrade_lab.backtest.simulate import from_signals, from_signals_chunked, from_weights
from alphatrade_lab.backtest.sweeps import (
    STRATEGIES,
    Strategy,
    deflated_sharpe_ratio,
    heatmap,
    split_sample,
    sweep,
    sweep_ma_cross,
    top_k,
)

__all__ = [
    "STAT_NAMES",
    "STRATEGIES",
    "Portfolio",
    "Strategy",
    "daily_performance_frame",
    "deflated_sharpe_ratio",
    "fingerprint",
    "from_signals",
    "from_signals_chunked",
    "from_weights",
    "heatmap",
    "portfolio_frames",
    "split_sample",
    "sweep",
    "sweep_ma_cross",
    "top_k",
    "trades_frame",
]
