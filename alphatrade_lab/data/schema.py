"""The long-form bar contract and its validation.

Bars are a DataFrame with columns ``timestamp, symbol, open, high, low, close,
volume``: UTC timestamps (bar open times), sorted by (symbol, timestamp), unique
per (symbol, timestamp), finite positive prices with a consistent high/low, and
non-negative volume. :func:`validate` checks all of it and raises
:class:`~alphatrade_lab.errors.DataError` naming the source, the column and the
first offending row.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Literal, NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa

from alphatrade_lab.errors import DataError, RepairWarning, location

__all__ = ["BAR_COLUMNS", "PRICE_COLUMNS", "is_real_dtype", "validate"]

BAR_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")

DuplicatePolicy = Literal["first", "last"] | None


class _Context:
    """Where the data came from, so errors can point at a file and a line."""

    def __init__(self, source: str, line_offset: int | None = None,
                 line_of: Callable[[int], int | None] | None = None):
        self.source = source
        self.line_offset = line_offset
        self.line_of = line_of
        # Positions of the current rows in the original input (changes after a repair).
        self.row_ids: np.ndarray | None = None

    def line(self, row: int) -> int | None:
        if self.line_offset is not None:
            return row + self.line_offset
        return self.line_of(row) if self.line_of is not None else None

    def error(self, column: str | None, pos: int | None, what: str,
              frame: pd.DataFrame | None = None) -> DataError:
        """The error for position ``pos``: where it is, what is wrong, and the row's
        symbol and timestamp when ``frame`` is long-form bars."""
        row = None if pos is None else int(pos if self.row_ids is None else self.row_ids[pos])
        key = ""
        if frame is not None and pos is not None and {"symbol", "timestamp"} <= set(frame.columns):
            key = f" [symbol {frame['symbol'].iat[pos]!r}, timestamp {frame['timestamp'].iat[pos]}]"
        line = None if row is None else self.line(row)
        return DataError(f"{location(self.source, column, row, line=line)}: {what}{key}")

    def fail(self, column: str | None, pos: int | None, what: str,
             frame: pd.DataFrame | None = None) -> NoReturn:
        raise self.error(column, pos, what, frame)


# The range of datetime64[ns], the contract's timestamp type.
_NS_MIN, _NS_MAX = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
_RANGE = f"outside the supported range {_NS_MIN.date()} .. {_NS_MAX.date()}"


_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _as_ns(out: pd.Series, ctx: _Context) -> pd.Series:
    """UTC datetimes of any unit as ``datetime64[ns, UTC]``, refusing values out of its range."""
    unit = out.dtype.unit
    if unit != "ns":
        f = _UNIT_NS[unit]
        raw = out.dt.tz_localize(None).to_numpy().view(np.int64)
        bad = (raw < -(-_NS_MIN.value // f)) | (raw > _NS_MAX.value // f)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            ctx.fail("timestamp", pos, f"timestamp {out.iat[pos]} is {_RANGE}")
    return out.astype("datetime64[ns, UTC]")


def _parse_timestamps(values: pd.Series, ctx: _Context) -> pd.Series:
    """Timestamps as ``datetime64[ns, UTC]``; naive input is read as UTC."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        out = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        out = values.dt.tz_localize("UTC")
    elif pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        ctx.fail("timestamp", 0, f"numeric timestamps ({values.dtype}) are ambiguous; "
                                  "convert epoch numbers with pd.to_datetime(..., unit=...) first")
    else:
        missing = values.isna().to_numpy()
        if missing.any():
            ctx.fail("timestamp", int(np.flatnonzero(missing)[0]), "missing timestamp")
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        try:
            out = pd.to_datetime(values, utc=True, format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            try:
                out = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
            except (ValueError, TypeError, OverflowError) as exc:
                ctx.fail("timestamp", None, f"cannot parse timestamps of dtype {values.dtype} "
                                            f"({exc})")
        bad = out.isna().to_numpy()
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            ctx.fail("timestamp", pos, f"cannot parse timestamp {values.iat[pos]!r} "
                                       f"(expected ISO 8601{_out_of_range(values.iat[pos])})")
    if out.isna().any():
        ctx.fail("timestamp", int(np.flatnonzero(out.isna().to_numpy())[0]), "missing timestamp")
    return _as_ns(out, ctx)


def _out_of_range(value: object) -> str:
    """A hint for a timestamp that parses but is out of the ns range (year 3024)."""
    try:
        pd.Timestamp(value)
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        return f"; it is {_RANGE}"
    except (ValueError, TypeError):
        pass
    return ""


def is_real_dtype(dtype: object) -> bool:
    """Whether ``dtype`` holds real numbers: int, uint or float (numpy, nullable or
    Arrow-backed); not bool, complex, datetimes, timedeltas, categoricals or objects.

    >>> import numpy as np
    >>> is_real_dtype(np.dtype("float32")), is_real_dtype(np.dtype(bool))
    (True, False)
    """
    return not pd.api.types.is_bool_dtype(dtype) and getattr(dtype, "kind", "O") in "iuf"


def _is_text_dtype(dtype: object) -> bool:
    """str or object columns (not categoricals, whose kind is also "O")."""
    return isinstance(dtype, pd.StringDtype) or (
        not isinstance(dtype, pd.CategoricalDtype) and getattr(dtype, "kind", "") == "O")


def _as_float(out: pd.DataFrame, col: str, ctx: _Context) -> np.ndarray:
    """A price or volume column as float64: real numbers or numeric text, never booleans."""
    series = out[col]
    dtype = series.dtype
    if is_real_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_bool_dtype(dtype):
        ctx.fail(col, 0, f"boolean values ({dtype}) are not numbers", out)
    if not _is_text_dtype(dtype):
        ctx.fail(col, None, f"expected numbers, got dtype {dtype}")
    if hasattr(series.array, "__arrow_array__"):
        # Fast path for Arrow-backed text (CSV files); anything it refuses is looked at below.
        try:
            arr = pa.array(series.array).cast(pa.float64())
            return arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
            pass
    values = series.to_numpy(dtype=object)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("boolean", "mixed", "mixed-integer", "mixed-integer-float", "complex",
                "bytes", "datetime", "date", "timedelta", "time", "period", "interval",
                "decimal", "unknown-array", "empty"):
        for pos, v in enumerate(values):
            if isinstance(v, (bool, np.bool_)):
                ctx.fail(col, pos, f"boolean value {v!r} is not a number", out)
            if v is None or (isinstance(v, float) and v != v):
                continue
            if not isinstance(v, (str, int, float, np.integer, np.floating, Decimal)):
                ctx.fail(col, pos, f"not a number: {type(v).__name__} {v!r}", out)
    try:
        converted = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    except (TypeError, ValueError, OverflowError):
        converted = pd.Series([_to_float(v) for v in values], dtype=np.float64)
    converted = converted.to_numpy(dtype=np.float64, na_value=np.nan)
    for pos in np.flatnonzero(np.isnan(converted) & pd.notna(values)).tolist():
        v = values[pos]
        if isinstance(v, str) and v.strip().lower() == "nan":
            continue  # a NaN, reported as such by the price and volume checks
        text = v.strip().lower() if isinstance(v, str) else None
        what = ("empty value" if text == "" else
                f"boolean value {v!r} is not a number" if text in ("true", "false") else
                f"not a number: {v!r}")
        ctx.fail(col, int(pos), what, out)
    return converted


def _to_float(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return np.nan


def _check_symbols(out: pd.DataFrame, ctx: _Context) -> None:
    sym = out["symbol"]
    missing = sym.isna().to_numpy()
    if missing.any():
        ctx.fail("symbol", int(np.flatnonzero(missing)[0]), "missing symbol")
    if _is_text_dtype(sym.dtype):
        if not isinstance(sym.dtype, pd.StringDtype):  # object: any Python values
            values = sym.to_numpy(dtype=object)
            if pd.api.types.infer_dtype(values, skipna=False) != "string":
                for pos, v in enumerate(values):
                    if not isinstance(v, str):
                        ctx.fail("symbol", pos,
                                 f"symbol must be text, got {type(v).__name__} {v!r}")
        blank = (sym.str.strip() == "").to_numpy(dtype=bool)
        if blank.any():
            pos = int(np.flatnonzero(blank)[0])
            ctx.fail("symbol", pos, f"empty symbol {sym.iat[pos]!r}")
    else:
        out["symbol"] = sym.astype(str)


def _check_prices(bars: pd.DataFrame, ctx: _Context) -> None:
    for col in PRICE_COLUMNS:
        values = bars[col].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            v = float(values[pos])
            what = "NaN price" if np.isnan(v) else ("infinite price" if np.isinf(v) else
                                                     f"non-positive price {v!r}")
            ctx.fail(col, pos, what, bars)
    o, h, lo, c = (bars[col].to_numpy(np.float64) for col in PRICE_COLUMNS)
    top = np.maximum(o, c)
    bad = h < top
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        ctx.fail("high", pos,
                 f"high {float(h[pos])!r} < max(open, close) {float(top[pos])!r}", bars)
    bottom = np.minimum(o, c)
    bad = lo > bottom
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        ctx.fail("low", pos,
                 f"low {float(lo[pos])!r} > min(open, close) {float(bottom[pos])!r}", bars)


def _check_volume(bars: pd.DataFrame, ctx: _Context) -> None:
    vol = bars["volume"].to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~(np.isfinite(vol) & (vol >= 0))
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        v = float(vol[pos])
        what = "NaN volume" if np.isnan(v) else ("infinite volume" if np.isinf(v) else
                                                  f"negative volume {v!r}")
        ctx.fail("volume", pos, what, bars)


def timestamps_ns(bars: pd.DataFrame) -> np.ndarray:
    """The ``timestamp`` column as int64 nanoseconds since the epoch (UTC)."""
    return bars["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)


def check_bars(bars: object, where: str, fields: tuple[str, ...] = (), *,
               need_sorted: bool = True) -> tuple[np.ndarray, pd.Index, np.ndarray]:
    """The structural checks of functions that take already validated bars.

    ``bars`` must be a DataFrame with unique ``timestamp``, ``symbol`` and ``fields``
    columns, datetime timestamps, real-number ``fields`` (not booleans) and no
    duplicate (symbol, timestamp); with ``need_sorted``, rows sorted by (symbol,
    timestamp). Cheaper than :func:`validate` (no copy, no price checks).

    Returns
    -------
    tuple
        Symbol codes in order of first appearance, the symbols, int64 ns timestamps.
    """
    if not isinstance(bars, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame of bars, got {type(bars).__name__}")
    ctx = _Context(where)
    for col in ("timestamp", "symbol", *fields):
        if col not in bars.columns:
            ctx.fail(col, None, f"missing column (found {list(map(str, bars.columns))})")
        if (bars.columns == col).sum() > 1:
            ctx.fail(col, None, "duplicate column name")
    if not pd.api.types.is_datetime64_any_dtype(bars["timestamp"].dtype):
        ctx.fail("timestamp", None, f"expected datetimes, got dtype {bars['timestamp'].dtype} "
                                    "(load or validate the bars first)")
    for col in fields:
        if not is_real_dtype(bars[col].dtype):
            ctx.fail(col, None, f"expected numbers, got dtype {bars[col].dtype}")
    if bars["timestamp"].isna().any():
        ctx.fail("timestamp", int(np.flatnonzero(bars["timestamp"].isna().to_numpy())[0]),
                 "missing timestamp")
    codes, uniques = pd.factorize(bars["symbol"], use_na_sentinel=True)
    if (codes < 0).any():
        ctx.fail("symbol", int(np.flatnonzero(codes < 0)[0]), "missing symbol")
    ts = timestamps_ns(bars)
    same = codes[1:] == codes[:-1]
    if need_sorted:
        # First-appearance codes only grow when each symbol's rows are contiguous.
        bad = (codes[1:] < codes[:-1]) | (same & (ts[1:] < ts[:-1]))
        for pos in np.flatnonzero(codes[1:] > codes[:-1]) + 1:  # where a new symbol starts
            try:
                ordered = bool(uniques[codes[pos]] > uniques[codes[pos - 1]])
            except TypeError:
                ordered = False
            if not ordered:
                bad[pos - 1] = True
                break
        if bad.any():
            ctx.fail("timestamp", int(np.flatnonzero(bad)[0]) + 1,
                     "rows are not sorted by (symbol, timestamp); sort them first "
                     "(atl.data.validate(bars, sort=True))", bars)
        dup = np.flatnonzero(same & (ts[1:] == ts[:-1])) + 1
    else:
        dup = np.flatnonzero(pd.DataFrame({"c": codes, "t": ts}).duplicated().to_numpy())
    if dup.size:
        ctx.fail("timestamp", int(dup[0]), "duplicate (symbol, timestamp); keep one "
                                           "(atl.data.validate(bars, drop_duplicates=...))",
                 bars)
    return codes, uniques, ts


def _order_keys(bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes for symbol (in sorted order) and int64 nanoseconds for time."""
    codes, _ = pd.factorize(bars["symbol"], sort=True)
    return codes.astype(np.int64), timestamps_ns(bars)


def validate(
    bars: pd.DataFrame,
    *,
    source: str = "<frame>",
    sort: bool = False,
    drop_duplicates: DuplicatePolicy = None,
    line_offset: int | None = None,
) -> pd.DataFrame:
    """Check that ``bars`` follow the long-form bar contract and return a clean copy.

    Parameters
    ----------
    bars
        Long-form bars with at least the columns of :data:`BAR_COLUMNS` (extra
        columns are kept, after the standard ones).
    source
        Name used in error messages (the file path for loaders).
    sort
        Sort rows by (symbol, timestamp) instead of failing on unsorted input.
    drop_duplicates
        ``"first"`` or ``"last"`` keeps that row of each duplicated (symbol,
        timestamp) pair, in input order, instead of failing.
    line_offset
        For text sources, ``row + line_offset`` is the line number shown in errors.

    Returns
    -------
    pandas.DataFrame
        Bars with ``timestamp`` as ``datetime64[ns, UTC]``, ``symbol`` as string,
        float64 prices and volume, a fresh ``RangeIndex``. Any repair made is
        reported with a :class:`~alphatrade_lab.errors.RepairWarning` and listed in
        ``result.attrs["repairs"]``.

    Raises
    ------
    DataError
        On a missing or duplicated column, unparseable, missing or out-of-range
        (outside ``datetime64[ns]``) timestamp, missing, empty or non-text symbol,
        boolean or non-numeric price or volume, NaN/inf/non-positive price, high
        below max(open, close), low above min(open, close), negative volume,
        unsorted rows or duplicate (symbol, timestamp), naming the source, the
        column and the first offending row (0-based position in the input).

    Examples
    --------
    >>> import pandas as pd
    >>> raw = pd.DataFrame({"timestamp": ["2024-01-01 00:00", "2024-01-01 00:01"],
    ...                     "symbol": "AAA", "open": [10.0, 10.2], "high": [10.3, 10.4],
    ...                     "low": [9.9, 10.1], "close": [10.2, 10.1], "volume": [5, 7]})
    >>> validate(raw)["timestamp"].dt.tz
    datetime.timezone.utc
    >>> validate(raw.assign(high=[10.1, 10.4]))
    Traceback (most recent call last):
    ...
    alphatrade_lab.errors.DataError: <frame>, column 'high', row 0: high 10.1 < max(open, close) ...
    """
    return _validate(bars, source=source, sort=sort, drop_duplicates=drop_duplicates,
                     ctx=_Context(source, line_offset), stacklevel=3)


def _validate(bars: pd.DataFrame, *, source: str, sort: bool, drop_duplicates: DuplicatePolicy,
              ctx: _Context, stacklevel: int) -> pd.DataFrame:
    """:func:`validate`, with a context that may map rows to the lines of a file."""
    if drop_duplicates not in (None, "first", "last"):
        raise ValueError("drop_duplicates must be None, 'first' or 'last', "
                         f"not {drop_duplicates!r}")
    if not isinstance(bars, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame of bars, got {type(bars).__name__}")
    dup_cols = bars.columns[bars.columns.duplicated()].unique().tolist()
    if dup_cols:
        raise DataError(f"{source}, column '{dup_cols[0]}': duplicate column name "
                        f"(duplicated: {dup_cols}); keep one column of each name")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise DataError(f"{source}, column '{missing[0]}': missing column "
                        f"(missing {missing}; found {list(map(str, bars.columns))})")

    extra = [c for c in bars.columns if c not in BAR_COLUMNS]
    out = bars.loc[:, [*BAR_COLUMNS, *extra]].reset_index(drop=True)
    out["timestamp"] = _parse_timestamps(out["timestamp"], ctx)
    _check_symbols(out, ctx)
    for col in (*PRICE_COLUMNS, "volume"):
        out[col] = _as_float(out, col, ctx)
    _check_prices(out, ctx)
    _check_volume(out, ctx)

    repairs: list[str] = []
    codes, ts = _order_keys(out)
    n = len(out)
    if n > 1:
        later = (codes[1:] > codes[:-1]) | ((codes[1:] == codes[:-1]) & (ts[1:] >= ts[:-1]))
        if not later.all():
            if not sort:
                pos = int(np.flatnonzero(~later)[0]) + 1
                ctx.fail("timestamp", pos, "rows are not sorted by (symbol, timestamp); "
                                           "pass sort=True to sort them", out)
            order = np.lexsort((ts, codes))  # stable: duplicates keep input order
            moved = int((order != np.arange(n)).sum())
            out = out.take(order).reset_index(drop=True)
            ctx.row_ids = order
            codes, ts = codes[order], ts[order]
            repairs.append(f"sorted by (symbol, timestamp): {moved} of {n} rows moved")
        dup = (codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1])
        if dup.any():
            if drop_duplicates is None:
                pos = int(np.flatnonzero(dup)[0]) + 1
                ctx.fail("timestamp", pos, "duplicate (symbol, timestamp); pass "
                                           "drop_duplicates='first' or 'last' to keep one", out)
            # A run of equal keys: keep its first ("first") or last ("last") row.
            drop = np.zeros(n, dtype=bool)
            if drop_duplicates == "first":
                drop[1:] = dup
            else:
                drop[:-1] = dup
            out = out.loc[~drop].reset_index(drop=True)
            repairs.append(f"dropped {int(drop.sum())} duplicate (symbol, timestamp) rows, "
                           f"keeping the {drop_duplicates}")
    if repairs:
        warnings.warn(f"{source}: " + "; ".join(repairs), RepairWarning, stacklevel=stacklevel)
    out.attrs["repairs"] = repairs
    out.attrs["source"] = source
    return out
