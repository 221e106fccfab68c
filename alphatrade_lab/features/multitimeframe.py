"""Trend and momentum of higher timeframes, joined to base bars once they have closed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from alphatrade_lab.data.resample import bar_length, resample
from alphatrade_lab.features import kernels as nb
from alphatrade_lab.features._input import check_bars, timestamps_ns, utc_timestamps

__all__ = ["multi_timeframe"]

_WHERE = "multi_timeframe"


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"multi_timeframe argument {name!r}: must be a whole number >= 1 "
                         f"(got {value!r})")
    return int(value)


def _label(tf: str | pd.Timedelta) -> str:
    return tf if isinstance(tf, str) else pd.tseries.frequencies.to_offset(tf).freqstr


def _higher_groups(symbols: list, higher: pd.DataFrame
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Groups of the (symbol-sorted) higher bars, and each base symbol's rows among them
    (``hstarts == hends`` when a symbol has no closed higher bar)."""
    codes = pd.factorize(higher["symbol"])[0].astype(np.int64)
    s, e = nb.group_bounds_nb(codes)
    hstarts = np.zeros(len(symbols), dtype=np.int64)
    hends = np.zeros(len(symbols), dtype=np.int64)
    names = higher["symbol"].to_numpy()
    where = {names[a]: (a, b) for a, b in zip(s, e, strict=True)}
    for g, sym in enumerate(symbols):
        hstarts[g], hends[g] = where.get(sym, (0, 0))
    return s, e, hstarts, hends


def multi_timeframe(
    bars: pd.DataFrame,
    timeframes: Sequence[str | pd.Timedelta] = ("1h", "4h", "1D"),
    *,
    fast: int = 20,
    slow: int = 50,
    momentum_window: int = 20,
    base: str | pd.Timedelta | None = None,
) -> pd.DataFrame:
    """Trend and momentum of higher timeframes, aligned to the base bars without lookahead.

    For each timeframe the bars are resampled with :func:`alphatrade_lab.data.resample`
    (windows ``[T, T + Δ)`` aligned to the epoch; each symbol's still-forming last window
    dropped) and, per symbol, on those higher bars:

    * ``trend_{tf}``: ``+1.0`` when the ``fast``-bar SMA of the closes is above the
      ``slow``-bar SMA (bullish), ``-1.0`` when below (bearish), ``0.0`` when equal,
      NaN until ``slow`` higher bars exist;
    * ``momentum_{tf}``: mean of the last ``momentum_window`` percentage changes of
      the close (NaN until ``momentum_window + 1`` higher bars exist).

    A higher bar becomes usable only once it has closed (design.md): base bar t gets
    the values of the symbol's last higher bar with ``T + Δ <= t + base``, i.e. whose
    close is at or before the base bar's close. Before the first such bar the values
    are NaN: unknown, not "not bullish". Then, over the timeframes (float64, so that
    unknown stays NaN and models and :func:`handle_nan` can use them):

    * ``trend_alignment``: how many timeframes are bullish; NaN while any trend is NaN;
    * ``all_tf_bullish`` / ``all_tf_bearish``: 1.0 when every trend is +1 / -1, 0.0
      when a known trend is not (whatever the unknown ones), NaN otherwise (some trend
      still NaN and every known one agrees).

    Parameters
    ----------
    bars
        Long-form bars sorted by (symbol, timestamp), unique per pair.
    timeframes
        Higher bar lengths, whole multiples of the base bar length (``"1h"``,
        ``"4h"``, ``"1D"``, a Timedelta...). Strings are used as given in column names.
    fast, slow, momentum_window
        Windows in higher bars (``fast < slow``).
    base
        The base bar length (default: inferred with
        :func:`alphatrade_lab.data.bar_length`).

    Returns
    -------
    pandas.DataFrame
        Same rows, order and index as ``bars``: ``timestamp`` (UTC; naive input read
        as UTC), ``symbol``, then
        ``trend_{tf}``, ``momentum_{tf}`` per timeframe, ``trend_alignment``,
        ``all_tf_bullish``, ``all_tf_bearish``.

    Raises
    ------
    DataError
        For missing columns, bad prices or unsorted bars (naming column and row).
    ValueError
        Naming the argument: empty or repeated ``timeframes``, a timeframe that is not a
        multiple of the base bar length, bad windows.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> bars = atl.data.load_sample(["AAA"]).head(3 * 24 * 60)
    >>> M = atl.features.multi_timeframe(bars, ["15min", "1h"], fast=5, slow=10)
    >>> M.columns.tolist()[2:]  # doctest: +NORMALIZE_WHITESPACE
    ['trend_15min', 'momentum_15min', 'trend_1h', 'momentum_1h',
     'trend_alignment', 'all_tf_bullish', 'all_tf_bearish']
    >>> int(M["trend_1h"].isna().sum())  # 10 hourly bars must close first
    599
    >>> M[["trend_alignment", "all_tf_bullish"]].iloc[0].isna().all()  # unknown yet
    np.True_
    """
    fast = _positive_int("fast", fast)
    slow = _positive_int("slow", slow)
    momentum_window = _positive_int("momentum_window", momentum_window)
    if fast >= slow:
        raise ValueError(f"multi_timeframe argument 'fast': must be < slow ({slow}) "
                         f"(got {fast})")
    if isinstance(timeframes, str | pd.Timedelta):
        timeframes = [timeframes]
    timeframes = list(timeframes)
    if not timeframes:
        raise ValueError("multi_timeframe argument 'timeframes': must not be empty")
    labels = [_label(tf) for tf in timeframes]
    if len(set(labels)) != len(labels):
        raise ValueError(f"multi_timeframe argument 'timeframes': repeated values {labels}")
    frame, ts, groups, _ = check_bars(
        bars, ("open", "high", "low", "close", "volume"), _WHERE)
    if len(frame) == 0:
        base_len = pd.Timedelta(base) if base is not None else pd.Timedelta(0)
    else:
        base_len = pd.Timedelta(base) if base is not None else bar_length(frame)
    steps = []
    for tf in timeframes:
        try:
            step = pd.Timedelta(tf)
        except ValueError as exc:
            raise ValueError(f"multi_timeframe argument 'timeframes': cannot read {tf!r} as a "
                             "bar length") from exc
        if step <= pd.Timedelta(0) or (base_len > pd.Timedelta(0) and step % base_len):
            raise ValueError(f"multi_timeframe argument 'timeframes': {tf!r} is not a positive "
                             f"multiple of the base bar length {base_len}")
        steps.append(step)

    s, e = groups.starts, groups.ends
    closes_at = ts + base_len.value
    data: dict[str, object] = {"timestamp": utc_timestamps(frame, _WHERE),
                               "symbol": frame["symbol"].array}
    n_bull = np.zeros(len(frame))
    n_bear = np.zeros(len(frame))
    n_unknown = np.zeros(len(frame))
    for label, step in zip(labels, steps, strict=True):
        higher = resample(frame, step, base=base_len) if len(frame) else frame.iloc[:0]
        hclose = higher["close"].to_numpy(np.float64)
        hs, he, hstarts, hends = _higher_groups(groups.symbols, higher)
        diff = nb.rolling_mean_nb(hclose, hs, he, fast) - nb.rolling_mean_nb(hclose, hs, he,
                                                                             slow)
        trend = np.sign(diff)  # NaN stays NaN
        momentum = nb.rolling_mean_nb(nb.pct_change_nb(hclose, hs, he), hs, he,
                                      momentum_window)
        hclosed = timestamps_ns(higher, _WHERE) + step.value
        idx = nb.asof_index_nb(closes_at, s, e, hclosed, hstarts, hends)
        found = idx >= 0
        safe = np.where(found, idx, 0)
        t = np.where(found, trend[safe], np.nan) if len(trend) else np.full(len(idx), np.nan)
        m = np.where(found, momentum[safe], np.nan) if len(trend) else np.full(len(idx), np.nan)
        data[f"trend_{label}"] = t
        data[f"momentum_{label}"] = m
        n_bull += t == 1.0
        n_bear += t == -1.0
        n_unknown += np.isnan(t)
    k = len(timeframes)
    data["trend_alignment"] = np.where(n_unknown > 0, np.nan, n_bull)
    for name, n_agree in (("all_tf_bullish", n_bull), ("all_tf_bearish", n_bear)):
        data[name] = np.where(n_agree == k, 1.0, np.where(n_agree + n_unknown < k, 0.0, np.nan))
    return pd.DataFrame(data, index=frame.index, copy=False)
