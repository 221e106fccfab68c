"""Technical features of long-form bars, computed per symbol by numba kernels.

Definitions (``c`` close, ``h`` high, ``l`` low, ``v`` volume, ``r`` the 1-bar log
return ``log(c[t] / c[t-1])``; all windows are trailing, include bar t, and never
cross into another symbol; a rolling value needs a *full* window and is NaN before):

=====================  ==================================================================
``ret_{h}``            ``log(c[t] / c[t-h])``
``vol_{w}``            sample std (ddof=1) of ``r`` over ``w`` bars (pandas ``rolling.std``)
``ma_dist_{w}``        ``c / SMA_w(c) - 1``
``rsi_{w}``            Wilder's RSI: average gain and loss of close changes smoothed with
                       ``avg += (x - avg) / w`` after an SMA seed of the first ``w``
                       changes; ``100 * gain / (gain + loss)``. First value at a symbol's
                       row ``w``. 100 if prices only rose; **50 if prices have not moved
                       at all** since the symbol's first bar (0/0: neither side leads).
                       The sweeps' ``rsi_reversal`` uses this same kernel.
``macd``               ``EMA_fast(c) - EMA_slow(c)`` in price units; EMAs with
                       ``alpha = 2 / (span + 1)`` started at the symbol's first close
                       (pandas ``ewm(span, adjust=False)``); NaN for the first
                       ``slow - 1`` rows
``macd_signal``        ``EMA_signal(macd)`` (same recursion, started at the first bar);
                       NaN for the first ``slow + signal - 2`` rows
``macd_hist``          ``macd - macd_signal``
``atr_{w}``            Wilder's ATR in price units of the true range
                       ``max(h - l, |h - c[t-1]|, |l - c[t-1]|)`` (from the 2nd bar), SMA
                       seed of the first ``w`` true ranges; first value at row ``w``
``bb_pctb_{w}``        Bollinger %b ``(c - lower) / (upper - lower)``, bands
                       ``SMA_w(c) ± k * std_w(c)`` with the *population* std (ddof=0,
                       Bollinger's definition); NaN when the std is 0 (flat prices)
``volume_z_{w}``       ``(v - mean_w(v)) / std_w(v)`` with the sample std; **NaN, never
                       inf, when the std is 0** (e.g. a run of zero volume)
``hl_range``           ``(h - l) / c`` of the bar itself
``skew_{w}``           bias-corrected skew of ``r`` over ``w`` bars (adjusted
                       Fisher-Pearson G1, as pandas ``rolling.skew`` and
                       ``scipy.stats.skew(bias=False)``); NaN when the variance is 0
=====================  ==================================================================

A symbol with fewer bars than a window simply gets NaN for that feature.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import pandas as pd

from alphatrade_lab.features import kernels as nb
from alphatrade_lab.features._input import check_bars, utc_timestamps
from alphatrade_lab.features.spec import FeatureSpec

__all__ = ["technical"]

_WHERE = "technical"


def technical(bars: pd.DataFrame, spec: FeatureSpec | None = None, **windows: Any
              ) -> pd.DataFrame:
    """Technical features per symbol, one row per bar.

    Parameters
    ----------
    bars
        Long-form bars sorted by (symbol, timestamp) and unique per pair (as returned
        by :func:`alphatrade_lab.data.validate`); only ``timestamp, symbol, high, low,
        close, volume`` are used.
    spec
        The windows (:class:`FeatureSpec`); default ``FeatureSpec()``.
    **windows
        Overrides of single spec fields (``rsi_window=7``, ``ma_windows=(10, 30)``),
        applied on top of ``spec``.

    Returns
    -------
    pandas.DataFrame
        Long form, same rows, order and index as ``bars``: the columns ``timestamp``
        (UTC; naive input read as UTC) and ``symbol`` followed by ``spec.feature_names``
        (float64; definitions in the module docstring). A value at bar t uses bars up
        to and including t of the same symbol only, so it is known at t's close.
        ``result.attrs["feature_spec"]`` holds ``spec.to_dict()``.

    Raises
    ------
    DataError
        When a needed column is missing, a price is not finite and > 0, a volume is
        negative or not finite, or the rows are not sorted by (symbol, timestamp) or
        repeat a pair (the message names the column and the first offending row).
    ValueError
        For a bad window, naming the argument (see :class:`FeatureSpec`).

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> bars = atl.data.load_sample(["AAA", "BBB"]).groupby("symbol").head(500)
    >>> X = atl.features.technical(bars, rsi_window=7)
    >>> X.columns[:4].tolist()
    ['timestamp', 'symbol', 'ret_1', 'ret_5']
    >>> len(X) == len(bars), bool(X["rsi_7"].dropna().between(0, 100).all())
    (True, True)
    """
    if spec is None:
        spec = FeatureSpec(**windows)
    elif not isinstance(spec, FeatureSpec):
        raise TypeError(f"spec must be a FeatureSpec, not {type(spec).__name__}")
    elif windows:
        spec = spec.replace(**windows)
    frame, _, groups, a = check_bars(bars, ("high", "low", "close", "volume"), _WHERE)

    n = len(frame)
    values = nb.technical_nb(
        a["close"], a["high"], a["low"], a["volume"], groups.starts, groups.ends,
        np.asarray(spec.return_horizons, dtype=np.int64),
        np.asarray(spec.vol_windows, dtype=np.int64), np.asarray(spec.ma_windows, dtype=np.int64),
        spec.rsi_window, spec.macd_fast, spec.macd_slow, spec.macd_signal, spec.atr_window,
        spec.bb_window, spec.bb_k, spec.volume_window, spec.skew_window,
        np.empty((len(spec.feature_names), n)), np.empty((2, n)), numba.get_num_threads())
    data = {"timestamp": utc_timestamps(frame, _WHERE), "symbol": frame["symbol"].array}
    data.update(zip(spec.feature_names, values, strict=True))
    out = pd.DataFrame(data, index=frame.index, copy=False)
    out.attrs["feature_spec"] = spec.to_dict()
    return out
