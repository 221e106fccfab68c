"""``RiskManager``: check a backtest or a live (streaming) state against risk limits and
turn breaches into alerts.

>>> import numpy as np, alphatrade_lab as atl
>>> close = atl.data.to_wide(atl.data.load_sample(["AAA"]), "close").iloc[:3000]
>>> pf = atl.backtest.from_signals(close, np.arange(3000) % 60 == 0, np.arange(3000) % 60 == 30)
>>> rm = RiskManager(RiskLimits(max_drawdown=0.02, daily_loss=None, consecutive_losses=None))
>>> b = rm.evaluate(pf)
>>> bool(np.isclose(b["value"].iloc[0], 1 - pf.equity.iloc[:, 0] / pf.equity.iloc[:, 0].cummax()
...                 ).any()), b["limit"].unique().tolist()
(True, ['max_drawdown'])
>>> a = rm.alert_for(b.iloc[0])
>>> a.title, a.level.name, a.message.startswith("Current value: ")
('Risk Alert: max_drawdown', 'CRITICAL', True)
"""

from __future__ import annotations

import concurrent.futures
import datetime
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.events import Alert, AlertDispatcher, AlertLevel
from alphatrade_lab.monitoring.alerting import drift_alerts
from alphatrade_lab.risk.limits import (
    BREACH_COLUMNS,
    INVALID_NAMES,
    Limit,
    RiskLimits,
    _ratio,
    breaches_frame,
    consecutive_losses,
    daily_loss,
    drawdown,
    episodes,
    exposures,
    invalid_episodes,
    loss_fraction,
    valid_equity,
)

__all__ = ["SUMMARY_COLUMNS", "Breach", "RiskManager"]

_PERCENT = {"max_drawdown", "daily_loss", "gross_exposure", "position_size"}
#: Columns of :meth:`RiskManager.summarize`: one row per limit and portfolio.
SUMMARY_COLUMNS = ["limit", "portfolio", "severity", "critical_episodes", "critical_threshold",
                   "warning_episodes", "warning_threshold", "first", "last", "worst",
                   "worst_time", "symbol"]


@dataclass
class Breach:
    """A limit crossed by a streaming update (the first observation of an episode)."""

    limit: str
    portfolio: str
    severity: str
    timestamp: pd.Timestamp
    value: float
    threshold: float
    symbol: Any = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_DAY_NS = 86_400_000_000_000


@dataclass
class _State:
    peak: float | None = None
    day: int | None = None  # the UTC day number (days since the epoch) of the last update
    day_ref: float | None = None
    last_equity: float | None = None  # the last valid (finite) equity
    last_ts: pd.Timestamp | None = None
    streak: int = 0
    active: dict[tuple[str, Any], bool] = field(default_factory=dict)
    bad_symbols: set[Any] = field(default_factory=set)  # invalid_position episodes on


def _fmt(limit: str, value: float) -> str:
    if limit in _PERCENT:
        return f"{value:.2%}"
    return f"{value:g}"


def _utc(ts: Any, portfolio: str) -> pd.Timestamp:
    if type(ts) is pd.Timestamp and ts.tzinfo is datetime.UTC:
        return ts  # the engine's timestamps: nothing to convert (this runs on every bar)
    try:
        t = pd.Timestamp(ts)
    except (TypeError, ValueError) as exc:
        raise DataError(f"risk update for portfolio {portfolio!r}: timestamp {ts!r} is not "
                        f"a time ({exc})") from None
    if pd.isna(t):
        raise DataError(f"risk update for portfolio {portfolio!r}: the timestamp is missing "
                        f"({ts!r})")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _number(value: Any, what: str, portfolio: str, ts: pd.Timestamp) -> float:
    """``value`` as a float (None is NaN); DataError for what is not a number."""
    if type(value) is float:
        return value
    if value is None:
        return float("nan")
    try:
        if isinstance(value, bool | str | bytes):
            raise TypeError(type(value).__name__)
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"risk update for portfolio {portfolio!r} at {ts}: {what} "
                        f"{value!r} is not a number ({exc})") from None


class RiskManager:
    """Evaluate :class:`~alphatrade_lab.risk.RiskLimits` and alert on breaches.

    Parameters
    ----------
    limits
        A :class:`RiskLimits`, a mapping of its field names, or None for the defaults.
    manager
        An :class:`~alphatrade_lab.alerts.AlertManager`: :meth:`update` then hands each
        breach to it without waiting (see :meth:`wait`), and :meth:`send` uses it. The
        futures wait in :attr:`pending`; past :attr:`max_pending` (10,000) the oldest
        finished ones are dropped, so a loop that never calls :meth:`wait` stays bounded.
    start_equity
        The streaming state's reference for the first day's loss (default: the first
        valid equity seen), as ``init_cash`` is for a backtest; finite and positive.

    Notes
    -----
    Missing or invalid inputs are reported, never skipped, the same way by
    :meth:`update` and :meth:`evaluate`: a NaN, missing or infinite equity is a
    ``critical`` breach of ``invalid_equity`` (a NaN pnl: ``invalid_pnl``; a NaN position
    value: ``invalid_position``, with its ``symbol``), with a NaN threshold; the invalid
    observation stays out of the running peak, the daily reference and the losing streak,
    so the next valid one is checked as if it had not happened. Equity at or below zero is
    valid (a loss of 100% or more; see :func:`~alphatrade_lab.risk.limits.loss_fraction`).
    Input that is not a number at all, a missing timestamp, or time going backwards (in
    :meth:`update`, or an unsorted equity index in :meth:`evaluate`) raises
    :class:`~alphatrade_lab.errors.DataError` and leaves the state unchanged.
    """

    def __init__(self, limits: RiskLimits | Mapping[str, Any] | None = None, *,
                 manager: AlertDispatcher | None = None, start_equity: float | None = None):
        if limits is None:
            limits = RiskLimits()
        elif isinstance(limits, Mapping):
            limits = RiskLimits.from_dict(limits)
        self.limits = limits
        self.manager = manager
        if start_equity is not None:
            start_equity = float(start_equity)
            if not (np.isfinite(start_equity) and start_equity > 0):
                raise ValueError(f"start_equity must be a finite number > 0, got "
                                 f"{start_equity}")
        self.start_equity = start_equity
        self._states: dict[str, _State] = {}
        self._levels_of: RiskLimits | None = None
        self._levels_by_name: dict[str, list[tuple[str, float]]] = {}
        self.pending: list[concurrent.futures.Future] = []
        self.max_pending = 10_000

    def __repr__(self) -> str:
        return f"RiskManager({self.limits!r})"

    # ----------------------------------------------------------- backtests
    def evaluate(self, pf: Any) -> pd.DataFrame:
        """Every breach of a :class:`~alphatrade_lab.backtest.Portfolio`, one row per
        episode and severity, in time order.

        Columns: ``limit, portfolio`` (the equity column), ``symbol`` (the position
        behind a ``position_size`` breach), ``severity`` (``warning``/``critical``),
        ``timestamp`` and ``value`` where the episode starts, ``threshold``, ``worst``
        and ``worst_time``, ``end`` (last observation above the threshold) and
        ``observations`` (bars, or trades for ``consecutive_losses``). Bars with a
        non-finite equity, NaN position values or trades with a NaN pnl give
        ``invalid_equity`` / ``invalid_position`` / ``invalid_pnl`` rows (critical,
        threshold NaN; see the class notes); an equity index out of time order raises
        :class:`~alphatrade_lab.errors.DataError`, and so does anything but a Portfolio
        (its equity alone lacks the positions, trades and starting cash the limits read).
        """
        if isinstance(pf, pd.Series | pd.DataFrame | np.ndarray):
            raise DataError(
                f"risk evaluate: got a {type(pf).__name__} (the equity curve?), not a "
                "Portfolio; pass the portfolio itself (risk.evaluate(pf), not "
                "risk.evaluate(pf.equity)): the limits also read its positions, trades and "
                "initial cash. To check equity values one bar at a time, use "
                "RiskManager.update(timestamp, equity, positions)")
        missing = [a for a in ("equity", "init_cash", "trades") if not hasattr(pf, a)]
        if missing:
            raise DataError(f"risk evaluate: expected a Portfolio (from atl.backtest."
                            f"from_signals or from_weights), got a {type(pf).__name__} "
                            f"without {', '.join(missing)}")
        eq = pf.equity
        eq = eq.to_frame("portfolio" if eq.name is None else eq.name) \
            if isinstance(eq, pd.Series) else eq
        if not eq.index.is_monotonic_increasing:
            bad = int(np.flatnonzero(np.asarray(eq.index[1:] < eq.index[:-1]))[0])
            raise DataError(f"risk evaluate: the portfolio's equity is not in time order "
                            f"(row {bad + 1}: {eq.index[bad + 1]} after {eq.index[bad]})")
        invalid = ~np.isfinite(eq.to_numpy(dtype=float))
        frames = [invalid_episodes(eq, pd.DataFrame(invalid, index=eq.index,
                                                    columns=eq.columns), "invalid_equity")]
        eq_valid = valid_equity(eq)
        lim = self.limits
        if isinstance(lim.max_drawdown, Limit):
            frames.append(episodes(drawdown(eq), "max_drawdown", lim.max_drawdown))
        if isinstance(lim.daily_loss, Limit):
            loss = daily_loss(eq, pf.init_cash)
            day = np.asarray(eq.index.floor("D")) if isinstance(eq.index, pd.DatetimeIndex) \
                else np.zeros(len(eq))
            breaks = np.concatenate([[True], day[1:] != day[:-1]])
            frames.append(episodes(loss, "daily_loss", lim.daily_loss, breaks=breaks))
        groups = self._group_columns(pf, eq.columns)
        if lim.gross_exposure is not None or lim.position_size is not None:
            values = self._position_values(pf)
            gross, top, which = {}, {}, {}
            for g, cols in groups.items():
                gross[g], top[g], which[g] = exposures(values[cols], eq_valid[g])
                bad = values[cols].isna()
                if bad.to_numpy().any():
                    first = bad.to_numpy().argmax(axis=1)
                    frames.append(invalid_episodes(
                        pd.Series(np.nan, index=eq.index, name=g),
                        pd.Series(bad.any(axis=1).to_numpy(), index=eq.index),
                        "invalid_position",
                        symbols=pd.Series(np.asarray(cols, dtype=object)[first],
                                          index=eq.index)))
            if isinstance(lim.gross_exposure, Limit):
                frames.append(episodes(pd.DataFrame(gross, index=eq.index), "gross_exposure",
                                       lim.gross_exposure))
            if isinstance(lim.position_size, Limit):
                frames.append(episodes(pd.DataFrame(top, index=eq.index), "position_size",
                                       lim.position_size,
                                       symbols=pd.DataFrame(which, index=eq.index)))
        if isinstance(lim.consecutive_losses, Limit):
            frames.append(self._streaks(pf, groups, lim.consecutive_losses))
        frames = [f for f in frames if len(f)]
        return breaches_frame([r for f in frames for r in f.to_dict("records")])

    @staticmethod
    def _group_columns(pf: Any, groups: pd.Index) -> dict[Any, list[Any]]:
        columns = pf.positions.columns if isinstance(pf.positions, pd.DataFrame) \
            else pd.Index([pf.positions.name])
        starts = getattr(pf, "_group_start", None)
        if starts is not None and len(starts) == len(groups) + 1:
            return {g: list(columns[starts[i]:starts[i + 1]]) for i, g in enumerate(groups)}
        if len(groups) == len(columns):
            return {g: [c] for g, c in zip(groups, columns, strict=True)}
        return {groups[0]: list(columns)}

    @staticmethod
    def _position_values(pf: Any) -> pd.DataFrame:
        """``position × last valid close``; 0 for a flat position, NaN where a held
        position has no price (or the position itself is NaN)."""
        pos = pf.positions
        pos = pos.to_frame() if isinstance(pos, pd.Series) else pos
        close = pd.DataFrame(pf._close.values, index=pos.index, columns=pos.columns).ffill()
        return (pos * close).mask(pos == 0, 0.0)

    @staticmethod
    def _streaks(pf: Any, groups: dict[Any, list[Any]], limit: Limit) -> pd.DataFrame:
        trades = pf.trades
        trades = trades[trades["status"] == "closed"]
        out = []
        for g, cols in groups.items():
            t = trades[trades["column"].isin(cols)].sort_values(
                ["exit_time", "entry_time"], kind="stable")
            if t.empty:
                continue
            pnl = t["pnl"].astype(float).set_axis(pd.Index(t["exit_time"]))
            streak = consecutive_losses(pnl)
            out.append(episodes(streak.rename(g).astype(float), "consecutive_losses", limit))
            out.append(invalid_episodes(pnl.rename(g), pnl.isna(), "invalid_pnl"))
        return breaches_frame([r for f in out for r in f.to_dict("records")])

    # ----------------------------------------------------------- streaming
    def update(self, timestamp: Any, equity: float,
               positions: Mapping[Any, float] | None = None,
               closed_trade_pnl: float | Iterable[float] | None = None, *,
               prices: Mapping[Any, float] | None = None,
               portfolio: str = "portfolio") -> list[Breach]:
        """Feed the state after a bar; returns the limits newly crossed.

        ``positions`` maps symbols to signed position *values* (or to sizes, with their
        ``prices``); ``closed_trade_pnl`` is the pnl of the trades closed at this step, in
        order. A breach is reported when a measure first exceeds a threshold and again
        only after it has gone back below it (a new day re-arms ``daily_loss``), as
        :meth:`evaluate` counts episodes. With a ``manager``, each breach is also sent
        (without waiting; see :meth:`wait`).
        """
        ts = _utc(timestamp, portfolio)
        eq = _number(equity, "equity", portfolio, ts)
        st = self._states.get(portfolio)
        if st is None:
            st = self._states[portfolio] = _State()
        if st.last_ts is not None and ts < st.last_ts:
            raise DataError(f"risk update for portfolio {portfolio!r}: timestamp {ts} is "
                            f"before the previous update's {st.last_ts}; updates must come "
                            "in time order")
        values, bad_positions = self._stream_positions(positions, prices, portfolio, ts)
        if closed_trade_pnl is None:
            pnls = []
        elif np.isscalar(closed_trade_pnl) or not isinstance(closed_trade_pnl, Iterable):
            pnls = [_number(closed_trade_pnl, "closed_trade_pnl", portfolio, ts)]
        else:
            pnls = [_number(p, "closed_trade_pnl", portfolio, ts) for p in closed_trade_pnl]
        st.last_ts = ts
        out: list[Breach] = []
        lim = self.limits
        levels = self._levels()
        day = ts.value // _DAY_NS  # UTC day number: ts is in UTC, so this is floor("D")
        if st.day is not None and day != st.day:
            st.day_ref = st.last_equity  # the last valid equity of an earlier day
            for sev in ("warning", "critical"):
                st.active.pop(("daily_loss", sev), None)
        st.day = day
        valid = math.isfinite(eq)
        self._flag(st, out, "invalid_equity", not valid, eq, ts, portfolio)
        if valid:
            if st.day_ref is None:
                st.day_ref = eq if self.start_equity is None else self.start_equity
            st.peak = eq if st.peak is None or eq > st.peak else st.peak
            st.last_equity = eq
            if "max_drawdown" in levels:
                self._check(st, out, "max_drawdown", levels["max_drawdown"],
                            loss_fraction(eq, st.peak), ts, portfolio)
            if "daily_loss" in levels:
                self._check(st, out, "daily_loss", levels["daily_loss"],
                            loss_fraction(eq, st.day_ref), ts, portfolio)
        if positions is not None and (st.bad_symbols or bad_positions):
            for sym in st.bad_symbols - bad_positions.keys():  # re-armed once valid again
                st.active[("invalid_position", sym)] = False
            for sym, value in bad_positions.items():
                self._flag(st, out, "invalid_position", True, value, ts, portfolio, sym,
                           key=("invalid_position", sym))
            st.bad_symbols = set(bad_positions)
        if valid and positions is not None and (lim.gross_exposure is not None
                                                or lim.position_size is not None):
            # exposures() on one row, without building frames (this runs on every bar);
            # the values are not NaN (those are in bad_positions)
            total, top_value, top_sym = 0.0, 0.0, None
            for k, v in values.items():
                a = abs(v)
                total += a
                if top_sym is None or a > top_value:
                    top_value, top_sym = a, k
            if "gross_exposure" in levels:
                self._check(st, out, "gross_exposure", levels["gross_exposure"],
                            _ratio(total, eq), ts, portfolio)
            if "position_size" in levels:
                self._check(st, out, "position_size", levels["position_size"],
                            _ratio(top_value, eq) if values else 0.0, ts, portfolio,
                            top_sym)
        for pnl in pnls:
            if pnl != pnl:
                self._flag(st, out, "invalid_pnl", True, pnl, ts, portfolio)
                continue  # an unknown outcome neither extends nor resets the streak
            self._flag(st, out, "invalid_pnl", False, pnl, ts, portfolio)
            st.streak = st.streak + 1 if pnl < 0 else 0
            if "consecutive_losses" in levels:
                self._check(st, out, "consecutive_losses", levels["consecutive_losses"],
                            float(st.streak), ts, portfolio)
        if self.manager is not None:
            for b in out:
                self.pending.append(self.manager.submit(self.alert_for(b)))
            if len(self.pending) > self.max_pending:
                # nobody calls wait(): keep the unfinished futures, drop the oldest finished
                # ones (their results are in the log and the store)
                done = [f for f in self.pending if f.done()]
                drop = set(done[:len(self.pending) - self.max_pending])
                self.pending = [f for f in self.pending if f not in drop]
        return out

    @staticmethod
    def _stream_positions(positions: Mapping[Any, float] | None,
                          prices: Mapping[Any, float] | None, portfolio: str,
                          ts: pd.Timestamp) -> tuple[dict[Any, float], dict[Any, float]]:
        """Signed position values (0 for a flat position, whatever its price) and, apart,
        those that are NaN."""
        values: dict[Any, float] = {}
        bad: dict[Any, float] = {}
        for k, v in (positions or {}).items():
            size = _number(v, f"position of {k!r}", portfolio, ts)
            if prices is not None:
                if k not in prices:
                    raise DataError(f"risk update for portfolio {portfolio!r} at {ts}: no "
                                    f"price for position {k!r} in prices")
                price = _number(prices[k], f"price of {k!r}", portfolio, ts)
                value = 0.0 if size == 0 else size * price
            else:
                value = size
            (bad if value != value else values)[k] = value
        return values, bad

    @staticmethod
    def _flag(st: _State, out: list[Breach], name: str, bad: bool, value: float,
              ts: pd.Timestamp, portfolio: str, symbol: Any = None,
              key: tuple[str, Any] | None = None) -> None:
        """An ``invalid_*`` check: a critical breach when an episode of bad input starts."""
        key = key or (name, "critical")
        if bad and not st.active.get(key, False):
            out.append(Breach(name, portfolio, "critical", ts, float(value), float("nan"),
                              symbol))
        st.active[key] = bad

    def _levels(self) -> dict[str, list[tuple[str, float]]]:
        """``(severity, threshold)`` pairs of each limit that is set, made once per
        :attr:`limits` (the streaming checks read them on every update)."""
        if self._levels_of is not self.limits:
            self._levels_by_name = {name: limit.levels() for name, limit in self.limits.items()
                                    if isinstance(limit, Limit)}
            self._levels_of = self.limits
        return self._levels_by_name

    @staticmethod
    def _check(st: _State, out: list[Breach], name: str, levels: list[tuple[str, float]],
               value: float, ts: pd.Timestamp, portfolio: str, symbol: Any = None) -> None:
        for severity, thr in levels:
            over = value > thr
            if over and not st.active.get((name, severity), False):
                out.append(Breach(name, portfolio, severity, ts, float(value), thr, symbol))
            st.active[(name, severity)] = over

    def reset(self, portfolio: str | None = None) -> None:
        """Forget the streaming state (of one portfolio, or all)."""
        if portfolio is None:
            self._states.clear()
        else:
            self._states.pop(portfolio, None)

    def wait(self, timeout: float | None = None) -> list[Any]:
        """Wait (at most ``timeout`` seconds in all) for the alerts :meth:`update` handed
        to the manager; their results, in order.

        Raises :class:`TimeoutError` if some are still in flight then; those stay in
        :attr:`pending` for the next call.
        """
        pending = list(self.pending)
        _, not_done = concurrent.futures.wait(pending, timeout=timeout)
        if not_done:
            raise TimeoutError(f"{len(not_done)} of {len(pending)} risk alerts still in "
                               f"flight after {timeout:g} s")
        self.pending = self.pending[len(pending):]
        return [f.result() for f in pending]

    # ----------------------------------------------------------- alerts
    @staticmethod
    def alert_for(breach: Breach | Mapping[str, Any] | pd.Series) -> Alert:
        """The alert for one breach: ``"Risk Alert: <limit>"``, ``"Current value: 12.34%,
        threshold 10.00% exceeded"``, CRITICAL or WARNING by severity."""
        b = breach.to_dict() if isinstance(breach, Breach) else dict(breach)
        limit, value, thr = b["limit"], float(b["value"]), float(b["threshold"])
        level = AlertLevel.CRITICAL if b["severity"] == "critical" else AlertLevel.WARNING
        data = {"limit": limit, "portfolio": b.get("portfolio"), "severity": b["severity"],
                "time": pd.Timestamp(b["timestamp"]).isoformat(), "value": value,
                "threshold": thr}
        if b.get("symbol") is not None and b.get("symbol") == b.get("symbol"):
            data["symbol"] = b["symbol"]
        if "worst" in b and b["worst"] == b["worst"]:
            data["worst"] = float(b["worst"])
        if limit in INVALID_NAMES:
            what = {"invalid_equity": "equity", "invalid_pnl": "a closed trade's pnl",
                    "invalid_position": f"the position value of {b.get('symbol')!r}"}[limit]
            message = (f"{what} is {value:g}, not a finite number: the risk limits cannot "
                       "be checked on it (missing or bad data)")
        else:
            message = (f"Current value: {_fmt(limit, value)}, threshold "
                       f"{_fmt(limit, thr)} exceeded")
        return Alert(level, f"Risk Alert: {limit}", message, data)

    @staticmethod
    def summarize(breaches: pd.DataFrame | Iterable[Breach]) -> pd.DataFrame:
        """One row per limit and portfolio: how many episodes, when, and the worst value.

        Columns (:data:`SUMMARY_COLUMNS`): ``limit, portfolio``; ``severity``, the worst
        reached (``critical`` if any episode was); ``critical_episodes`` and
        ``warning_episodes`` with their thresholds (NaN when the limit has no such
        level), counted as :meth:`evaluate` does: runs above each threshold, so one
        warning episode can hold several critical ones; ``first`` (the first episode's
        start) and ``last`` (the last observation above a threshold); ``worst`` and
        ``worst_time``; ``symbol`` (the position behind the worst ``position_size``
        value). Critical rows come first, then in time order.

        >>> b = pd.DataFrame({"limit": ["max_drawdown"] * 3, "portfolio": ["AAA"] * 3,
        ...     "symbol": None, "severity": ["warning", "critical", "warning"],
        ...     "timestamp": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-02-01"],
        ...                                 utc=True),
        ...     "value": [0.11, 0.21, 0.12], "threshold": [0.1, 0.2, 0.1],
        ...     "worst": [0.25, 0.25, 0.14], "worst_time": pd.to_datetime(
        ...         ["2024-01-05", "2024-01-05", "2024-02-02"], utc=True),
        ...     "end": pd.to_datetime(["2024-01-09", "2024-01-06", "2024-02-03"], utc=True),
        ...     "observations": [8, 4, 3]})
        >>> s = RiskManager.summarize(b).iloc[0]
        >>> s["severity"], int(s["critical_episodes"]), int(s["warning_episodes"])
        ('critical', 1, 2)
        >>> print(RiskManager.summary_alert(s).message)
        AAA: 1 critical episode (above 20.00%) and 2 warning episodes (above 10.00%) from
        2024-01-02 00:00 to 2024-02-03 00:00 UTC; worst 25.00% at 2024-01-05 00:00 UTC
        """
        frame = _breach_frame(breaches)
        rows = []
        for (limit, portfolio), g in frame.groupby(["limit", "portfolio"], sort=False):
            crit = (g["severity"] == "critical").to_numpy()
            top = g[crit] if crit.any() else g
            i = top["worst"].idxmax() if top["worst"].notna().any() else top.index[0]
            rows.append({
                "limit": limit, "portfolio": portfolio,
                "severity": "critical" if crit.any() else "warning",
                "critical_episodes": int(crit.sum()),
                "critical_threshold": g.loc[crit, "threshold"].max(),
                "warning_episodes": int((~crit).sum()),
                "warning_threshold": g.loc[~crit, "threshold"].max(),
                "first": g["timestamp"].min(), "last": g["end"].max(),
                "worst": top.at[i, "worst"], "worst_time": top.at[i, "worst_time"],
                "symbol": top.at[i, "symbol"],
            })
        out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
        if out.empty:
            return out
        return out.sort_values(["severity", "first"], ascending=[True, True],
                               kind="stable").reset_index(drop=True)

    @staticmethod
    def summary_alert(row: Mapping[str, Any] | pd.Series) -> Alert:
        """The alert for one row of :meth:`summarize`: ``"Risk Alert: <limit>"``,
        CRITICAL or WARNING by the worst severity, a message with the episode counts,
        the time span and the worst value."""
        r = dict(row)
        limit, portfolio = r["limit"], r["portfolio"]
        n_crit, n_warn = int(r["critical_episodes"]), int(r["warning_episodes"])
        who = str(portfolio)
        symbol = r.get("symbol")
        if symbol is not None and symbol == symbol:
            who += f" ({symbol})"
        span = f"from {_when(r['first'])} to {_when(r['last'])} UTC"
        if limit in INVALID_NAMES:
            what = {"invalid_equity": "the equity", "invalid_pnl": "a closed trade's pnl",
                    "invalid_position": "a position value"}[limit]
            message = (f"{who}: {_episodes(n_crit)} where {what} was not a finite number, "
                       f"{span}: the risk limits cannot be checked there (missing or bad "
                       "data)")
        else:
            parts = [f"{_episodes(n, sev)} (above {_fmt(limit, float(r[sev + '_threshold']))})"
                     for sev, n in (("critical", n_crit), ("warning", n_warn)) if n]
            message = (f"{who}: {' and '.join(parts)} {span}; worst "
                       f"{_fmt(limit, float(r['worst']))} at {_when(r['worst_time'])} UTC")
        data = {k: r[k] for k in SUMMARY_COLUMNS if k != "symbol"
                and not (k.endswith("_threshold") and r[k] != r[k])}
        for k in ("first", "last", "worst_time"):
            data[k] = pd.Timestamp(data[k]).isoformat() if pd.notna(data[k]) else None
        if symbol is not None and symbol == symbol:
            data["symbol"] = symbol
        level = AlertLevel.CRITICAL if r["severity"] == "critical" else AlertLevel.WARNING
        return Alert(level, f"Risk Alert: {limit}", message, data)

    def alerts(self, breaches: pd.DataFrame | Iterable[Breach], *,
               per_episode: bool = False) -> list[Alert]:
        """The alerts for breaches (rows of :meth:`evaluate` or :meth:`update`'s list):
        one per limit and portfolio (:meth:`summary_alert` of :meth:`summarize`), or
        with ``per_episode=True`` one per breach (:meth:`alert_for`)."""
        if per_episode:
            rows = breaches.to_dict("records") if isinstance(breaches, pd.DataFrame) \
                else list(breaches)
            return [self.alert_for(b) for b in rows]
        return [self.summary_alert(r) for r in self.summarize(breaches).to_dict("records")]

    def send(self, breaches: pd.DataFrame | Iterable[Breach],
             manager: AlertDispatcher | None = None, *,
             per_episode: bool = False) -> list[Any]:
        """Send the breaches' :meth:`alerts` (blocking) through ``manager`` or this risk
        manager's own (one is needed: ValueError otherwise).

        By default one alert per limit and portfolio summarises its episodes (a year
        of hourly bars can hold hundreds, and chat services deliver about one message
        a second); ``per_episode=True`` sends one alert per breach row.
        """
        return _send(self.alerts(breaches, per_episode=per_episode),
                     manager or self.manager)

    def send_drift(self, report: pd.DataFrame, manager: AlertDispatcher | None = None
                   ) -> list[Any]:
        """Send :func:`alphatrade_lab.monitoring.drift_alerts` of a drift report
        (WARNING, one per feature)."""
        return _send(drift_alerts(report), manager or self.manager)


_BREACH_REQUIRED = ("limit", "portfolio", "severity", "timestamp", "value", "threshold")


def _breach_frame(breaches: pd.DataFrame | Iterable[Breach]) -> pd.DataFrame:
    """Breaches as a frame of :data:`BREACH_COLUMNS`; a streamed :class:`Breach` (no
    episode end or worst yet) ends where it starts, at its value."""
    if isinstance(breaches, pd.DataFrame):
        missing = [c for c in _BREACH_REQUIRED if c not in breaches.columns]
        if missing:
            raise DataError(f"risk summary: the breach table has no column(s) {missing}; "
                            "pass the rows of RiskManager.evaluate(pf) (or update's "
                            "Breach list)")
        frame = breaches.reindex(columns=BREACH_COLUMNS)
    else:
        frame = breaches_frame([b.to_dict() if isinstance(b, Breach) else dict(b)
                                for b in breaches])
    start = frame["timestamp"]
    return frame.assign(worst=frame["worst"].fillna(frame["value"]),
                        worst_time=start.where(frame["worst_time"].isna(), frame["worst_time"]),
                        end=start.where(frame["end"].isna(), frame["end"]))


def _when(t: Any) -> str:
    return f"{pd.Timestamp(t):%Y-%m-%d %H:%M}"


def _episodes(n: int, severity: str = "") -> str:
    kind = f"{severity} " if severity else ""
    return f"{n} {kind}episode{'' if n == 1 else 's'}"


def _send(alerts: list[Alert], manager: AlertDispatcher | None) -> list[Any]:
    if not alerts:
        return []
    if manager is None:
        raise ValueError("RiskManager.send: pass an AlertManager (e.g. "
                         "alphatrade_lab.alerts.AlertManager.from_env()), here or to "
                         "RiskManager(manager=...)")
    return manager.send_many(alerts)
