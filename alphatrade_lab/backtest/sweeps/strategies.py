"""Strategies for sweeps: a signal kernel, its parameter names and which combinations are valid."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.backtest.sweeps import kernels as nb

__all__ = ["BOLLINGER_REVERSION", "DONCHIAN_BREAKOUT", "MA_CROSS", "RSI_REVERSAL", "STRATEGIES",
           "Strategy"]


@dataclass(frozen=True, eq=False)
class Strategy:
    """A signal kernel and the names of its parameters.

    Parameters
    ----------
    name
        Label used in results and error messages.
    params
        Names of the parameters, in the order the kernel reads them from ``params``.
    signals_nb
        A numba function ``f(close, params, entries, exits)`` that fills the boolean
        arrays ``entries`` and ``exits`` from the 1-D ``close`` of one column and the
        float64 vector ``params``, using for bar ``i`` nothing after ``close[i]``.
    valid
        Optional filter of parameter combinations, for example
        ``lambda p: p["fast"] < p["slow"]``. It is called once with a dict of arrays
        (every combination's value of each parameter) and should return a boolean
        array; a function that only handles one combination (a dict of scalars) at a
        time is called once per combination instead.
    windows
        The parameters that are look-back lengths in bars: a combination where one is
        not shorter than the data cannot signal, and :func:`~alphatrade_lab.backtest.sweep`
        and :meth:`signals` warn about it instead of reporting 0 trades in silence.

    Examples
    --------
    A momentum strategy: buy when the close is above its value ``lag`` bars ago by
    more than ``threshold``, sell when it is below by as much.

    >>> import numpy as np
    >>> from numba import njit
    >>> @njit
    ... def momentum_nb(close, params, entries, exits):
    ...     lag, threshold = int(params[0]), params[1]
    ...     for i in range(close.shape[0]):
    ...         change = close[i] / close[i - lag] - 1.0 if i >= lag else np.nan
    ...         entries[i] = change > threshold
    ...         exits[i] = change < -threshold
    >>> momentum = Strategy("momentum", ("lag", "threshold"), momentum_nb)
    >>> import alphatrade_lab as atl
    >>> close = atl.data.to_wide(atl.data.resample(atl.data.load_sample(["AAA"]), "1h"), "close")
    >>> grid = {"lag": [12, 24, 48], "threshold": [0.01, 0.02]}
    >>> res = atl.backtest.sweep(close, momentum, grid, fees=0.001, progress=False)
    >>> res.index.names
    FrozenList(['lag', 'threshold', 'symbol'])
    """

    name: str
    params: tuple[str, ...]
    signals_nb: Callable
    valid: Callable[[dict], Any] | None = None
    windows: tuple[str, ...] = ()

    @cached_property
    def kernel(self):
        """The fused parallel sweep kernel for this strategy (compiled on first call)."""
        return nb.make_sweep_kernel(self.signals_nb)

    def signals(self, close: np.ndarray, params) -> tuple[np.ndarray, np.ndarray]:
        """Entries and exits of one parameter set on a 2-D close array (the unfused path)."""
        close = np.asarray(close, dtype=np.float64)
        close = close.reshape(-1, 1) if close.ndim == 1 else close
        vector = np.asarray(params, dtype=np.float64)
        if vector.shape == (len(self.params),):
            warn_long_windows(self, pd.DataFrame([vector], columns=list(self.params)),
                              close.shape[0])
        entries = np.zeros(close.shape, dtype=bool)
        exits = np.zeros(close.shape, dtype=bool)
        for j in range(close.shape[1]):
            e = np.zeros(close.shape[0], dtype=bool)
            x = np.zeros(close.shape[0], dtype=bool)
            self.signals_nb(np.ascontiguousarray(close[:, j]), vector, e, x)
            entries[:, j], exits[:, j] = e, x
        return entries, exits


def warn_long_windows(strategy: Strategy, combos: pd.DataFrame, n_bars: int) -> None:
    """Warn (``UserWarning``) when a window parameter of some combinations is not shorter
    than the ``n_bars`` bars of data: those combinations cannot signal."""
    too_long = np.zeros(len(combos), dtype=bool)
    worst = None
    for p in strategy.windows:
        hit = combos[p].to_numpy(dtype=np.float64) >= n_bars
        if hit.any() and (worst is None or combos[p].max() > worst[1]):
            worst = (p, combos[p].max())
        too_long |= hit
    if worst is None:
        return
    p, value = worst
    warnings.warn(f"{strategy.name}: {p}={value:g} is not shorter than the data ({n_bars} "
                  f"bars): {int(too_long.sum())} of {len(combos)} parameter combinations "
                  f"have a window of {n_bars} bars or more and cannot signal (0 trades); use "
                  f"windows under {n_bars} bars, or more bars (a finer timeframe or a longer "
                  "history)", UserWarning, stacklevel=3)


def _fast_below_slow(p: dict) -> Any:
    return p["fast"] < p["slow"]


MA_CROSS = Strategy("ma_cross", ("fast", "slow"), nb.ma_cross_signals_nb, _fast_below_slow,
                    windows=("fast", "slow"))
RSI_REVERSAL = Strategy("rsi_reversal", ("window", "lower", "upper"),
                        nb.rsi_reversal_signals_nb, lambda p: p["lower"] < p["upper"],
                        windows=("window",))
BOLLINGER_REVERSION = Strategy("bollinger_reversion", ("window", "k"),
                               nb.bollinger_reversion_signals_nb, windows=("window",))
DONCHIAN_BREAKOUT = Strategy("donchian_breakout", ("window",), nb.donchian_breakout_signals_nb,
                             windows=("window",))

STRATEGIES: dict[str, Strategy] = {s.name: s for s in
                                   (MA_CROSS, RSI_REVERSAL, BOLLINGER_REVERSION, DONCHIAN_BREAKOUT)}
