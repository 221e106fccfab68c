"""Risk limits and their vectorized evaluation on a backtest :class:`Portfolio`.

Five measures, each a non-negative number compared with a limit (a breach is
``value > threshold``):

``max_drawdown``
    ``1 - equity / running peak of equity`` (``-pf.drawdown``), a fraction.
``daily_loss``
    ``1 - equity / reference``, where the reference is the last equity of the previous
    UTC day (the initial cash on the first day; a bar belongs to the day of its
    timestamp), a fraction; negative when the day is up.
``gross_exposure``
    Sum over the group's columns of ``|position × price|`` over equity (price: the last
    valid close).
``position_size``
    The largest ``|position × price|`` of one column over equity (``symbol`` says which).
``consecutive_losses``
    Closed trades in a row with ``pnl < 0``, counted at each trade's exit time (in exit
    order; a trade with ``pnl >= 0`` resets the count, a NaN pnl leaves it as it is).

Missing or invalid inputs never switch a limit off. They are reported as breaches of
three checks that are always on (severity ``critical``, threshold NaN, value the offending
number): ``invalid_equity`` (equity NaN, missing or infinite: that observation is left out
of the running peak and the daily reference, so the limits go on being checked against the
last valid equity), ``invalid_pnl`` (a closed trade's pnl is NaN) and ``invalid_position``
(a position's value is NaN, for one ``symbol``). An equity of zero or below is valid: it
is a loss of 100% or more of the running peak (``inf`` when there is no positive
reference yet), and exposures over it are ``inf`` unless every position is flat.

Every limit has a critical ``threshold`` and an optional lower ``warning`` threshold. A
breach is an *episode*: it starts at the first bar where the value exceeds the threshold
and lasts while it stays above it (a ``daily_loss`` episode also ends with its day); one
row per episode and severity gives its start time and value, the worst value and when,
and its end.

>>> import pandas as pd
>>> eq = pd.DataFrame({"p": [100.0, 90.0, 84.0, 99.0, 120.0, 100.0]},
...                   index=pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC"))
>>> out = episodes(drawdown(eq), "max_drawdown", Limit(0.15, warning=0.05))
>>> print(out[["severity", "timestamp", "value", "worst"]].to_string(index=False))
severity                 timestamp    value    worst
 warning 2024-01-01 01:00:00+00:00 0.100000 0.160000
critical 2024-01-01 02:00:00+00:00 0.160000 0.160000
 warning 2024-01-01 05:00:00+00:00 0.166667 0.166667
critical 2024-01-01 05:00:00+00:00 0.166667 0.166667
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BREACH_COLUMNS",
    "INVALID_NAMES",
    "LIMIT_NAMES",
    "Limit",
    "RiskLimits",
    "consecutive_losses",
    "daily_loss",
    "drawdown",
    "episodes",
    "exposures",
    "invalid_episodes",
    "loss_fraction",
    "valid_equity",
]

LIMIT_NAMES = ("max_drawdown", "daily_loss", "gross_exposure", "position_size",
               "consecutive_losses")
INVALID_NAMES = ("invalid_equity", "invalid_position", "invalid_pnl")
BREACH_COLUMNS = ["limit", "portfolio", "symbol", "severity", "timestamp", "value",
                  "threshold", "worst", "worst_time", "end", "observations"]
_SEVERITIES = ("warning", "critical")


@dataclass(frozen=True)
class Limit:
    """A critical ``threshold`` and an optional, lower, ``warning`` threshold.

    >>> Limit(0.2, warning=0.1).severity(0.15)
    'warning'
    """

    threshold: float
    warning: float | None = None

    def __post_init__(self) -> None:
        if not np.isfinite(self.threshold):
            raise ValueError(f"threshold must be finite, got {self.threshold}")
        if self.warning is not None and not self.warning < self.threshold:
            raise ValueError(f"warning ({self.warning}) must be below the threshold "
                             f"({self.threshold})")

    def levels(self) -> list[tuple[str, float]]:
        """``(severity, threshold)`` pairs, warning first."""
        out = [] if self.warning is None else [("warning", float(self.warning))]
        return [*out, ("critical", float(self.threshold))]

    def severity(self, value: float) -> str | None:
        """The worst severity ``value`` reaches, or None."""
        found = None
        for name, thr in self.levels():
            if value > thr:
                found = name
        return found


def _as_limit(name: str, value: Any) -> Limit | None:
    if value is None or isinstance(value, Limit):
        return value
    try:
        if isinstance(value, tuple | list):
            if len(value) != 2:
                raise ValueError(f"expected (threshold, warning), got {len(value)} values")
            return Limit(float(value[0]), None if value[1] is None else float(value[1]))
        return Limit(float(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"risk limit {name}: {value!r} is not a Limit, a number or "
                         f"(threshold, warning): {exc}") from None


@dataclass(frozen=True)
class RiskLimits:
    """The limits a :class:`~alphatrade_lab.risk.RiskManager` checks (None: unchecked).

    Each field takes a :class:`Limit`, a number (critical only) or ``(threshold,
    warning)``. Defaults: drawdown 20% (warning 10%), daily loss 5% (warning 3%), gross
    exposure 1.5× equity, one position 100% of equity, 6 losing trades in a row
    (warning 4).

    >>> RiskLimits(max_drawdown=0.1).max_drawdown
    Limit(threshold=0.1, warning=None)
    """

    max_drawdown: Limit | float | None = Limit(0.20, warning=0.10)
    daily_loss: Limit | float | None = Limit(0.05, warning=0.03)
    gross_exposure: Limit | float | None = Limit(1.5)
    position_size: Limit | float | None = Limit(1.0)
    consecutive_losses: Limit | float | None = Limit(6, warning=4)

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _as_limit(f.name, getattr(self, f.name)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RiskLimits:
        """Limits from a mapping of the field names (unknown names are an error)."""
        unknown = set(values) - set(LIMIT_NAMES)
        if unknown:
            raise ValueError(f"unknown risk limits {sorted(unknown)}; expected {LIMIT_NAMES}")
        return cls(**values)

    def items(self) -> Iterator[tuple[str, Limit]]:
        """``(name, limit)`` for every limit that is set."""
        for name in LIMIT_NAMES:
            limit = getattr(self, name)
            if limit is not None:
                yield name, limit


# ----------------------------------------------------------------------------- measures
def loss_fraction(equity: Any, reference: Any) -> Any:
    """``1 - equity / reference``; where ``reference <= 0``, ``inf`` if ``equity <= 0``
    (still no money) and ``-inf`` otherwise; NaN where either is NaN.

    >>> loss_fraction(np.array([90.0, 0.0, 0.0, 5.0]), np.array([100.0, 100.0, 0.0, -1.0]))
    array([ 0.1,  1. ,  inf, -inf])
    """
    if type(equity) is float and type(reference) is float:  # the streaming path: per bar
        if equity != equity or reference != reference:
            return math.nan
        if reference > 0:
            return 1.0 - equity / reference
        return math.inf if equity <= 0 else -math.inf
    eq, ref = np.asarray(equity, dtype=float), np.asarray(reference, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(ref > 0, 1.0 - eq / ref, np.where(eq <= 0, np.inf, -np.inf))
    out = np.where(np.isnan(eq) | np.isnan(ref), np.nan, out)
    return out if out.ndim else float(out)


def _ratio(total: Any, equity: Any) -> Any:
    """``total / equity`` for ``total >= 0``; ``inf`` (or 0 for a zero total) where
    ``equity <= 0``; NaN where equity is NaN."""
    if type(total) is float and type(equity) is float:  # the streaming path: per bar
        if equity != equity:
            return math.nan
        if equity > 0:
            return total / equity
        return math.inf if total > 0 else 0.0
    tot, eq = np.asarray(total, dtype=float), np.asarray(equity, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(eq > 0, tot / eq, np.where(tot > 0, np.inf, 0.0))
    out = np.where(np.isnan(eq), np.nan, out)
    return out if out.ndim else float(out)


def valid_equity(equity: pd.DataFrame) -> pd.DataFrame:
    """``equity`` with its non-finite values (NaN, ``±inf``) as NaN."""
    return equity.where(np.isfinite(equity.to_numpy(dtype=float)))


def drawdown(equity: pd.DataFrame) -> pd.DataFrame:
    """``1 - equity / running peak`` per column (0 at a new high; see
    :func:`loss_fraction`); non-finite equity gives NaN and stays out of the peak."""
    eq = valid_equity(equity)
    return pd.DataFrame(loss_fraction(eq.to_numpy(), eq.cummax().to_numpy()),
                        index=equity.index, columns=equity.columns)


def daily_loss(equity: pd.DataFrame, init_cash: Any) -> pd.DataFrame:
    """``1 - equity / previous UTC day's last valid equity`` (``init_cash`` on the first
    day; after a day without any valid equity, the last valid one before it)."""
    eq = valid_equity(equity)
    day = eq.index.floor("D") if isinstance(eq.index, pd.DatetimeIndex) else \
        pd.Index(np.zeros(len(eq), dtype=np.int64))
    last = eq.groupby(day).last()
    ref_by_day = last.shift(1)
    ref_by_day.iloc[0] = np.broadcast_to(np.asarray(init_cash, dtype=float),
                                         (eq.shape[1],))
    ref = ref_by_day.ffill().reindex(day).to_numpy()
    return pd.DataFrame(loss_fraction(eq.to_numpy(), ref), index=equity.index,
                        columns=equity.columns)


def exposures(values: pd.DataFrame, equity: pd.Series) -> tuple[pd.Series, pd.Series,
                                                                 pd.Series]:
    """Gross exposure, largest single position (fractions of ``equity``) and its column,
    from signed position values (``position × price``) of one group's columns.

    NaN values count as flat here (report them with :func:`invalid_episodes`); an
    ``equity <= 0`` gives ``inf`` unless every position is flat, a non-finite one NaN.
    """
    absval = values.abs().fillna(0.0)
    eq = equity.to_numpy(dtype=float)
    eq = np.where(np.isfinite(eq), eq, np.nan)
    gross = _ratio(absval.sum(axis=1).to_numpy(), eq)
    top = _ratio(absval.max(axis=1).to_numpy(), eq) if absval.shape[1] else \
        np.where(np.isnan(eq), np.nan, 0.0)
    arr = absval.to_numpy()
    which = np.asarray(values.columns)[arr.argmax(axis=1)] if arr.shape[1] else \
        np.full(len(arr), None)
    return (pd.Series(gross, index=values.index), pd.Series(top, index=values.index),
            pd.Series(which, index=values.index, dtype=object))


def consecutive_losses(pnl: pd.Series) -> pd.Series:
    """Running count of losing trades in a row (``pnl`` in exit order; a NaN pnl neither
    extends nor resets the count).

    >>> consecutive_losses(pd.Series([-1.0, -2, 3, -1, np.nan, -1, -1])).tolist()
    [1, 2, 0, 1, 1, 2, 3]
    """
    p = pnl.to_numpy(dtype=float)
    loss = (p < 0).astype(np.int64)
    groups = np.cumsum(p >= 0)
    out = pd.Series(loss).groupby(groups).cumsum().to_numpy()
    return pd.Series(out, index=pnl.index, dtype=np.int64)


def invalid_episodes(values: pd.Series | pd.DataFrame, invalid: pd.Series | pd.DataFrame,
                     limit_name: str, *, symbols: pd.Series | pd.DataFrame | None = None
                     ) -> pd.DataFrame:
    """Breach rows (critical, threshold NaN) for each run of ``invalid`` observations;
    ``value`` and ``worst`` are the offending values where the run starts."""
    frame = values.to_frame() if isinstance(values, pd.Series) else values
    bad = invalid.to_frame() if isinstance(invalid, pd.Series) else invalid
    sym = symbols.to_frame() if isinstance(symbols, pd.Series) else symbols
    rows = []
    idx = frame.index
    for j, name in enumerate(frame.columns):
        over = np.asarray(bad.iloc[:, j], dtype=bool)
        if not over.any():
            continue
        v = frame.iloc[:, j].to_numpy(dtype=float)
        ids = np.cumsum(over & ~np.concatenate([[False], over[:-1]]))
        for k in np.unique(ids[over]):
            pos = np.flatnonzero(over & (ids == k))
            s, e = pos[0], pos[-1]
            rows.append({
                "limit": limit_name, "portfolio": name,
                "symbol": None if sym is None else sym.iloc[s, j],
                "severity": "critical", "timestamp": idx[s], "value": v[s],
                "threshold": np.nan, "worst": v[s], "worst_time": idx[s], "end": idx[e],
                "observations": len(pos)})
    return breaches_frame(rows)


def episodes(values: pd.Series | pd.DataFrame, limit_name: str, limit: Limit, *,
             symbols: pd.Series | pd.DataFrame | None = None,
             breaks: np.ndarray | None = None) -> pd.DataFrame:
    """One row per breach episode and severity (see the module's description).

    ``values`` has one column per portfolio; ``symbols`` (same shape) names the column
    behind each value; ``breaks`` marks rows that start a new period (new days).
    """
    frame = values.to_frame() if isinstance(values, pd.Series) else values
    sym = symbols.to_frame() if isinstance(symbols, pd.Series) else symbols
    rows = []
    for j, name in enumerate(frame.columns):
        v = frame.iloc[:, j].to_numpy(dtype=float)
        idx = frame.index
        for severity, thr in limit.levels():
            over = v > thr
            if not over.any():
                continue
            prev = np.concatenate([[False], over[:-1]])
            start = over & ~prev
            if breaks is not None:
                start |= over & breaks
            ids = np.cumsum(start)
            for k in np.unique(ids[over]):
                pos = np.flatnonzero(over & (ids == k))
                s, e = pos[0], pos[-1]
                w = pos[np.argmax(v[pos])]
                rows.append({
                    "limit": limit_name, "portfolio": name,
                    "symbol": None if sym is None else sym.iloc[s, j],
                    "severity": severity, "timestamp": idx[s], "value": v[s],
                    "threshold": thr, "worst": v[w], "worst_time": idx[w],
                    "end": idx[e], "observations": len(pos)})
    return breaches_frame(rows)


def breaches_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A breach table with :data:`BREACH_COLUMNS`, in time order."""
    out = pd.DataFrame(rows, columns=BREACH_COLUMNS)
    if out.empty:
        return out.astype({"value": float, "threshold": float, "worst": float,
                           "observations": np.int64})
    return out.sort_values(["timestamp", "limit", "portfolio", "threshold"],
                           kind="stable").reset_index(drop=True)
