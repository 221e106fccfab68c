"""Validation and normalisation of backtest inputs (labelled or plain) into kernel arrays."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.backtest import kernels as nb
from alphatrade_lab.data.schema import is_real_dtype
from alphatrade_lab.errors import DataError

__all__ = ["Frame", "as_prices", "as_signal", "per_column", "cost_fraction", "granularity",
           "parse_direction", "parse_execution", "group_offsets"]

DIRECTIONS = {"longonly": nb.LONGONLY, "shortonly": nb.SHORTONLY, "both": nb.BOTH}
EXECUTIONS = {"close": nb.EXEC_CLOSE, "next_open": nb.EXEC_NEXT_OPEN}
# Fees or slippage above this fraction of a fill's value are almost surely a percentage
# typed as a fraction (fees=0.1 for 0.1%): warn.
PLAUSIBLE_COST = 0.05


@dataclass
class Frame:
    """A 2-D float64 view of a price input and its labels."""

    values: np.ndarray
    index: pd.Index
    columns: pd.Index
    kind: str  # "series", "frame" or "array"
    name: Any = None


def _label(index: pd.Index, row: int) -> str:
    return f"row {row} ({index[row]})" if isinstance(index, pd.DatetimeIndex) else f"row {row}"


def _check_time_axis(index: pd.Index, name: str) -> None:
    """Rows must be in strictly increasing time order: no NaT, no repeats, no shuffling."""
    if index.is_monotonic_increasing and index.is_unique:
        return
    if isinstance(index, pd.DatetimeIndex) and index.hasnans:
        row = int(np.flatnonzero(index.isna())[0])
        raise DataError(f"{name}: row {row}: missing timestamp (NaT) in the index")
    try:
        later = np.asarray(index[1:] > index[:-1], dtype=bool)
    except TypeError as exc:
        raise DataError(f"{name}: the index cannot be ordered ({exc}); use the bar "
                        "timestamps as the index") from None
    row = int(np.flatnonzero(~later)[0]) + 1
    what = "duplicate timestamp" if index[row] == index[row - 1] else \
        "rows are not in time order"
    raise DataError(f"{name}: {_label(index, row)}: {what} (after {index[row - 1]}); "
                    "sort the rows and keep one per timestamp")


def _check_unique_columns(columns: pd.Index, name: str) -> None:
    if not columns.is_unique:
        dup = columns[columns.duplicated()].unique().tolist()
        raise DataError(f"{name}: duplicate column names {dup}; keep one column per symbol")


def _price_values(x: pd.DataFrame, name: str) -> np.ndarray:
    for col, dtype in x.dtypes.items():
        if not is_real_dtype(dtype):
            what = "boolean" if pd.api.types.is_bool_dtype(dtype) else "not numeric"
            raise DataError(f"{name}: column {col!r}: prices must be numbers, got dtype {dtype} "
                            f"({what})")
    if all(isinstance(dtype, np.dtype) for dtype in x.dtypes):
        return x.to_numpy(dtype=np.float64)  # no copy for a float64 frame
    return x.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable dtypes: pd.NA -> NaN


def _reject_long_format(x: Any, name: str) -> None:
    """Long-format bars (a ``symbol`` column of names, or a ``symbol`` index level) are
    not a wide price input; a numeric column that happens to be named "symbol" is."""
    if isinstance(x, pd.DataFrame) and "symbol" in x.columns \
            and not all(is_real_dtype(dtype) for dtype in x.dtypes):
        raise DataError(f"{name}: got long-format bars (a 'symbol' column, one row per bar "
                        "and symbol); the backtest takes one column per symbol: pass "
                        "atl.data.to_wide(bars, 'close') (and to_wide(bars, 'open') for open=)")
    if isinstance(x, (pd.Series, pd.DataFrame)) and isinstance(x.index, pd.MultiIndex) \
            and "symbol" in x.index.names:
        what = "bars['close'].unstack('symbol')" if isinstance(x, pd.DataFrame) else \
            "series.unstack('symbol')"
        raise DataError(f"{name}: got long-format data (index levels {list(x.index.names)}); "
                        "the backtest takes a timestamp x symbol frame: pass "
                        f"atl.data.to_wide(bars.reset_index(), 'close') or {what}")


def as_prices(x: Any, name: str) -> Frame:
    """A price input as a float64 (n, k) view; rejects non-positive and infinite prices.

    NaN is allowed (a missing bar: nothing fills there). Labelled inputs must have
    rows in strictly increasing index (time) order and unique column names; prices
    must be real numbers (booleans, objects, complex and datetimes are refused), and
    long-format bars are refused with a pointer to ``atl.data.to_wide``.
    """
    _reject_long_format(x, name)
    if isinstance(x, pd.Series):
        if not is_real_dtype(x.dtype):
            raise DataError(f"{name}: prices must be numbers, got dtype {x.dtype}")
        values = x.to_numpy(dtype=np.float64) if isinstance(x.dtype, np.dtype) else \
            x.to_numpy(dtype=np.float64, na_value=np.nan)
        index, columns, kind = x.index, pd.Index([x.name]), "series"
        values = values.reshape(-1, 1)
    elif isinstance(x, pd.DataFrame):
        _check_unique_columns(x.columns, name)
        values, index, columns, kind = _price_values(x, name), x.index, x.columns, "frame"
    else:
        values = np.asarray(x)
        if values.ndim == 1:
            values = values.reshape(-1, 1)
            kind = "series"
        else:
            kind = "array"
        if values.ndim != 2:
            raise ValueError(f"{name} must be 1-D or 2-D, got shape {values.shape}")
        index, columns = pd.RangeIndex(values.shape[0]), pd.RangeIndex(values.shape[1])
    if values.dtype != np.float64:
        if not is_real_dtype(values.dtype):
            raise DataError(f"{name}: prices must be numbers, got dtype {values.dtype}")
        values = values.astype(np.float64)
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {values.shape})")
    _check_time_axis(index, name)
    row, col = nb.first_bad_price_nb(values)
    if row >= 0:
        raise DataError(f"{name}: column {columns[col]!r}, {_label(index, row)}: price "
                        f"{values[row, col]!r} is not finite and > 0")
    return Frame(values, index, columns, kind, getattr(x, "name", None))


def _check_index(idx: pd.Index, ref: Frame, name: str) -> None:
    if idx.equals(ref.index):
        return
    if len(idx) != len(ref.index):
        raise DataError(f"{name}: index has {len(idx)} rows but close has {len(ref.index)}")
    diff = np.flatnonzero(np.asarray(idx != ref.index))
    row = int(diff[0]) if diff.size else 0
    raise DataError(f"{name}: index does not match close's at row {row} "
                    f"({idx[row]} vs {ref.index[row]})")


def _check_columns(cols: pd.Index, ref: Frame, name: str) -> None:
    if cols.equals(ref.columns):
        return
    missing = [c for c in ref.columns if c not in set(cols)]
    extra = [c for c in cols if c not in set(ref.columns)]
    if missing or extra:
        raise DataError(f"{name}: columns do not match close's (missing {missing}, "
                        f"unexpected {extra})")
    raise DataError(f"{name}: columns are in a different order than close's")


def as_signal(x: Any, name: str, ref: Frame, *, dtype: type = bool) -> np.ndarray:
    """A signal (bool) or weight (float) input as a 2-D array broadcastable to close.

    Labelled inputs must carry close's index (and columns); an axis of length 1
    is kept as such and broadcast by the kernels.
    """
    n, k = ref.values.shape
    _reject_long_format(x, name)
    if x is None:
        x = False if dtype is bool else np.nan
    if isinstance(x, pd.DataFrame):
        _check_index(x.index, ref, name)
        _check_unique_columns(x.columns, name)
        # A one-column frame broadcasts only onto unlabelled close arrays: its label would
        # otherwise silently apply to every symbol (pass a Series to broadcast).
        if x.shape[1] == 1 and ref.values.shape[1] > 1 and ref.kind == "frame":
            raise DataError(f"{name}: one column {x.columns[0]!r} for close's {k} columns; "
                            "a labelled frame is not broadcast to other symbols: give one "
                            "column per symbol, or a Series to apply to all")
        if x.shape[1] != 1 or ref.values.shape[1] == 1:
            _check_columns(x.columns, ref, name)
        arr = x.to_numpy()
    elif isinstance(x, pd.Series):
        _check_index(x.index, ref, name)
        arr = x.to_numpy().reshape(-1, 1)
    else:
        arr = np.asarray(x)
        if arr.ndim == 0:
            arr = arr.reshape(1, 1)
        elif arr.ndim == 1:
            if arr.shape[0] != n:
                raise DataError(f"{name}: 1-D input has {arr.shape[0]} rows but close has {n}")
            arr = arr.reshape(-1, 1)
        elif arr.ndim != 2:
            raise DataError(f"{name}: expected at most 2 dimensions, got shape {arr.shape}")
    if arr.shape[0] not in (1, n) or arr.shape[1] not in (1, k):
        raise DataError(f"{name}: shape {arr.shape} does not broadcast to close's {(n, k)}")
    if dtype is bool:
        if arr.dtype != np.bool_:
            raise DataError(f"{name}: signals must be boolean, got dtype {arr.dtype}")
    else:
        if not is_real_dtype(arr.dtype):
            raise DataError(f"{name}: must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64, copy=False)
        row, col = nb.first_inf_nb(arr)
        if row >= 0:
            raise DataError(f"{name}: infinite value at {_label(ref.index, row)}, "
                            f"column {ref.columns[col if arr.shape[1] > 1 else 0]!r}")
    return arr


def per_column(x: Any, name: str, k: int, *, low: float = 0.0, high: float = np.inf,
               allow_nan: bool = False, high_inclusive: bool = True) -> np.ndarray:
    """A scalar or one value per column as float64[k], each in [low, high]."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(k, float(arr))
    elif arr.shape != (k,):
        raise ValueError(f"{name} must be a scalar or have one value per column ({k}), "
                         f"got shape {arr.shape}")
    bad = np.isnan(arr) if not allow_nan else np.zeros(k, dtype=bool)
    vals = np.where(np.isnan(arr), low, arr)
    bad |= (vals < low) | (vals > high) | (vals == high if not high_inclusive else False)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        hi = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be in [{low}, {high}{hi}, got {arr[j]!r}"
                         + (f" (column {j})" if k > 1 else ""))
    return np.ascontiguousarray(arr)


def cost_fraction(x: Any, name: str, k: int, *, stacklevel: int = 4) -> np.ndarray:
    """``fees`` or ``slippage`` as float64[k] in [0, 1); warns above :data:`PLAUSIBLE_COST`
    (``stacklevel`` points the warning at the user's call)."""
    arr = per_column(x, name, k, high=1.0, high_inclusive=False)
    if (arr > PLAUSIBLE_COST).any():
        value = float(arr[np.argmax(arr)])
        warnings.warn(f"{name}={value:g} means {value:.1%} on every fill; {name} is a "
                      "fraction (0.001 = 0.1%), not a percentage", UserWarning,
                      stacklevel=stacklevel)
    return arr


def granularity(x: Any, k: int) -> np.ndarray:
    """``size_granularity`` as float64[k]: None or NaN (no rounding), else finite and > 0."""
    arr = per_column(np.nan if x is None else x, "size_granularity", k, low=-np.inf,
                     allow_nan=True)
    bad = (arr <= 0) | np.isinf(arr)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise ValueError(f"size_granularity must be None/NaN (no rounding) or finite and > 0 "
                         f"(1 for whole shares), got {arr[j]!r}"
                         + (f" (column {j})" if k > 1 else ""))
    return arr


def parse_direction(direction: str) -> int:
    try:
        return DIRECTIONS[direction]
    except (KeyError, TypeError):
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}") \
            from None


def parse_execution(execution: str) -> int:
    try:
        return EXECUTIONS[execution]
    except (KeyError, TypeError):
        raise ValueError(f"execution must be one of {sorted(EXECUTIONS)}, got {execution!r}") \
            from None


def group_offsets(k: int, cash_sharing: bool) -> np.ndarray:
    """Column offsets of the cash groups: one per column, or one pool for all columns."""
    if cash_sharing:
        return np.array([0, k], dtype=np.int64)
    return np.arange(k + 1, dtype=np.int64)
