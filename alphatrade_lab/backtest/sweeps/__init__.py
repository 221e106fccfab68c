"""Parameter sweeps: fused numba backtests of many parameter sets, locally or on Dask."""

from alphatrade_lab.backtest.sweeps.api import DEFAULT_METRICS, split_sample, sweep, sweep_ma_cross
from alphatrade_lab.backtest.sweeps.plot import heatmap, top_k
from alphatrade_lab.backtest.sweeps.stats import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
)
from alphatrade_lab.backtest.sweeps.strategies import (
    BOLLINGER_REVERSION,
    DONCHIAN_BREAKOUT,
    MA_CROSS,
    RSI_REVERSAL,
    STRATEGIES,
    Strategy,
)

__all__ = [
    "BOLLINGER_REVERSION",
    "DEFAULT_METRICS",
    "DONCHIAN_BREAKOUT",
    "MA_CROSS",
    "RSI_REVERSAL",
    "STRATEGIES",
    "Strategy",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "heatmap",
    "probabilistic_sharpe_ratio",
    "split_sample",
    "sweep",
    "sweep_ma_cross",
    "top_k",
]
