"""Prometheus metrics of the service at ``/metrics`` (text exposition format).

Each app has a registry of its own (:class:`ServiceMetrics`, on
``app.state.lab.extra["metrics"]``), fed from the engine's event bus by a callback
(:meth:`ServiceMetrics.on_event`, registered with ``bus.on_event``) that runs in the
publishing thread: it only bumps counters and sets gauges (prometheus_client's are
thread-safe), under a lock for the little state it keeps (peak equity, order ids seen).

Metrics (prefix ``alphatrade_``):

=====================================  =========================================================
``bars_total``                         bar timestamps processed ("bar" events)
``bar_symbols_total``                  symbol bars in them
``orders_total``                       distinct orders seen ("order" events, by client id)
``order_updates_total{status}``        order events by status
``rejects_total``                      orders rejected
``fills_total``, ``filled_qty_total``  fills and the quantity they filled
``signals_total{intent}``              signals that led to an order
``equity``, ``equity_peak``            last total equity and its running peak
``drawdown``                           ``1 - equity / peak`` (0 at a new high)
``alerts_total{level}``                alerts raised ("alert" events)
``alerts_sent_total``                  "alert" events that say they were delivered
                                       (a ``delivered`` key and no ``failed`` one)
``alerts_failed_total``                "alert" events with a non-empty ``failed``
``alert_manager_sent_total``,          an AlertManager's own counts, read at scrape time
``alert_manager_failed_total{sink}``   (set ``metrics.alert_manager = manager``)
``drift_breaches_total``               drift events that drifted (``drifted`` not False)
``risk_events_total``                  risk breaches and blocked orders
``feed_events_total{kind}``            feed events (gap, duplicate, rejected, ...)
``events_total{topic}``                every bus event
``last_event_seq``                     the bus's last sequence number seen
``last_event_age_seconds``             now minus the last event's publish time
``event_lag_seconds``                  histogram: publish time to delivery to a WebSocket
                                       client (observed by the ws module)
``websocket_clients``                  WebSocket clients connected (set by the ws module)
=====================================  =========================================================

For the WebSocket module: ``m = app.state.lab.extra["metrics"]``; ``m.websocket_clients``
is a Gauge (``.inc()`` on connect, ``.dec()`` on disconnect); ``m.observe_lag(event)``
records ``time.time() - event.time`` when an event is sent to a client;
``m.websocket_messages`` (Counter) counts messages sent and ``m.websocket_dropped`` (Counter)
events a slow client lost.

>>> from alphatrade_lab.live import EventBus
>>> bus = EventBus()
>>> m = ServiceMetrics(bus)
>>> _ = bus.publish("fill", {"symbol": "AAA", "qty": 2.0, "price": 10.0})
>>> m.value("alphatrade_fills_total"), m.value("alphatrade_filled_qty_total")
(1.0, 2.0)
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily

__all__ = ["ServiceMetrics", "router", "setup"]

_PREFIX = "alphatrade_"
_SEEN_ORDERS = 100_000  # order ids remembered to count distinct orders


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


class _AlertManagerCollector:
    """Alerts sent / failed as counted by an AlertManager (read at scrape time)."""

    def __init__(self, metrics: ServiceMetrics):
        self.metrics = metrics

    def collect(self) -> Any:
        manager = self.metrics.alert_manager
        if manager is None:
            return
        counts = getattr(manager, "counts", {}) or {}
        sent = CounterMetricFamily(_PREFIX + "alert_manager_sent", "Alerts the AlertManager "
                                   "sent (all sinks)")
        sent.add_metric([], float(counts.get("sent", 0)))
        yield sent
        failed = CounterMetricFamily(_PREFIX + "alert_manager_failed",
                                     "Deliveries that failed, by sink", labels=["sink"])
        for sink, n in sorted((counts.get("failed") or {}).items()):
            failed.add_metric([str(sink)], float(n))
        yield failed

    def describe(self) -> list:
        return []


class ServiceMetrics:
    """The service's Prometheus metrics in a registry of their own.

    Parameters
    ----------
    bus
        An :class:`~alphatrade_lab.live.EventBus` to count events from (None: no bus; the
        counters stay at 0).
    alert_manager
        An :class:`~alphatrade_lab.alerts.AlertManager` whose ``counts`` are exported as
        ``alphatrade_alert_manager_sent_total`` / ``..._failed_total{sink}``.
    """

    def __init__(self, bus: Any = None, alert_manager: Any = None):
        self.registry = CollectorRegistry(auto_describe=True)
        self.alert_manager = alert_manager
        r, p = self.registry, _PREFIX
        self.bars = Counter(p + "bars", "Bar timestamps processed", registry=r)
        self.bar_symbols = Counter(p + "bar_symbols", "Symbol bars processed", registry=r)
        self.orders = Counter(p + "orders", "Distinct orders seen", registry=r)
        self.order_updates = Counter(p + "order_updates", "Order events by status",
                                     ["status"], registry=r)
        self.rejects = Counter(p + "rejects", "Orders rejected", registry=r)
        self.fills = Counter(p + "fills", "Fills", registry=r)
        self.filled_qty = Counter(p + "filled_qty", "Quantity filled", registry=r)
        self.signals = Counter(p + "signals", "Signals that led to an order", ["intent"],
                               registry=r)
        self.equity = Gauge(p + "equity", "Last total equity", registry=r)
        self.equity_peak = Gauge(p + "equity_peak", "Highest total equity seen", registry=r)
        self.drawdown = Gauge(p + "drawdown", "1 - equity / peak equity", registry=r)
        self.alerts = Counter(p + "alerts", "Alerts raised", ["level"], registry=r)
        self.alerts_sent = Counter(p + "alerts_sent", "Alerts delivered by every sink",
                                   registry=r)
        self.alerts_failed = Counter(p + "alerts_failed", "Alerts a sink failed to deliver",
                                     registry=r)
        self.drift_breaches = Counter(p + "drift_breaches", "Drift events that drifted",
                                      registry=r)
        self.risk_events = Counter(p + "risk_events", "Risk breaches and blocked orders",
                                   registry=r)
        self.feed_events = Counter(p + "feed_events", "Feed events by kind", ["kind"],
                                   registry=r)
        self.events = Counter(p + "events", "Bus events by topic", ["topic"], registry=r)
        self.last_seq = Gauge(p + "last_event_seq", "Sequence number of the last bus event",
                              registry=r)
        self.event_lag = Histogram(p + "event_lag_seconds", "Publish time to delivery to a "
                                   "WebSocket client", registry=r,
                                   buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.websocket_clients = Gauge(p + "websocket_clients", "WebSocket clients connected",
                                       registry=r)
        self.websocket_messages = Counter(p + "websocket_messages", "Messages sent to "
                                          "WebSocket clients", registry=r)
        self.websocket_dropped = Counter(p + "websocket_dropped", "Events a slow WebSocket "
                                         "client lost", registry=r)
        self.last_event_time: float | None = None
        Gauge(p + "last_event_age_seconds", "Seconds since the last bus event was published "
              "(NaN: none yet)", registry=r).set_function(self._age)
        r.register(_AlertManagerCollector(self))
        self._lock = threading.Lock()
        self._peak = -math.inf
        self._seen: OrderedDict[str, None] = OrderedDict()
        if bus is not None:
            bus.on_event(self.on_event)

    def __repr__(self) -> str:
        return f"ServiceMetrics(events={self.value(_PREFIX + 'events_total'):.0f})"

    def _age(self) -> float:
        t = self.last_event_time
        return math.nan if t is None else max(time.time() - t, 0.0)

    def observe_lag(self, event: Any) -> None:
        """Record ``now - event.time`` (seconds) for an event delivered to a client."""
        self.event_lag.observe(max(time.time() - float(event.time), 0.0))

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """The current value of a sample (0.0 when absent), e.g.
        ``value("alphatrade_fills_total")``."""
        got = self.registry.get_sample_value(name, labels or {})
        return 0.0 if got is None else float(got)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    # ----------------------------------------------------------------- bus callback
    def on_event(self, event: Any) -> None:
        """Count one bus event (runs in the publishing thread: quick, never raises)."""
        try:
            self._count(event.topic, event.data if isinstance(event.data, dict) else {})
        finally:
            self.events.labels(str(event.topic)).inc()
            self.last_seq.set(event.seq)
            self.last_event_time = float(event.time)

    def _count(self, topic: str, data: dict[str, Any]) -> None:
        if topic == "bar":
            self.bars.inc()
            bars = data.get("bars")
            self.bar_symbols.inc(len(bars) if isinstance(bars, dict) else 1)
        elif topic == "order":
            status = str(data.get("status", "unknown"))
            self.order_updates.labels(status).inc()
            if status == "rejected":
                self.rejects.inc()
            coid = str(data.get("client_order_id", ""))
            with self._lock:
                new = coid not in self._seen
                if new:
                    self._seen[coid] = None
                    if len(self._seen) > _SEEN_ORDERS:
                        self._seen.popitem(last=False)
            if new:
                self.orders.inc()
        elif topic == "fill":
            self.fills.inc()
            qty = _number(data.get("qty"))
            if qty is not None and qty > 0:
                self.filled_qty.inc(qty)
        elif topic == "signal":
            self.signals.labels(str(data.get("intent", "unknown"))).inc()
        elif topic == "equity":
            eq = _number(data.get("equity"))
            if eq is not None:
                with self._lock:
                    self._peak = max(self._peak, eq)
                    peak = self._peak
                self.equity.set(eq)
                self.equity_peak.set(peak)
                self.drawdown.set(1.0 - eq / peak if peak > 0 else 0.0)
        elif topic == "alert":
            self.alerts.labels(str(data.get("level", "unknown"))).inc()
            failed = data.get("failed")
            if failed:
                self.alerts_failed.inc()
            elif "delivered" in data:
                self.alerts_sent.inc()
        elif topic == "drift":
            if data.get("drifted", True) is not False:
                self.drift_breaches.inc()
        elif topic == "risk":
            self.risk_events.inc()
        elif topic == "feed":
            self.feed_events.labels(str(data.get("kind", "unknown"))).inc()


def setup(app: Any) -> None:
    """Give ``app`` its :class:`ServiceMetrics` (``app.state.lab.extra["metrics"]``), fed
    from the app's bus."""
    lab = app.state.lab
    lab.extra["metrics"] = ServiceMetrics(lab.bus, lab.extra.get("alert_manager"))


router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                             "description": "Prometheus text format"}})
def metrics(request: Request) -> Response:
    """The service's metrics in the Prometheus text exposition format."""
    m: ServiceMetrics = request.app.state.lab.extra["metrics"]
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)
