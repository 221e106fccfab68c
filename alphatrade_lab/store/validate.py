"""Check rows before they reach the database and convert them to an Arrow table.

Every check raises :class:`~alphatrade_lab.errors.DataError` naming the table, the column
and the first offending row (position and index label), e.g.
``signals, column 'direction', row 3 (index 3) is 2; allowed: -1, 0, 1``.

>>> import pandas as pd
>>> to_arrow("signals", pd.DataFrame({"timestamp": ["2024-01-01"], "symbol": ["AAA"],
...                                   "direction": [1]})).num_rows
1
>>> to_arrow("signals", pd.DataFrame({"timestamp": ["2024-01-01"], "symbol": ["AAA"],
...                                   "direction": [2]}))
Traceback (most recent call last):
...
alphatrade_lab.errors.DataError: signals, column 'direction', row 0 (index 0) is 2; allowed: ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from alphatrade_lab.errors import DataError, location
from alphatrade_lab.redact import TRIGGER, Redactor
from alphatrade_lab.store.schema import TABLES, Column

__all__ = ["to_arrow"]

_ARROW = {"str": pa.string(), "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(),
          "ts": pa.timestamp("us", tz="UTC"), "date": pa.date32(), "json": pa.string(),
          "direction": pa.int8()}

# Value ranges beyond the type (table, column) -> (low, high), inclusive.
_RANGES = {("signals", "confidence"): (0.0, 1.0), ("trades", "confidence"): (0.0, 1.0),
           ("model_performance", "accuracy"): (0.0, 1.0),
           ("model_performance", "avg_confidence"): (0.0, 1.0),
           ("trades", "quantity"): (0.0, np.inf), ("trades", "entry_price"): (0.0, np.inf),
           ("trades", "exit_price"): (0.0, np.inf),
           ("model_performance", "predictions_count"): (0, np.inf),
           ("model_performance", "correct_predictions"): (0, np.inf),
           ("daily_performance", "trades_count"): (0, np.inf),
           ("daily_performance", "win_count"): (0, np.inf),
           ("orders", "qty"): (0.0, np.inf), ("orders", "reference_price"): (0.0, np.inf),
           ("orders", "filled_qty"): (0.0, np.inf),
           ("orders", "filled_avg_price"): (0.0, np.inf), ("fills", "price"): (0.0, np.inf)}
# Strictly positive values (table, column).
_POSITIVE = frozenset({("fills", "qty")})
_CHOICES = {("trades", "side"): ("long", "short"), ("trades", "status"): ("open", "closed"),
            ("orders", "side"): ("buy", "sell"), ("fills", "side"): ("buy", "sell"),
            ("orders", "status"): ("new", "partially_filled", "filled", "canceled",
                                   "rejected")}
# Every str and JSON column is redacted, except these keys: rewriting a run id, a symbol or
# a client order id would silently split or merge the rows it identifies, so a key that
# holds a credential is refused instead (DataError, whose message is redacted as well).
_KEYS = frozenset({"run_id", "symbol", "client_order_id"})


def _where(frame: pd.DataFrame, table: str, col: str, mask: np.ndarray) -> str:
    i = int(np.flatnonzero(mask)[0])
    return location(table, col, i, label=frame.index[i])


def _fail(frame, table, col, mask, what: str) -> None:
    if mask.any():
        i = int(np.flatnonzero(mask)[0])
        value = frame[col].iloc[i]
        value = value.item() if isinstance(value, np.generic) else value
        raise DataError(f"{_where(frame, table, col, mask)} is {value!r}; {what}")


def _json_text(value: Any, table: str, col: str, row: int, label: Any,
               redact: Redactor) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise DataError(f"{location(table, col, row, label=label)} is not "
                            f"valid JSON: {exc}") from None
    try:
        return json.dumps(redact(value), default=str, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{location(table, col, row, label=label)} cannot be "
                        f"stored as JSON: {exc}") from None


def _numeric(frame, table, col, kind) -> np.ndarray:
    s = frame[col]
    if s.dtype == bool or pd.api.types.is_bool_dtype(s.dtype):
        raise DataError(f"{table}: column {col!r} holds booleans; expected numbers")
    if isinstance(s.dtype, np.dtype) and s.dtype in (np.float64, np.int64):
        values = s.to_numpy(dtype=np.float64)  # numbers already (NaN is a missing value)
    else:
        values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64,
                                                            na_value=np.nan)
        bad = np.isnan(values) & s.notna().to_numpy()
        _fail(frame, table, col, bad, "expected a number")
    _fail(frame, table, col, np.isinf(values), "infinite values are not allowed")
    if kind in ("int", "direction"):
        fin = ~np.isnan(values)
        _fail(frame, table, col, fin & (values != np.round(values)), "expected an integer")
    return values


def _redact_strings(arr: pa.Array, table: str, col: str, redact: Redactor) -> pa.Array:
    """``arr`` with every value redacted (each distinct value once; only the values that
    can hold a credential go through Python)."""
    maybe = pc.match_substring_regex(arr, TRIGGER)
    for secret in redact.secrets:
        maybe = pc.or_(maybe, pc.match_substring(arr, secret))
    candidates = pc.unique(arr.filter(pc.fill_null(maybe, False))).to_pylist()
    changed = {v: r for v in candidates if (r := redact.text(v)) != v}
    if not changed:
        return arr
    bad = pc.is_in(arr, value_set=pa.array(list(changed), pa.string()))
    if col in _KEYS:
        i = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{location(table, col, i)} holds what looks like a credential "
                        f"({changed[arr[i].as_py()]!r}); a {col} is never rewritten, so "
                        "the rows are refused")
    idx = pc.index_in(arr, value_set=pa.array(list(changed), pa.string()))
    return pc.if_else(bad, pc.take(pa.array(list(changed.values()), pa.string()), idx), arr)


def _categorical(frame: pd.DataFrame, table: str, c: Column, redact: Redactor) -> pa.Array:
    """A categorical text column, checked and redacted once per category: a million trades
    of five symbols cost five checks."""
    s = frame[c.name]
    codes = s.cat.codes.to_numpy()
    na = codes < 0
    if not c.nullable:
        _fail(frame, table, c.name, na, "NULL is not allowed")
    cats = pa.array([str(v) for v in s.cat.categories], type=pa.string())
    try:
        cats = _redact_strings(cats, table, c.name, redact)
    except DataError:  # a key holding a credential: name the first row, not the category
        full = pa.array(s.astype(str).where(s.notna()).to_numpy(dtype=object),
                        type=pa.string(), from_pandas=True)
        _redact_strings(full, table, c.name, redact)
        raise
    choices = _CHOICES.get((table, c.name))
    if choices is not None:
        ok = pc.is_in(cats, value_set=pa.array(choices)).to_numpy(zero_copy_only=False)
        _fail(frame, table, c.name, ~na & ~ok[np.maximum(codes, 0)],
              "allowed: " + ", ".join(choices))
    return pc.take(cats, pa.array(codes, mask=na))


def _column(frame: pd.DataFrame, table: str, c: Column, redact: Redactor) -> pa.Array:
    col, kind, s = c.name, c.kind, frame[c.name]
    if kind in ("float", "int", "direction"):
        values = _numeric(frame, table, col, kind)
        nan = np.isnan(values)
        if not c.nullable:
            _fail(frame, table, col, nan, "NaN/NULL is not allowed")
        if kind == "direction":
            _fail(frame, table, col, ~nan & ~np.isin(values, (-1.0, 0.0, 1.0)),
                  "allowed: -1, 0, 1")
        lo_hi = _RANGES.get((table, col))
        if lo_hi is not None:
            _fail(frame, table, col, ~nan & ((values < lo_hi[0]) | (values > lo_hi[1])),
                  f"must be between {lo_hi[0]} and {lo_hi[1]}")
        if (table, col) in _POSITIVE:
            _fail(frame, table, col, ~nan & (values <= 0), "must be > 0")
        if kind == "float":
            return pa.array(values, type=pa.float64(), from_pandas=True)
        out = np.where(nan, 0, values).astype(np.int64)
        return pa.array(out, type=_ARROW[kind], mask=nan)
    if kind == "bool":
        na = s.isna().to_numpy()
        if not c.nullable:
            _fail(frame, table, col, na, "NULL is not allowed")
        valid = s[~na]
        ok = valid.map(lambda v: isinstance(v, bool | np.bool_) or v in (0, 1)).to_numpy(bool)
        bad = np.zeros(len(s), dtype=bool)
        bad[np.flatnonzero(~na)[~ok]] = True
        _fail(frame, table, col, bad, "expected True/False")
        values = np.zeros(len(s), dtype=bool)
        values[~na] = valid.astype(bool).to_numpy()
        return pa.array(values, type=pa.bool_(), mask=na)
    if kind in ("ts", "date"):
        try:
            if isinstance(s.dtype, pd.DatetimeTZDtype):  # timestamps already: to UTC
                ts = s if str(s.dt.tz) == "UTC" else s.dt.tz_convert("UTC")
            else:
                ts = pd.to_datetime(s, utc=True, errors="raise")
        except (ValueError, TypeError, OverflowError) as exc:
            parsed = pd.to_datetime(s, utc=True, errors="coerce")
            bad = (parsed.isna() & s.notna()).to_numpy()
            if bad.any():
                raise DataError(f"{_where(frame, table, col, bad)} is "
                                f"{s.iloc[int(np.flatnonzero(bad)[0])]!r}; expected a "
                                "timestamp") from None
            raise DataError(f"{table}: column {col!r}: {exc}") from None
        if not c.nullable:
            _fail(frame, table, col, ts.isna().to_numpy(), "NaT/NULL is not allowed")
        if kind == "date":
            days = ts.dt.tz_localize(None).dt.normalize()
            return pa.array(days.dt.date, type=pa.date32(), from_pandas=True)
        return pa.array(ts.dt.as_unit("us"), type=_ARROW["ts"], from_pandas=True)
    if kind == "json":
        values = s.to_numpy(dtype=object)
        texts = np.full(len(s), None, dtype=object)
        for i in np.flatnonzero(s.notna().to_numpy()):  # often a few rows of many
            texts[i] = _json_text(values[i], table, col, int(i), frame.index[i], redact)
        return pa.array(texts, type=pa.string(), from_pandas=True)
    if isinstance(s.dtype, pd.CategoricalDtype):
        return _categorical(frame, table, c, redact)
    # str: build the Arrow array first (zero-copy for pandas' Arrow-backed strings)
    if isinstance(s.dtype, pd.StringDtype) or pd.api.types.infer_dtype(
            s, skipna=True) in ("string", "empty"):
        arr = pa.array(s, type=pa.string(), from_pandas=True)
    else:
        arr = pa.array(s.astype(str).where(s.notna()).to_numpy(dtype=object),
                       type=pa.string(), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    na = arr.is_null().to_numpy(zero_copy_only=False)
    if not c.nullable:
        _fail(frame, table, col, na, "NULL is not allowed")
    arr = _redact_strings(arr, table, col, redact)
    choices = _CHOICES.get((table, col))
    if choices is not None:
        ok = pc.is_in(arr, value_set=pa.array(choices)).to_numpy(zero_copy_only=False)
        _fail(frame, table, col, ~na & ~ok, "allowed: " + ", ".join(choices))
    return arr


def to_arrow(table: str, frame: pd.DataFrame, defaults: Mapping[str, Any] | None = None
             ) -> pa.Table:
    """Validate ``frame`` against ``table``'s columns and return it as an Arrow table.

    ``defaults`` fill columns the frame lacks (a scalar for every row). Missing required
    columns, unknown columns, wrong types, NaN/NULL in NOT NULL columns, values out of
    range and bad directions raise DataError. Every text and JSON column passes through
    :func:`~alphatrade_lab.redact.redact`; a ``run_id`` or ``symbol`` that holds a
    credential raises DataError (a key is never rewritten).
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{table}: expected a pandas DataFrame, got {type(frame).__name__}")
    cols = TABLES[table]
    known = {c.name for c in cols}
    unknown = [str(c) for c in frame.columns if c not in known]
    if unknown:
        raise DataError(f"{table}: unknown column(s) {unknown}; the table has "
                        f"{[c.name for c in cols]}")
    if frame.columns.duplicated().any():
        raise DataError(f"{table}: duplicated column(s) "
                        f"{list(frame.columns[frame.columns.duplicated()])}")
    defaults = dict(defaults or {})
    frame = frame.copy(deep=False)
    redact = Redactor()
    constants: dict[str, pa.Array] = {}
    for name, value in defaults.items():
        if name not in frame.columns:
            if isinstance(value, dict | list):
                frame[name] = [value] * len(frame)
            elif isinstance(value, str) and name in known:
                # one text value for every row: checked and redacted once, in Arrow
                constants[name] = _constant(table, name, value, len(frame), redact)
            else:
                frame[name] = value
    missing = [c.name for c in cols if not c.nullable and c.name not in frame.columns
               and c.name not in constants]
    if missing:
        raise DataError(f"{table}: missing required column(s) {missing}")
    arrays, fields = [], []
    for c in cols:
        if c.name in constants:
            arrays.append(constants[c.name])
        elif c.name in frame.columns:
            arrays.append(_column(frame, table, c, redact))
        else:
            continue
        fields.append(pa.field(c.name, _ARROW[c.kind], nullable=True))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _constant(table: str, col: str, value: str, n: int, redact: Redactor) -> pa.Array:
    """A text column of ``n`` copies of ``value``, redacted and checked like a column
    (a failure names row 0)."""
    one = _redact_strings(pa.array([value], type=pa.string()), table, col, redact)
    choices = _CHOICES.get((table, col))
    if choices is not None and value not in choices:
        raise DataError(f"{location(table, col, 0)} is {value!r}; allowed: "
                        + ", ".join(choices))
    return pa.repeat(one[0], n)
