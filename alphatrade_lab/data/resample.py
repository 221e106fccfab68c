"""Resampling to higher timeframes without lookahead, and the wide view of bars."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alphatrade_lab.data.schema import (
    BAR_COLUMNS,
    PRICE_COLUMNS,
    _Context,
    _parse_timestamps,
    check_bars,
)
from alphatrade_lab.errors import DataError, unknown_name

__all__ = ["bar_length", "resample", "to_wide"]

_LONG = ("long-form bars: one row per (timestamp, symbol) with columns timestamp, symbol, "
         "open, high, low, close, volume, as atl.data.load(path) or atl.data.load_sample() "
         "return")


def _require_long(bars: object, where: str, wide_hint: str) -> None:
    """Refuse a wide frame or a Series where long-form bars are expected, saying what to
    pass instead (``wide_hint``: what to do with the wide data itself)."""
    if isinstance(bars, pd.Series):
        raise DataError(f"{where}: got a Series ({bars.name!r}); pass {_LONG}. {wide_hint}")
    if not isinstance(bars, pd.DataFrame) or "timestamp" in bars.columns:
        return
    long_columns = {"symbol", *PRICE_COLUMNS} & set(bars.columns)
    if isinstance(bars.index, pd.DatetimeIndex) and not long_columns:
        cols = ", ".join(map(str, bars.columns[:5])) + (", ..." if bars.shape[1] > 5 else "")
        raise DataError(f"{where}: got a wide frame (timestamp × symbol: {cols}), as "
                        f"to_wide returns; pass {_LONG}. {wide_hint}")
    if "timestamp" in bars.index.names:
        raise DataError(f"{where}: 'timestamp' is in the index, not a column; pass "
                        "bars.reset_index()")


def bar_length(bars: pd.DataFrame) -> pd.Timedelta:
    """The base bar length: the most common gap between consecutive bars of a symbol.

    >>> import alphatrade_lab as atl
    >>> bar_length(atl.data.load_sample(["AAA"]))
    Timedelta('0 days 00:01:00')
    """
    _require_long(bars, "bar_length", "For a wide frame, "
                  "pd.Series(close.index).diff().mode() gives its bar length.")
    codes, _, ts = check_bars(bars, "bar_length")
    same = codes[1:] == codes[:-1]
    diffs = np.diff(ts)[same]
    diffs = diffs[diffs > 0]
    if diffs.size == 0:
        raise ValueError("cannot infer the bar length: no symbol has two bars")
    values, counts = np.unique(diffs, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


def resample(
    bars: pd.DataFrame,
    rule: str | pd.Timedelta,
    *,
    base: str | pd.Timedelta | None = None,
    drop_incomplete: bool = True,
) -> pd.DataFrame:
    """Aggregate bars per symbol to a higher timeframe.

    Windows ``[T, T + rule)`` are aligned to the Unix epoch (so daily bars start
    at 00:00 UTC) and labelled by their open time ``T``; open is the first open,
    high the max, low the min, close the last close and volume the sum.

    A resampled bar is only *known* at its close ``T + rule``: a lower-timeframe
    bar may use it once that lower bar closes at or after ``T + rule`` (design.md).
    The last window of a symbol is still forming when the data ends before its
    close; it is dropped (``drop_incomplete=True``) so that a live run and a
    backtest see the same bars. Windows that are merely missing some base bars
    (gaps) but have closed are complete.

    Parameters
    ----------
    bars
        Validated long-form bars.
    rule
        A fixed bar length that is a whole multiple of the base bar length:
        ``"5min"``, ``"1h"``, ``"4h"``, ``"1D"``...
    base
        The base bar length (default: inferred with :func:`bar_length`).
    drop_incomplete
        Drop each symbol's last window when it has not closed by the end of the data.

    Returns
    -------
    pandas.DataFrame
        Long-form bars, same columns, sorted by (symbol, timestamp).

    Raises
    ------
    DataError
        If ``bars`` are not sorted by (symbol, timestamp), repeat a (symbol,
        timestamp), lack a column, or hold non-numeric (or boolean) prices or volume:
        the windows would silently mix rows otherwise.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> hourly = resample(atl.data.load_sample(["AAA"]), "1h")
    >>> hourly["timestamp"].diff().dropna().min()
    Timedelta('0 days 01:00:00')
    """
    _require_long(bars, "resample", "Resample the bars first and then take the wide view "
                  "(atl.data.to_wide(atl.data.resample(bars, '1h'), 'close')), or resample a "
                  "wide close frame with pandas: close.resample('1h').last().")
    codes, _, ts = check_bars(bars, "resample", (*PRICE_COLUMNS, "volume"))
    step = pd.Timedelta(rule)
    base_len = pd.Timedelta(base) if base is not None else bar_length(bars)
    if step <= pd.Timedelta(0) or step % base_len != pd.Timedelta(0):
        raise ValueError(f"rule {rule!r} must be a positive multiple of the base bar length "
                         f"{base_len}")
    if len(bars) == 0:
        return bars.loc[:, list(BAR_COLUMNS)].copy()
    width = step.value
    window = ts - ts % width
    # Bars are sorted by (symbol, timestamp), so each (symbol, window) is a contiguous run.
    new = np.empty(len(ts), dtype=bool)
    new[0] = True
    new[1:] = (codes[1:] != codes[:-1]) | (window[1:] != window[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(ts)) - 1
    out = pd.DataFrame({
        "timestamp": pd.to_datetime(window[starts], utc=True).astype("datetime64[ns, UTC]"),
        "symbol": bars["symbol"].to_numpy()[starts],
        "open": bars["open"].to_numpy()[starts],
        "high": np.maximum.reduceat(bars["high"].to_numpy(), starts),
        "low": np.minimum.reduceat(bars["low"].to_numpy(), starts),
        "close": bars["close"].to_numpy()[ends],
        "volume": np.add.reduceat(bars["volume"].to_numpy(), starts),
    })
    out["symbol"] = out["symbol"].astype(bars["symbol"].dtype)
    if drop_incomplete:
        last_of_symbol = np.append(codes[starts][1:] != codes[starts][:-1], True)
        still_open = last_of_symbol & (ts[ends] + base_len.value < window[starts] + width)
        out = out.loc[~still_open].reset_index(drop=True)
    return out


def to_wide(bars: pd.DataFrame, field: str = "close") -> pd.DataFrame:
    """One field of long-form bars as a timestamp × symbol frame (NaN where a bar is missing).

    The index is ``datetime64[ns, UTC]``: naive timestamps are read as UTC and others
    converted, as the loaders do. Raises
    :class:`~alphatrade_lab.errors.UnknownNameError` (a ``KeyError``) if ``field`` is
    not a column, and :class:`~alphatrade_lab.errors.DataError` on a Series or a frame
    that is already wide, a duplicated column or a repeated (symbol, timestamp) (which
    has no single value).

    >>> import alphatrade_lab as atl
    >>> close = to_wide(atl.data.load_sample(), "close")
    >>> close.columns.tolist()
    ['AAA', 'BBB', 'CCC', 'DDD', 'EEE']
    """
    _require_long(bars, "to_wide", "A Series or a wide frame already is the wide view: "
                  "use it as it is.")
    check_bars(bars, "to_wide", need_sorted=False)
    if field not in bars.columns:
        raise unknown_name("column", field, bars.columns, "the bars")
    if (bars.columns == field).sum() > 1:
        raise DataError(f"to_wide, column '{field}': duplicate column name")
    ts = bars["timestamp"]
    if not (isinstance(ts.dtype, pd.DatetimeTZDtype) and str(ts.dtype) == "datetime64[ns, UTC]"):
        bars = bars.assign(timestamp=_parse_timestamps(ts, _Context("to_wide")))
    wide = bars.pivot(index="timestamp", columns="symbol", values=field)
    wide.columns = wide.columns.astype(object)
    wide.columns.name = "symbol"
    return wide
