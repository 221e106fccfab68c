"""Filling or dropping missing feature values per symbol, without lookahead."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.features import kernels as nb
from alphatrade_lab.features._input import require_frame

__all__ = ["NAN_STRATEGIES", "handle_nan"]

NAN_STRATEGIES: tuple[str, ...] = ("forward_fill", "mean", "drop", "zero")
_KEYS = ("timestamp", "symbol")
_WHERE = "handle_nan"


def _feature_columns(X: pd.DataFrame, columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return [c for c in X.columns if c not in _KEYS
                and pd.api.types.is_numeric_dtype(X[c].dtype)
                and not pd.api.types.is_bool_dtype(X[c].dtype)]
    cols = [columns] if isinstance(columns, str) else list(columns)
    require_frame(X, cols, _WHERE)
    for c in cols:
        if not pd.api.types.is_numeric_dtype(X[c].dtype):
            raise DataError(f"{_WHERE}, column '{c}': expected numbers, got dtype {X[c].dtype}")
    return cols


def _symbol_order(X: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """A stable order that makes each symbol's rows contiguous (None if they already are),
    and the group boundaries in that order. Checks time order within symbols."""
    if "symbol" in X.columns:
        sym = X["symbol"]
    elif isinstance(X.index, pd.MultiIndex) and "symbol" in X.index.names:
        sym = X.index.get_level_values("symbol")
    else:
        sym = None
    n = len(X)
    if sym is None:
        codes = np.zeros(n, dtype=np.int64)
    else:
        codes = pd.factorize(sym)[0].astype(np.int64)
    order = None
    # factorize numbers symbols by first appearance: contiguous runs <=> non-decreasing codes.
    if n > 1 and (np.diff(codes) < 0).any():
        order = np.argsort(codes, kind="stable")
        codes = codes[order]
    if "timestamp" in X.columns and n > 1:
        ts = X["timestamp"]
        if pd.api.types.is_datetime64_any_dtype(ts.dtype):
            t = ts.to_numpy(dtype="datetime64[ns]").view(np.int64)
            t = t if order is None else t[order]
            bad = (np.diff(codes) == 0) & (np.diff(t) <= 0)
            if bad.any():
                pos = int(bad.argmax()) + 1
                row = pos if order is None else int(order[pos])
                raise DataError(f"{_WHERE}, column 'timestamp', row {row}: rows of a symbol are "
                                "not in increasing time order, so 'past' is undefined")
    starts, ends = nb.group_bounds_nb(codes)
    return order, starts, ends


def handle_nan(
    X: pd.DataFrame,
    strategy: Literal["forward_fill", "mean", "drop", "zero"] = "forward_fill",
    *,
    columns: Sequence[str] | None = None,
    means: Mapping[str, float] | pd.Series | None = None,
    leading: Literal["keep", "drop"] = "keep",
) -> pd.DataFrame:
    """Fill or drop missing feature values per symbol, using past rows only.

    Parameters
    ----------
    X
        A feature frame, e.g. from :func:`technical` or :func:`multi_timeframe`: rows of
        a symbol in time order, with a ``symbol`` column (or index level) to group by
        (without one, all rows are one series).
    strategy
        ``"forward_fill"``
            Each NaN takes the symbol's last earlier non-NaN value of that column
            (never a later one: no back-fill).
        ``"mean"``
            Each NaN takes ``means[column]`` when ``means`` is given (statistics from
            the training period); otherwise the mean of the symbol's *earlier* non-NaN
            values of that column (an expanding mean of the past; filled values do not
            count).
        ``"zero"``
            Each NaN becomes 0.
        ``"drop"``
            Rows with a NaN in any of ``columns`` are dropped.
    columns
        Columns to handle (default: every numeric, non-boolean column other than
        ``timestamp`` and ``symbol``). Other columns pass through unchanged.
    means
        Column -> value for ``strategy="mean"`` (a dict or a Series such as
        ``X_train.mean()``); it must cover every handled column.
    leading
        What to do with rows still holding a NaN after filling (a symbol's leading rows
        before any value exists, for ``forward_fill`` and the expanding ``mean``):
        ``"keep"`` leaves them NaN, ``"drop"`` drops them.

    Returns
    -------
    pandas.DataFrame
        The same columns, the kept rows in input order with their index. The report is
        ``result.attrs["nan_report"]``, a JSON-able dict: ``strategy``, ``filled``
        (column -> number of values filled), ``dropped_rows`` and ``remaining_nan``
        (column -> NaNs left).

    Raises
    ------
    ValueError
        For an unknown ``strategy`` or ``leading``, or ``means`` missing a column.
    DataError
        For a missing or non-numeric column, or rows of a symbol out of time order.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> X = pd.DataFrame({"symbol": ["A", "A", "A", "B", "B"],
    ...                   "f": [np.nan, 1.0, np.nan, np.nan, 4.0]})
    >>> out = handle_nan(X, "forward_fill")
    >>> out["f"].tolist()
    [nan, 1.0, 1.0, nan, 4.0]
    >>> out.attrs["nan_report"]["filled"]
    {'f': 1}
    >>> handle_nan(X, "forward_fill", leading="drop")["f"].tolist()
    [1.0, 1.0, 4.0]
    >>> handle_nan(X, "mean", means={"f": 2.5})["f"].tolist()
    [2.5, 1.0, 2.5, 2.5, 4.0]
    """
    if strategy not in NAN_STRATEGIES:
        raise ValueError(f"handle_nan argument 'strategy': {strategy!r} is not one of "
                         f"{NAN_STRATEGIES}")
    if leading not in ("keep", "drop"):
        raise ValueError(f"handle_nan argument 'leading': {leading!r} is not 'keep' or 'drop'")
    require_frame(X, [], _WHERE)
    cols = _feature_columns(X, columns)
    if strategy == "mean" and means is not None:
        m = pd.Series(means, dtype=np.float64) if not isinstance(means, pd.Series) else means
        missing = [c for c in cols if c not in m.index or not np.isfinite(m[c])]
        if missing:
            raise ValueError(f"handle_nan argument 'means': no finite mean for column "
                             f"{missing[0]!r} (missing: {missing})")
    grouping = None  # (order, starts, ends), computed only when a past-only fill needs it
    n = len(X)
    still_any = np.zeros(n, dtype=bool)
    changed: dict[str, np.ndarray] = {}
    filled_count: dict[str, int] = {}
    still_count: dict[str, int] = {}
    for c in cols:
        x = X[c].to_numpy(dtype=np.float64, na_value=np.nan)
        isnan = np.isnan(x)
        before = int(isnan.sum())
        if before == 0 or strategy == "drop":
            new = x
        elif strategy == "zero":
            new = np.where(isnan, 0.0, x)
        elif strategy == "mean" and means is not None:
            new = np.where(isnan, float(m[c]), x)
        else:
            if grouping is None:
                grouping = _symbol_order(X)
            order, starts, ends = grouping
            kernel = nb.ffill_nb if strategy == "forward_fill" else nb.expanding_mean_fill_nb
            if order is None:
                new = kernel(np.ascontiguousarray(x), starts, ends)
            else:
                new = np.empty_like(x)
                new[order] = kernel(np.ascontiguousarray(x[order]), starts, ends)
        left = np.isnan(new) if new is not x else isnan
        if new is not x:
            changed[c] = new
        filled_count[c] = before - int(left.sum())
        still_any |= left
        still_count[c] = int(left.sum())

    drop_rows = still_any if (strategy == "drop" or leading == "drop") else np.zeros(
        n, dtype=bool)
    out = X.copy(deep=False)
    for c, new in changed.items():
        out[c] = new
    n_drop = int(drop_rows.sum())
    if n_drop:
        out = out.loc[~drop_rows]
        remaining = {c: int(out[c].isna().sum()) for c in cols}
    else:
        remaining = still_count
    out.attrs["nan_report"] = {
        "strategy": strategy,
        "filled": filled_count,
        "dropped_rows": n_drop,
        "remaining_nan": remaining,
    }
    return out
