"""The engine: closed bars in, orders out, everything recorded as it happens.

For each timestamp's closed bars the engine, in this order (the backtest kernel's order):

1. lets a paper broker fill its pending ``next_open`` orders at the bars' opens, and reads
   what a real broker filled since the last bar;
2. values the positions at the closes and asks the strategy for the bars' signals;
3. turns each signal into an intent with the backtest's rule (``resolve_action_nb``),
   checks it against the pre-trade limits (position size, gross exposure, the daily-loss
   kill switch) and sends the order, with a deterministic client order id;
4. records equity, positions, orders, fills, signals and feed events, in batches, in the
   lab store, with the engine's state in the same transaction; updates the risk manager,
   sends alerts, and publishes every step on the event bus.

A run killed at any point and started again with the same ``run_id`` and store resumes
from its last recorded batch: the bars up to it only warm up the strategy, orders of the
bars after it are looked up at the broker by their client order id before anything is
sent, so no order is sent twice.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.backtest import kernels as backtest_nb
from alphatrade_lab.errors import BrokerError, BrokerUnavailable, OrderRejected
from alphatrade_lab.events import AlertDispatcher, AlertLevel
from alphatrade_lab.live.brokers.base import Broker, fill_delta
from alphatrade_lab.live.brokers.paper import PaperBroker
from alphatrade_lab.live.bus import EventBus
from alphatrade_lab.live.feeds import BarGuard, FeedEvent
from alphatrade_lab.live.orders import (
    Bar,
    Fill,
    Intent,
    Order,
    OrderRequest,
    OrderStatus,
    client_order_id,
)
from alphatrade_lab.live.sizing import order_quantity
from alphatrade_lab.live.strategies import Signal, Strategy
from alphatrade_lab.live.trades import TradeBook
from alphatrade_lab.live.writer import StoreWriter, columns_frame
from alphatrade_lab.risk import RiskLimits, RiskManager

__all__ = ["Engine", "EngineResult"]

_DIRECTIONS = {"longonly": backtest_nb.LONGONLY, "shortonly": backtest_nb.SHORTONLY,
               "both": backtest_nb.BOTH}
_ENTRIES = (Intent.OPEN_LONG, Intent.OPEN_SHORT, Intent.TO_LONG, Intent.TO_SHORT)


@dataclass
class EngineResult:
    """What a run did: ``orders`` (final state of each), ``fills``, ``trades`` (the columns
    of :attr:`Portfolio.trades`), ``equity`` (timestamp × cash pool), ``events`` (skipped
    bars, gaps, rejections, risk blocks), ``signals`` and ``latency_us`` (the engine's own
    work per timestamp, in microseconds)."""

    run_id: str
    orders: pd.DataFrame
    fills: pd.DataFrame
    trades: pd.DataFrame
    equity: pd.DataFrame
    events: pd.DataFrame
    signals: pd.DataFrame
    latency_us: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    bars: int = 0
    resumed_from: pd.Timestamp | None = None

    def latency(self) -> dict[str, float]:
        """p50, p99 and max of the per-timestamp work, in microseconds."""
        lat = self.latency_us
        if not len(lat):
            return {"p50": math.nan, "p99": math.nan, "max": math.nan}
        p50, p99 = np.percentile(lat, [50, 99])
        return {"p50": float(p50), "p99": float(p99), "max": float(lat.max())}


def _day(t: pd.Timestamp) -> int:
    """The UTC day number of a timestamp (days since the epoch)."""
    return t.value // 86_400_000_000_000


def _threshold(limit: Any) -> float | None:
    return None if limit is None else float(getattr(limit, "threshold", limit))


class _Risk:
    """The pre-trade checks and the daily-loss kill switch, on the limits' thresholds."""

    def __init__(self, limits: RiskLimits):
        self.limits = limits
        self.killed: dict[str, int] = {}  # cash pool -> UTC day number the switch went on

    def killed_now(self, intent: Intent, day: int, pool: str) -> str | None:
        """Why an entry is blocked whatever its size (the kill switch is on), or None.
        Exits are never blocked."""
        if intent in _ENTRIES and self.killed.get(pool) == day:
            return "daily-loss kill switch is on for the day"
        return None

    def check(self, intent: Intent, qty: float, price: float, symbol: str,
              positions: dict[str, float], marks: dict[str, float], equity: float) -> str | None:
        """Why the order is blocked by the exposure limits, or None (after
        :meth:`killed_now`). Exits are never blocked. ``positions`` and ``equity`` are
        those of the symbol's cash pool."""
        if intent not in _ENTRIES:
            return None
        if not equity > 0:
            return f"equity is {equity:.2f}"
        sign = 1.0 if intent.side == "buy" else -1.0
        new_pos = positions.get(symbol, 0.0) + sign * qty
        value = abs(new_pos * price)
        cap = _threshold(self.limits.position_size)
        if cap is not None and value / equity > cap:
            return f"position in {symbol} would be {value / equity:.2f} x equity (limit {cap:g})"
        cap = _threshold(self.limits.gross_exposure)
        if cap is not None:
            gross = value + sum(abs(q * marks.get(s, math.nan)) for s, q in positions.items()
                                if s != symbol)
            if gross / equity > cap:
                return f"gross exposure would be {gross / equity:.2f} x equity (limit {cap:g})"
        return None


class Engine:
    """Run a strategy on closed bars through a broker.

    Parameters
    ----------
    feed
        An iterable of :class:`~alphatrade_lab.live.orders.Bar` (and ``None`` heartbeats):
        :class:`~alphatrade_lab.live.ReplayFeed`, :class:`~alphatrade_lab.live.PollingFeed`.
    strategy
        :class:`~alphatrade_lab.live.SignalStrategy` or
        :class:`~alphatrade_lab.live.ModelStrategy`.
    broker
        :class:`~alphatrade_lab.live.PaperBroker` or a real broker's adapter.
    risk
        :class:`~alphatrade_lab.risk.RiskLimits` (or a mapping of them, or a
        :class:`~alphatrade_lab.risk.RiskManager`): checked before each entry and
        streamed after each timestamp; None: no limits.
    store
        A :class:`~alphatrade_lab.store.LabStore`: orders, fills, equity, positions,
        signals and feed events recorded in batches of ``flush_every`` timestamps, with
        the state to resume from.
    alerts
        An alert manager (rejections, broker outages, risk breaches, the kill switch).
    bus
        The :class:`~alphatrade_lab.live.EventBus` to publish on (a new one by default).
    run_id
        The run's id; the same id with the same store resumes a killed run.
    direction, size
        As in :func:`atl.backtest.from_signals` (``size``: the fraction of cash per entry).
    fees, fixed_fees, slippage, size_granularity
        Used to size real brokers' orders (the paper broker has its own).
    symbols
        The symbols traded (bars of others are skipped); default: any.
    bar_length
        The bar length, to report gaps (default: the feed's ``bar_length``).
    flush_every, flush_interval, max_bars
        A store batch is written (from a thread of its own) after ``flush_every``
        timestamps, after ``flush_interval`` seconds, or when the feed has nothing more for
        now; stop after ``max_bars`` timestamps (None: at the feed's end).
    """

    def __init__(self, feed: Iterable[Bar | None], strategy: Strategy, broker: Broker, *,
                 risk: Any = None, store: Any = None, alerts: AlertDispatcher | None = None,
                 bus: EventBus | None = None, run_id: str | None = None,
                 direction: str = "longonly", size: float | None = None,
                 fees: float = 0.0, fixed_fees: float = 0.0, slippage: float = 0.0,
                 size_granularity: float | None = None, symbols: Iterable[str] | None = None,
                 bar_length: Any = None, flush_every: int = 10_000, flush_interval: float = 1.0,
                 max_bars: int | None = None):
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {list(_DIRECTIONS)}, got {direction!r}")
        self.fraction = 1.0 if size is None else float(size)
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"size must be in (0, 1], got {size!r}")
        self.feed, self.strategy, self.broker = feed, strategy, broker
        self.paper = isinstance(broker, PaperBroker)
        # each symbol its own cash pool (a paper broker without cash sharing)
        self._own_pools = self.paper and not broker.cash_sharing  # type: ignore[attr-defined]
        self.direction = direction
        self._dir = _DIRECTIONS[direction]
        if isinstance(risk, RiskManager):
            self.risk_manager: RiskManager | None = risk
        elif risk is not None:
            self.risk_manager = RiskManager(risk, manager=alerts)
        else:
            self.risk_manager = None
        self._risk = _Risk(self.risk_manager.limits) if self.risk_manager else None
        self.store, self.alerts = store, alerts
        self.bus = bus if bus is not None else EventBus()
        self.mode = "paper" if self.paper else "live"
        self.run_id = run_id or f"{self.mode}-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S%f}"
        self.costs: dict[str, Any] = dict(fees=float(fees), fixed_fees=float(fixed_fees),
                          slippage=float(slippage), granularity=size_granularity)
        if self.paper:
            b = broker
            assert isinstance(b, PaperBroker)
            self.costs = dict(fees=b.fees, fixed_fees=b.fixed_fees, slippage=b.slippage,
                              granularity=None if math.isnan(b.gran) else b.gran)
        bar_len = bar_length if bar_length is not None else getattr(feed, "bar_length", None)
        self.guard = BarGuard(symbols, None if bar_len is None else pd.Timedelta(bar_len))
        self.flush_every = max(int(flush_every), 1)
        self.flush_interval = float(flush_interval)
        self._writer: StoreWriter | None = None
        self._since_flush = 0
        self._flushed_at = time.monotonic()
        self.max_bars = max_bars
        self.book = TradeBook()
        self._stop = threading.Event()
        self._orders: dict[str, Order] = {}  # orders not final yet (last seen state), by id
        self._requests: dict[str, OrderRequest] = {}
        self._last_signal: dict[str, tuple] = {}
        self._actions: dict[tuple, Intent] = {}  # see _action
        self._open: dict[str, tuple[Order, pd.Timestamp]] = {}  # not final yet
        self._marks: dict[str, float] = {}
        self._recover = 0                          # timestamps to look orders up before sending
        self._resume_until: pd.Timestamp | None = None
        self._last_t: pd.Timestamp | None = None
        self._n_slices = 0
        self._bars = 0
        self._pending_rows = self._empty_batch()
        self._mem = self._empty_batch()  # everything, for the result (no store)
        self._eq_t = array("q")
        self._eq_v: dict[str, array] = {}
        self._latency = array("d")
        self.seconds = 0.0  # wall time of the last run(), store writes included

    # ------------------------------------------------------------ control
    def stop(self) -> None:
        """Stop after the timestamp being processed (safe from another thread or a
        signal handler); :meth:`run` then flushes and returns."""
        self._stop.set()
        stop = getattr(self.feed, "stop", None)
        if callable(stop):
            stop()

    # -------------------------------------------------------------- resume
    def _resume(self) -> None:
        if self.store is None:
            return
        state = self.store.live_state(self.run_id)
        if not state:
            return
        # The trades are rebuilt from the recorded fills (the same arithmetic, so the same
        # numbers): the state stays small however long the run.
        fills = self.store.fills(self.run_id)
        if len(fills):
            fills = fills.sort_values(["bar_time", "timestamp"], kind="stable")
            for r in fills.itertuples(index=False):
                self.book.add(Fill(r.client_order_id, r.symbol, r.side, float(r.qty),
                                   float(r.price), float(r.fees), r.timestamp, r.bar_time),
                              r.bar_time)
        if self.paper and state.get("broker") is not None:
            self.broker.load_state(state["broker"])  # type: ignore[attr-defined]
        for coid, d in state.get("open", {}).items():
            o = Order(coid, d["symbol"], d["side"], float(d["qty"]),
                      OrderStatus(d["status"]), float(d["filled_qty"]),
                      float(d["filled_avg_price"]), float(d["fees"]))
            self._open[coid] = (o, pd.Timestamp(d["bar_time"]))
            self._orders[coid] = o
        self._marks = {str(k): float(v) for k, v in state.get("marks", {}).items()}
        for sym, price in self._marks.items():
            self.book.mark(sym, price)
        self._resume_until = state["last_bar_time"]
        self._n_slices = int(state.get("slices", 0))
        self._last_t = self._resume_until
        self._bars = int(state.get("bars", 0))
        # orders of the timestamps after the last written batch (at most flush_every of
        # them, one batch) are looked up at the broker before anything is sent
        self._recover = self.flush_every + 1
        self._publish("status", {"run_id": self.run_id, "status": "resumed",
                                 "after": str(self._resume_until)})

    def _state(self) -> dict[str, Any]:
        return {                "broker": self.broker.state_dict() if self.paper else None,  # type: ignore
                "open": {coid: {**o.to_dict(), "status": o.status.value,
                                "submitted_at": None, "bar_time": str(t)}
                         for coid, (o, t) in self._open.items()},
                "marks": self._marks,
                "direction": self.direction, "mode": self.mode, "slices": self._n_slices,
                "bars": self._bars}

    # ---------------------------------------------------------------- run
    def run(self) -> EngineResult:
        """Process the feed until it ends, :meth:`stop` is called or ``max_bars``
        timestamps were processed; returns the :class:`EngineResult`."""
        existed = False
        if self.store is not None:
            runs = self.store.runs(run_id=self.run_id)
            existed = bool(len(runs))
            if not existed:
                self.store.record_run(self.mode, {"strategy": self.strategy.name,
                                                  "broker": self.broker.name,
                                                  "direction": self.direction,
                                                  "size": self.fraction}, run_id=self.run_id)
        self._resume()
        if existed and not self._recover:
            # the run was started before and killed ahead of its first batch: its first
            # timestamps' orders may be at the broker already, so look them up too
            self._recover = self.flush_every + 1
        if self.store is not None:
            self._writer = StoreWriter(self.store, self.run_id)
        self._publish("status", {"run_id": self.run_id, "status": "started"})
        pending: list[Bar] = []
        started = time.perf_counter()
        try:
            for item in self.feed:
                if item is None:  # the feed has nothing more for now
                    if pending:
                        self._process(pending)
                        pending = []
                    if self._since_flush:
                        self._flush()
                elif pending and item.timestamp.value != pending[0].timestamp.value:
                    self._process(pending)
                    pending = [item]
                else:
                    pending.append(item)
                if self._stop.is_set() or (self.max_bars is not None
                                           and self._n_slices >= self.max_bars):
                    pending = []
                    break
            if pending and not self._stop.is_set():
                self._process(pending)
        finally:
            if self._writer is not None:
                try:
                    if self._writer.error is None:
                        self._flush()
                finally:
                    self._writer.close()
            self.seconds = time.perf_counter() - started
            self._publish("status", {"run_id": self.run_id, "status": "stopped"})
        return self.result()

    # ---------------------------------------------------------- per slice
    def _process(self, bars: list[Bar]) -> None:
        # Up to the last recorded batch of a resumed run: warm-up only, all of it is stored.
        warm = self._resume_until is not None and bars[0].timestamp <= self._resume_until
        ok = []
        for b in bars:
            ev = self.guard.check(b)
            if ev is None or ev.kind == "gap":
                ok.append(b)
            if ev is not None and not warm:
                self._feed_event(ev)
        if not ok:
            return
        t = ok[0].timestamp
        if warm:
            self.strategy.on_bars(ok, self.direction)
            self.guard.processed = t
            return
        t0 = time.perf_counter()
        self._publish("bar", {"timestamp": t, "bars": {
            b.symbol: {"open": b.open, "high": b.high, "low": b.low, "close": b.close,
                       "volume": b.volume} for b in ok}})
        if self.paper:
            for order in self.broker.on_bar_open(ok):  # type: ignore[attr-defined]
                self._on_update(order, t)
            self.broker.on_bar_close(ok)  # type: ignore[attr-defined]
        for b in ok:
            self._marks[b.symbol] = b.close
            self.book.mark(b.symbol, b.close)
        if self._open and not self.paper:
            self._poll_open(t)
        signals = self.strategy.on_bars(ok, self.direction)
        for s in signals:
            self._act(s, t)
        self._record_equity(t)
        self.guard.processed = t
        self._last_t = t
        self._n_slices += 1
        self._bars += len(ok)
        if self._recover:
            self._recover -= 1
        self._latency.append((time.perf_counter() - t0) * 1e6)
        self._since_flush += 1
        if self._since_flush >= self.flush_every or (
                time.monotonic() - self._flushed_at >= self.flush_interval):
            self._flush()

    def _act(self, s: Signal, t: pd.Timestamp) -> None:
        if not (s.entry or s.exit):
            return
        symbol = s.symbol
        if self._open and any(o.symbol == symbol for o, _ in self._open.values()):
            self._record_signal(s, False)
            return  # one order at a time per symbol, as the backtest has one pending
        pos = self.book.position(symbol)
        action = self._action(pos, s.entry, s.exit)
        self._record_signal(s, action != Intent.NONE)
        if action == Intent.NONE:
            return  # not published: nothing happens on it
        self._publish("signal", {**s.to_dict(), "intent": action.name.lower()})
        pool = self._pool(symbol)
        if self._risk is not None:
            why = self._risk.killed_now(action, _day(t), pool)
            if why is not None:  # no need to size the order
                self._blocked(action, symbol, t, why)
                return
        price = self._marks[symbol]
        qty = self._quantity(action, symbol, pos, price)
        coid = client_order_id(self.run_id, t, symbol, 0)
        req = OrderRequest(coid, symbol, action, qty, t, price, self.fraction)
        if self._risk is not None:
            equity = (self.broker.equity_of(symbol)  # type: ignore[attr-defined]
                      if self.paper else self._equity_now())
            positions = {symbol: pos} if self._own_pools else self._pools().get(pool, {})
            why = self._risk.check(action, qty, price, symbol, positions, self._marks, equity)
            if why is not None:
                self._blocked(action, symbol, t, why)
                return
        if not self.paper and qty <= 0:
            self._event("rejected", symbol, t, f"{action.name.lower()}: no size would fill")
            return
        self._send(req, t)

    def _blocked(self, action: Intent, symbol: str, t: pd.Timestamp, why: str) -> None:
        self._event("risk_blocked", symbol, t, f"{action.name.lower()}: {why}")
        self._publish("risk", {"symbol": symbol, "timestamp": t, "blocked": why})

    def _action(self, pos: float, entry: bool, exit_: bool) -> Intent:
        """``resolve_action_nb``'s answer, remembered by what the kernel looks at (the
        position's sign, entry, exit; the direction is the run's): a kernel call per bar
        costs more than the rest of the decision."""
        key = (pos > 0, pos < 0, pos == 0, entry, exit_)
        action = self._actions.get(key)
        if action is None:
            action = Intent(int(backtest_nb.resolve_action_nb(pos, entry, exit_, self._dir)))
            self._actions[key] = action
        return action

    def _quantity(self, action: Intent, symbol: str, pos: float, price: float) -> float:
        if self.paper:
            cash, free, _, debt = self.broker.cash_of(symbol)  # type: ignore[attr-defined]
        else:
            acct = self.broker.account()
            cash, free, debt = acct.cash, acct.buying_power, 0.0
            if pos < 0:
                debt = -pos * price
        return order_quantity(action, cash=cash, free=free, position=pos, debt=debt,
                              price=price, fraction=self.fraction, **self.costs)

    def _send(self, req: OrderRequest, t: pd.Timestamp) -> None:
        self._requests[req.client_order_id] = req
        order: Order | None = None
        if self._recover and not self.paper:
            try:
                order = self.broker.get_order(req.client_order_id)
            except BrokerError as exc:
                self._event("error", req.symbol, t, f"order lookup failed: {exc}")
                return
        if order is None:
            try:
                order = self.broker.submit(req)
            except OrderRejected as exc:
                rejected = Order(req.client_order_id, req.symbol, req.side, req.qty,
                                 OrderStatus.REJECTED, reason=getattr(exc, "reason", "rejected"))
                self._record_order(rejected, req, t)
                self._event("rejected", req.symbol, t, str(exc))
                self._alert(AlertLevel.WARNING, f"order rejected: {req.symbol}", str(exc))
                return
            except BrokerUnavailable as exc:
                # Unknown whether it got through: look it up next bar, never resend blindly.
                unknown = Order(req.client_order_id, req.symbol, req.side, req.qty)
                self._open[req.client_order_id] = (unknown, t)
                self._orders[req.client_order_id] = replace(unknown)
                self._record_order(unknown, req, t)
                self._event("error", req.symbol, t, f"broker unavailable: {exc}")
                self._alert(AlertLevel.CRITICAL, "broker unavailable", str(exc))
                return
        self._record_order(order, req, t)
        self._orders[req.client_order_id] = Order(order.client_order_id, order.symbol,
                                                  order.side, order.qty)
        self._on_update(order, t, req)

    def _poll_open(self, t: pd.Timestamp) -> None:
        for coid in list(self._open):
            try:
                order = self.broker.get_order(coid)
            except BrokerError as exc:
                self._event("error", "", t, f"order lookup failed: {exc}")
                return
            if order is None:
                continue
            self._on_update(order, t)

    def _on_update(self, order: Order, t: pd.Timestamp, req: OrderRequest | None = None) -> None:
        """Book what changed in ``order`` since it was last seen."""
        coid = order.client_order_id
        before = self._orders.get(coid)
        fill = fill_delta(before, order, pd.Timestamp.now(tz="UTC"), t)
        if fill is not None:
            self._book_fill(fill, t)
        changed = before is None or before.status != order.status or fill is not None
        if changed and req is None:
            self._add("orders", self._order_row(order, self._requests.get(coid), t))
        if order.status.final:  # nothing more will happen to it: forget it (memory stays flat)
            self._open.pop(coid, None)
            self._orders.pop(coid, None)
            self._requests.pop(coid, None)
        else:
            snapshot = replace(order)
            self._orders[coid] = snapshot
            self._open[coid] = (snapshot, t)
        if changed:
            self._publish("order", order.to_dict())

    def _book_fill(self, fill: Fill, t: pd.Timestamp) -> None:
        self.book.add(fill, t)
        row = fill.to_dict()
        row["bar_time"] = t
        self._add("fills", row)
        qty = self.book.position(fill.symbol)
        self._add("positions", {"timestamp": t, "symbol": fill.symbol, "qty": qty,
                                "price": self._marks.get(fill.symbol, math.nan)})
        self._publish("fill", row)
        self._publish("position", {"symbol": fill.symbol, "qty": qty, "timestamp": t})

    # ---------------------------------------------------------- equity, risk
    def _equity_groups(self) -> dict[str, float]:
        if self.paper:
            return self.broker.equity_by_group()  # type: ignore[attr-defined]
        return {"portfolio": float(self.broker.account().equity)}

    def _keep_equity(self, t: pd.Timestamp, groups: dict[str, float]) -> None:
        self._eq_t.append(t.value)
        n = len(self._eq_t)
        for g, v in groups.items():
            col = self._eq_v.get(g)
            if col is None:
                col = self._eq_v[g] = array("d", [math.nan] * (n - 1))
            col.append(v)
        for col in self._eq_v.values():
            if len(col) < n:
                col.append(math.nan)

    def _pool(self, symbol: str) -> str:
        """The cash pool a symbol trades from: its own (paper, no cash sharing) or the
        account's."""
        return symbol if self._own_pools else "portfolio"

    def _pools(self) -> dict[str, dict[str, float]]:
        """Shares held in each symbol, by cash pool (one pass over the book)."""
        out: dict[str, dict[str, float]] = {}
        for sym, qty in self.book.positions().items():
            out.setdefault(self._pool(sym), {})[sym] = qty
        return out

    def _equity_now(self) -> float:
        return float(sum(self._equity_groups().values()))

    def _record_equity(self, t: pd.Timestamp) -> None:
        try:
            groups = self._equity_groups()
        except BrokerError as exc:
            self._event("error", "", t, f"account lookup failed: {exc}")
            return
        if self.store is None:
            self._keep_equity(t, groups)
        n = len(groups)
        self._extend("equity", {"timestamp": [t.value] * n, "portfolio": list(groups),
                                "equity": list(groups.values()), "cash": [None] * n},
                     keep=False)  # without a store: kept in arrays
        total = float(sum(groups.values()))
        self._publish("equity", {"timestamp": t, "equity": total, "groups": groups})
        if self.risk_manager is not None:
            breaches = []
            pools = self._pools()
            for pool, value in groups.items():
                positions = pools.get(pool, {})
                try:
                    breaches += self.risk_manager.update(t, value, positions,
                                                         prices=self._marks, portfolio=pool)
                except Exception as exc:  # a risk bug must not stop trading
                    self._event("error", "", t, f"risk update failed: {exc}")
            for br in breaches:
                self._publish("risk", br.to_dict())
                if br.limit == "daily_loss" and br.severity == "critical" and self._risk:
                    self._risk.killed[br.portfolio] = _day(t)
                    self._event("risk_blocked", "" if br.portfolio == "portfolio"
                                else br.portfolio, t, "daily-loss kill switch on: no new "
                                "entries until the next day")
                    if self.risk_manager.manager is None:
                        self._alert(AlertLevel.CRITICAL, "daily-loss kill switch",
                                    f"daily loss {br.value:.2%} over {br.threshold:.2%}")

    # --------------------------------------------------------------- records
    @staticmethod
    def _empty_batch() -> dict[str, dict[str, list[Any]]]:
        """Rows by table, as column lists (quick to append to and to make frames of)."""
        return {k: {} for k in ("orders", "fills", "equity", "positions", "signals", "events")}

    def _columns(self, table: str, keys: Any, keep: bool) -> dict[str, list[Any]] | None:
        """Where ``table``'s rows go: the store's next batch, or, without a store, the
        result (memory then grows with the run: give a store for long runs); None: nowhere
        (``keep=False`` without a store)."""
        if self.store is not None:
            cols = self._pending_rows[table]
        elif keep:
            cols = self._mem[table]
        else:
            return None
        if not cols:
            cols.update((k, []) for k in keys)
        return cols

    def _add(self, table: str, row: dict[str, Any], keep: bool = True) -> None:
        """One row for :meth:`_columns`' target."""
        cols = self._columns(table, row, keep)
        if cols is not None:
            for k, column in cols.items():
                column.append(row[k])

    def _extend(self, table: str, columns: dict[str, list[Any]], keep: bool = True) -> None:
        """Several rows at once, as :meth:`_add` takes one (``columns``: equal lengths)."""
        cols = self._columns(table, columns, keep)
        if cols is not None:
            for k, column in cols.items():
                column.extend(columns[k])

    def _order_row(self, order: Order, req: OrderRequest | None, t: pd.Timestamp
                   ) -> dict[str, Any]:
        return {"client_order_id": order.client_order_id, "submitted_at": order.submitted_at,
                "bar_time": req.bar_time if req is not None else t,
                "symbol": order.symbol, "side": order.side,
                "intent": req.intent.name.lower() if req is not None else None,
                "qty": order.qty, "reference_price": req.reference_price if req else None,
                "status": order.status.value, "filled_qty": order.filled_qty,
                "filled_avg_price": order.filled_avg_price, "fees": order.fees,
                "broker": self.broker.name, "broker_order_id": order.broker_order_id,
                "reason": order.reason, "updated_at": pd.Timestamp.now(tz="UTC")}

    def _record_order(self, order: Order, req: OrderRequest, t: pd.Timestamp) -> None:
        self._add("orders", self._order_row(order, req, t))

    def _record_signal(self, s: Signal, executed: bool) -> None:
        """Store a signal that led to an order or differs from the symbol's last stored one
        (a model says "flat" on most bars: storing each would only repeat it)."""
        key = (s.entry, s.exit, s.direction)
        if not executed and self._last_signal.get(s.symbol) == key:
            return
        self._last_signal[s.symbol] = key
        d = s.direction if s.direction else (1 if s.entry and not s.exit else
                                             (-1 if s.exit and not s.entry else 0))
        conf = s.confidence if math.isfinite(s.confidence) else None
        self._add("signals", {"timestamp": s.timestamp.value, "symbol": s.symbol,
                              "direction": int(d), "confidence": conf,
                              "model_type": self.strategy.name, "was_executed": executed})

    def _feed_event(self, ev: FeedEvent) -> None:
        BarGuard.warn(ev)
        self._event(ev.kind, ev.symbol, ev.timestamp, ev.detail)
        self._publish("feed", ev.to_dict())

    def _event(self, kind: str, symbol: str, t: pd.Timestamp | None, detail: str) -> None:
        self._add("events", {"timestamp": t, "received_at": pd.Timestamp.now(tz="UTC"),
                             "symbol": symbol or None, "kind": kind, "detail": detail})

    def _alert(self, level: AlertLevel, title: str, message: str) -> None:
        self._publish("alert", {"level": level.name.lower(), "title": title,
                                "message": message})
        if self.alerts is not None:
            try:
                self.alerts.submit(level, title, message, {"run_id": self.run_id})
            except Exception:  # alerting never stops the engine
                warnings.warn(f"alert not handed over: {title}", RuntimeWarning, stacklevel=2)

    def _publish(self, topic: str, data: dict[str, Any]) -> None:
        self.bus.publish(topic, data)

    def _flush(self) -> None:
        """Hand the batch and the state to the store writer (no store: nothing to do)."""
        self._since_flush = 0
        self._flushed_at = time.monotonic()
        if self._writer is None or self._last_t is None:
            return
        # A real broker's orders are recorded before the loop goes on (a restart then has
        # at most one batch of orders to look up); a paper run's lost batches replay alike.
        self._writer.submit(self._pending_rows, self._state(), self._last_t,
                            wait=not self.paper)
        self._pending_rows = self._empty_batch()

    # ---------------------------------------------------------------- result
    def result(self) -> EngineResult:
        """The run so far: read back from the store when there is one (the whole run,
        across restarts), else what this engine kept in memory."""
        if self.store is not None:
            return self._stored_result()

        def frame(table: str) -> pd.DataFrame:
            return columns_frame(self._mem[table])

        orders = frame("orders")
        if len(orders):
            orders = orders.drop_duplicates("client_order_id", keep="last").reset_index(
                drop=True)
        index = pd.DatetimeIndex(np.asarray(self._eq_t, dtype=np.int64)).tz_localize("UTC")
        equity = pd.DataFrame({g: np.asarray(v) for g, v in sorted(self._eq_v.items())},
                              index=index)
        return EngineResult(self.run_id, orders, frame("fills"),
                            self.book.frame(self._last_t), equity, frame("events"),
                            frame("signals"), np.asarray(self._latency), self._bars,
                            self._resume_until)

    def _stored_result(self) -> EngineResult:
        store, run = self.store, self.run_id

        def read(frame: pd.DataFrame, order: list[str]) -> pd.DataFrame:
            frame = frame.drop(columns=["run_id"], errors="ignore")
            return frame.sort_values(order, kind="stable").reset_index(drop=True) \
                if len(frame) else frame

        eq = store.equity(run)
        equity = (eq.pivot(index="timestamp", columns="portfolio", values="equity")
                  if len(eq) else pd.DataFrame())
        equity.columns.name = None
        equity.index.name = None
        return EngineResult(run, read(store.orders(run), ["bar_time", "client_order_id"]),
                            read(store.fills(run), ["timestamp"]),
                            self.book.frame(self._last_t), equity,
                            read(store.feed_events(run), ["received_at"]),
                            read(store.signals(run), ["timestamp", "symbol"]),
                            np.asarray(self._latency), self._bars, self._resume_until)
