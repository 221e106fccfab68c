"""Input checks shared by the feature functions, and per-symbol group boundaries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alphatrade_lab.data.schema import _Context, _parse_timestamps
from alphatrade_lab.errors import DataError

PRICES = ("open", "high", "low", "close")


@dataclass(frozen=True)
class Groups:
    """Rows of each symbol: ``starts[g]:ends[g]``; ``symbols[g]`` its name."""

    starts: np.ndarray
    ends: np.ndarray
    symbols: list


def _fail(where: str, column: str | None, pos: int | None, what: str,
          frame: pd.DataFrame | None = None) -> DataError:
    return _Context(where).error(column, pos, what, frame)


def require_frame(frame: object, columns: Sequence[str], where: str) -> pd.DataFrame:
    """Raise DataError unless ``frame`` is a DataFrame holding ``columns``."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise _fail(where, missing[0], None, f"missing column (missing {missing}; found "
                                             f"{list(map(str, frame.columns))})")
    for c in columns:
        if (frame.columns == c).sum() > 1:
            raise _fail(where, c, None, "duplicate column name; keep one")
    return frame


def timestamps_ns(frame: pd.DataFrame, where: str) -> np.ndarray:
    """The ``timestamp`` column as int64 ns since the epoch (naive times read as UTC)."""
    ts = frame["timestamp"]
    if not pd.api.types.is_datetime64_any_dtype(ts.dtype):
        raise _fail(where, "timestamp", None, f"expected datetimes, got dtype {ts.dtype}")
    if ts.isna().any():
        raise _fail(where, "timestamp", int(np.flatnonzero(ts.isna().to_numpy())[0]),
                    "missing timestamp")
    try:
        return ts.to_numpy(dtype="datetime64[ns]").view(np.int64)
    except (OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise _fail(where, "timestamp", None, f"timestamps outside the datetime64[ns] range "
                                              f"({exc})") from None


def utc_timestamps(frame: pd.DataFrame, where: str) -> pd.api.extensions.ExtensionArray:
    """The ``timestamp`` column as ``datetime64[ns, UTC]`` for an output frame: naive
    times read as UTC and other zones converted, the loaders' rule."""
    ts = frame["timestamp"]
    if str(ts.dtype) == "datetime64[ns, UTC]":
        return ts.array
    return _parse_timestamps(ts, _Context(where)).array


def _changes(sym: pd.Series) -> np.ndarray:
    """bool[n - 1]: True where the symbol differs from the previous row's."""
    arr = sym.array
    if hasattr(arr, "__arrow_array__") and pd.api.types.is_string_dtype(sym.dtype):
        import pyarrow as pa
        import pyarrow.compute as pc

        a = arr.__arrow_array__()
        a = a if isinstance(a, pa.ChunkedArray) else pa.chunked_array([a])
        return pc.not_equal(a[1:], a[:-1]).to_numpy()
    if isinstance(sym.dtype, pd.CategoricalDtype):
        codes = sym.cat.codes.to_numpy()
    else:
        codes = pd.factorize(sym)[0]
    return codes[1:] != codes[:-1]


def symbol_groups(frame: pd.DataFrame, ts: np.ndarray, where: str) -> Groups:
    """Group boundaries of a frame sorted by (symbol, timestamp), unique per pair.

    Raises DataError naming the first row that breaks the order.
    """
    sym = frame["symbol"]
    n = len(sym)
    missing = sym.isna().to_numpy()
    if missing.any():
        raise _fail(where, "symbol", int(np.flatnonzero(missing)[0]), "missing symbol")
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Groups(empty, empty, [])
    change = _changes(sym)
    starts = np.concatenate([[0], np.flatnonzero(change) + 1]).astype(np.int64)
    ends = np.append(starts[1:], n).astype(np.int64)
    symbols = sym.iloc[starts].tolist()
    unsorted = "rows are not sorted by (symbol, timestamp); sort them first " \
               "(atl.data.validate(bars, sort=True))"
    for k in range(len(symbols) - 1):
        try:
            ordered = bool(symbols[k] < symbols[k + 1])
        except TypeError:
            ordered = False
        if not ordered:
            raise _fail(where, "symbol", int(starts[k + 1]), unsorted, frame)
    dt = np.diff(ts)
    bad = ~change & (dt <= 0)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0]) + 1
        what = "duplicate (symbol, timestamp)" if dt[pos - 1] == 0 else unsorted
        raise _fail(where, "timestamp", pos, what, frame)
    return Groups(starts, ends, symbols)


def check_bars(bars: object, columns: Sequence[str], where: str
               ) -> tuple[pd.DataFrame, np.ndarray, Groups, dict[str, np.ndarray]]:
    """Check the parts of the bar contract a feature function relies on.

    Returns the frame, int64 ns timestamps, the symbol groups and float64 arrays of
    ``columns``. Prices must be finite and > 0, volume finite and >= 0.
    """
    frame = require_frame(bars, ["timestamp", "symbol", *columns], where)
    ts = timestamps_ns(frame, where)
    arrays: dict[str, np.ndarray] = {}
    for col in columns:
        dtype = frame[col].dtype
        # Booleans count as numbers to pandas; True would silently become a price of 1.0.
        if (not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
                or pd.api.types.is_complex_dtype(dtype)):
            raise _fail(where, col, None, f"expected numbers, got dtype {dtype}")
        values = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
        ok = np.isfinite(values) & ((values > 0) if col in PRICES else (values >= 0))
        if not ok.all():
            pos = int(np.flatnonzero(~ok)[0])
            need = "finite and > 0" if col in PRICES else "finite and >= 0"
            raise _fail(where, col, pos, f"value {float(values[pos])!r} must be {need}", frame)
        arrays[col] = values
    groups = symbol_groups(frame, ts, where)
    return frame, ts, groups, arrays


def keys_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``timestamp`` and ``symbol`` columns of ``frame``, with its index."""
    return frame.loc[:, ["timestamp", "symbol"]].copy()
