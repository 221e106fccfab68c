"""Live updates over a WebSocket: ``/ws`` streams the engine's event bus to browsers.

The protocol
------------
Connect to ``/ws`` (with ``?token=<token>`` or an ``Authorization: Bearer`` header when the
service has a token; without it the server accepts and closes at once with code **1008**).

Query options: ``?topics=fill,equity`` (the topics to receive; default all) and
``?since=<seq>`` (resume: see below). Topic names are the bus's (:data:`TOPICS`: ``bar``,
``signal``, ``order``, ``fill``, ``equity``, ``position``, ``alert``, ``drift``, ``risk``,
``feed``, ``status``); a plural (``fills``) means the same, and ``*`` or ``all`` means every
topic. A malformed query gets an ``error`` message and the close code **4400**.

The server sends JSON text messages, each an object with a ``type``; when several are
waiting for a client they go out together, as one text message holding a JSON **array** of
them (in order): a client handles both forms.

``snapshot``
    First message of a new client (no ``since``): ``{"type": "snapshot", "seq": S,
    "live": bool, "topics": [...], "positions": {symbol: {"symbol", "qty", "timestamp"}},
    "equity": <last equity event's data or null>, "fills": [<last 100 fills>],
    "orders": [<last 100 orders>], "alerts": [<last 50 alerts>], "bar": <last bar data>,
    "status": <last status data>}``, the state after every bus event up to seq ``S``
    whatever the client's topics (``live`` is false when the service runs without an
    event bus). Deltas follow.
``event``
    One bus event: ``{"type": "event", "seq": n, "topic": "fill", "time": <publish time,
    seconds since the epoch>, "data": {...}}``. ``seq`` is the bus's sequence number:
    strictly increasing on a connection after each ``snapshot``/``resume`` message, with
    gaps for the topics the client did not ask for and where ``equity`` ticks were
    conflated: a client that does not keep up gets only the latest equity waiting, and that
    event carries ``"conflated": k``, the number of equity events it replaced.
``resume``
    Answer to ``?since=S`` or ``{"resume": S}``: ``{"type": "resume", "since": S, "seq": L,
    "count": k}``, followed by the ``k`` kept events of the client's topics after ``S`` (up
    to ``L``), then deltas. When the bus no longer keeps every event after ``S``, the server
    sends a ``snapshot`` instead, with ``"reason"`` saying so.
``subscribed``
    Answer to ``{"subscribe": [...]}``: ``{"type": "subscribed", "topics": [...]}``.
``error``
    ``{"type": "error", "detail": "..."}``: a malformed message (not JSON, not an object,
    unknown key or topic, bad seq); the connection stays open.

The client may send (JSON text, one object, any of these keys): ``{"subscribe":
["fills", "equity"]}`` (replaces the topic set), ``{"resume": <seq>}`` (the events after
``seq`` again, e.g. after a gap), ``{"snapshot": true}`` (a fresh snapshot). A binary
message is closed with **1003**.

Back-pressure: the engine never waits for a client. The bus calls the hub in the
publishing thread, which only appends to an inbox and wakes the event loop
(``call_soon_threadsafe``); every ``flush_interval`` (5 ms) the loop hands the events to
bounded per-client queues (default 1,000 messages). A client whose queue stays full (over a
second, or four times the bound in a burst) is disconnected with **1013** (try again later)
and a reason naming the last seq it was sent; it can reconnect with ``?since=<that seq>``.
(Should the hub ever miss a seq the bus no longer keeps, every client is closed with 1013
too: a reconnect gets a snapshot.)

The hub lives on ``app.state.lab.extra["ws"]`` (:class:`WebSocketHub`); it is attached to
the event loop at startup (or on the first connection). When
``app.state.lab.extra["metrics"]`` holds the service's metrics
(:class:`~alphatrade_lab.service.metrics.ServiceMetrics`), the hub keeps its
``websocket_clients`` gauge at the number of clients, counts messages written in
``websocket_messages`` and events a client lost (conflated equity ticks, the queue of a
client disconnected as too slow) in ``websocket_dropped``, and calls ``observe_lag(event)``
for the oldest event of each write (publish to written). Each is optional.

>>> jsonable({"t": __import__("pandas").Timestamp("2024-01-02", tz="UTC"),
...           "x": __import__("numpy").float64("nan"), "n": __import__("numpy").int64(3)})
{'t': '2024-01-02T00:00:00+00:00', 'x': None, 'n': 3}
>>> sorted(parse_topics("fills, equity"))
['equity', 'fill']
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, FastAPI, WebSocket

from alphatrade_lab.live.bus import TOPICS, Event
from alphatrade_lab.service.security import check_token

__all__ = ["CLOSE_POLICY", "CLOSE_SLOW", "CLOSE_UNSUPPORTED", "TOPICS", "WebSocketHub",
           "hub_for", "jsonable", "parse_seq", "parse_topics", "router"]

CLOSE_POLICY = 1008       # no or wrong token
CLOSE_UNSUPPORTED = 1003  # a binary message
CLOSE_SLOW = 1013         # the client's queue overflowed: "try again later"
CLOSE_BAD_QUERY = 4400    # ?topics= or ?since= malformed
_MAX_TEXT = 65_536        # a client message longer than this is refused
_BATCH = 256              # messages waiting for a client go out as one array of up to this
_BATCH_CHARS = 262_144    # ... and this many characters (clients limit a message's size)
_RECENT = {"fill": 100, "order": 100, "alert": 50}
_ALL = frozenset(TOPICS)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON-able Python: timestamps as ISO text, numpy numbers as Python
    numbers, NaN and infinities as None (JSON has neither), mappings and sequences
    converted item by item; anything else as its ``str``.

    >>> jsonable([np.int32(1), (np.bool_(True), float("inf"))])
    [1, [True, None]]
    """
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray):
        return [jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, pd.Timestamp | datetime | date):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, pd.Timedelta | timedelta):
        return None if pd.isna(value) else pd.Timedelta(value).total_seconds()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if value is pd.NaT or value is pd.NA:
        return None
    return str(value)


def _dumps(obj: Any) -> str:
    return json.dumps(jsonable(obj), separators=(",", ":"), allow_nan=False)


def parse_topics(value: str | Iterable[Any]) -> frozenset[str]:
    """The bus topics named by ``value`` (comma-separated text or a list): singular or
    plural names, ``*``/``all`` for every topic; ``ValueError`` naming the unknown ones.

    >>> sorted(parse_topics(["Fills", "status"]))
    ['fill', 'status']
    """
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, Mapping) or not isinstance(items, Iterable):
        raise ValueError(f"topics must be a list of names, not {type(value).__name__}")
    out: set[str] = set()
    unknown = []
    for item in items:
        if not isinstance(item, str):
            unknown.append(repr(item))
            continue
        name = item.strip().lower()
        if not name:
            continue
        if name in ("*", "all"):
            out.update(_ALL)
        elif name in _ALL:
            out.add(name)
        elif name.endswith("es") and name[:-2] in _ALL:
            out.add(name[:-2])  # statuses
        elif name.endswith("s") and name[:-1] in _ALL:
            out.add(name[:-1])
        else:
            unknown.append(repr(item))
    if unknown:
        raise ValueError(f"unknown topic(s) {', '.join(unknown)}; the topics are "
                         f"{', '.join(TOPICS)} (or their plurals, or '*')")
    return frozenset(out)


def parse_seq(value: Any, last: int) -> int:
    """A resume point: an integer from 0 to ``last`` (the bus's last seq), given as a number
    or digits; ``ValueError`` otherwise.

    >>> parse_seq("12", 20), parse_seq(0, 0)
    (12, 0)
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"seq must be a whole number from 0 to {last}, not {value!r}"[:200])
    if value < 0 or value > last:
        raise ValueError(f"seq {value} is outside 0..{last} (the bus's last seq is {last})")
    return value


class _State:
    """What a snapshot shows: the latest position per symbol, equity, bar and status, and
    the recent fills, orders and alerts, kept up to date from every bus event."""

    def __init__(self) -> None:
        self.seq = 0
        self.positions: dict[str, Any] = {}
        self.last: dict[str, Any] = {"equity": None, "bar": None, "status": None}
        self.recent: dict[str, deque[Any]] = {t: deque(maxlen=n) for t, n in _RECENT.items()}

    def apply(self, event: Event) -> None:
        self.seq = event.seq
        data = event.data
        if event.topic == "position" and isinstance(data, Mapping) and "symbol" in data:
            self.positions[str(data["symbol"])] = data
        elif event.topic in self.last:
            self.last[event.topic] = data
        elif event.topic in self.recent:
            self.recent[event.topic].append(data)

    def message(self, topics: frozenset[str], live: bool, reason: str | None = None
                ) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "snapshot", "seq": self.seq, "live": live,
                               "topics": sorted(topics), "positions": self.positions,
                               **self.last}
        for topic, items in self.recent.items():
            out[topic + "s"] = list(items)
        if reason:
            out["reason"] = reason
        return out


class _Client:
    """One connection: its topics, bounded queue and the task that writes to it."""

    __slots__ = ("closer", "closing", "conflated_total", "equity", "floor", "id", "last",
                 "live", "over_since", "queue", "sender", "sent", "topics", "wake", "websocket")

    def __init__(self, websocket: Any, topics: frozenset[str], ident: int):
        self.websocket = websocket
        self.topics = topics
        self.id = ident
        # items: [seq, topic, text, alive, conflated] for events; a str for a control
        # message; a list of str for a resume batch
        self.queue: deque[Any] = deque()
        self.live = 0            # items queued (dead conflated ones excluded)
        self.equity: list[Any] | None = None  # the queued equity event, if any
        self.floor = 0           # events up to this seq were sent (snapshot / resume)
        self.wake = asyncio.Event()
        self.sender: asyncio.Task[None] | None = None
        self.sent = 0
        self.conflated_total = 0
        self.closing = False
        self.closer: asyncio.Task[None] | None = None
        self.over_since: float | None = None  # since when the queue is over the bound
        self.last = 0            # seq of the last event written


class WebSocketHub:
    """Fans the engine's :class:`~alphatrade_lab.live.EventBus` out to WebSocket clients.

    Parameters
    ----------
    bus
        The event bus (None: a hub without live events; clients get an empty snapshot).
    queue_size
        Messages a client may have waiting. A client that stays at or above it for more
        than ``grace`` seconds, or reaches ``4 * queue_size``, is disconnected with
        :data:`CLOSE_SLOW` (equity ticks are conflated first): a burst of the engine does
        not disconnect a client that catches up.
    grace
        Seconds a client may stay over ``queue_size``.
    flush_interval
        Seconds the hub waits after an event for more before handing them to the clients
        (0: at once). Events of the window go out as one message per client: fewer, larger
        writes when the bus is busy, at most this much added latency.

    Examples
    --------
    >>> from alphatrade_lab.live import EventBus
    >>> bus = EventBus()
    >>> _ = bus.publish("position", {"symbol": "AAA", "qty": 2.0})
    >>> hub = WebSocketHub(bus)
    >>> async def main():
    ...     hub.attach(asyncio.get_running_loop())
    ...     bus.publish("equity", {"equity": 101.5})
    ...     await asyncio.sleep(0.01)
    ...     return hub.snapshot()
    >>> snap = asyncio.run(main())
    >>> snap["seq"], snap["positions"]["AAA"]["qty"], snap["equity"]
    (2, 2.0, {'equity': 101.5})
    """

    def __init__(self, bus: Any = None, *, queue_size: int = 1_000, grace: float = 1.0,
                 flush_interval: float = 0.005):
        if int(queue_size) < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        if not 0 <= float(flush_interval) <= 1:
            raise ValueError(f"flush_interval must be from 0 to 1 s, not {flush_interval}")
        self.flush_interval = float(flush_interval)
        self.bus = bus
        self.queue_size = int(queue_size)
        self.grace = float(grace)
        self.state = _State()
        self.clients: dict[int, _Client] = {}
        self.metrics: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: deque[Event] = deque()
        self._scheduled = False
        self._registered = False
        self._lock = threading.Lock()
        self._pending: dict[int, Event] = {}
        self._gap_timer: asyncio.TimerHandle | None = None
        self._next_id = 0
        self.counts = {"connected": 0, "disconnected_slow": 0, "conflated": 0, "events": 0,
                       "errors": 0}

    # ---- the thread side -------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        """The bus callback (publishing thread): append and wake the loop, never wait."""
        loop = self._loop
        if loop is None:
            return
        self._inbox.append(event)
        if self._scheduled:
            return
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain_later if self.flush_interval else self._drain)
        except RuntimeError:  # the loop is closed: the service stopped
            self._loop = None
            self._scheduled = False

    # ---- the loop side ---------------------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver events on ``loop`` (call it on that loop): registers with the bus once and
        takes the state from the bus's kept events."""
        if self._loop is loop:
            return
        self._loop = loop
        self._scheduled = False
        if self.bus is None:
            return
        if not self._registered:
            self.bus.on_event(self._on_event)
            self._registered = True
        for event in self.bus.since(self.state.seq):
            self.state.apply(event)
            self.counts["events"] += 1
        if self._inbox:
            self._drain()

    def _drain_later(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_later(self.flush_interval, self._drain)

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
        inbox, nxt = self._inbox, self.state.seq + 1
        pending = self._pending
        while inbox:
            event = inbox.popleft()
            if event.seq >= nxt:
                pending[event.seq] = event
        # deliver in seq order (two publishing threads may call back out of order), at
        # most a queue's worth at a time: the writers get a turn between the steps of a
        # burst, so a client that keeps up is not taken for a slow one
        budget = self.queue_size
        while nxt in pending and budget:
            self._dispatch(pending.pop(nxt))
            nxt += 1
            budget -= 1
        if nxt in pending and self._loop is not None:
            self._loop.call_soon(self._drain)
        elif pending and self._gap_timer is None and self._loop is not None:
            self._gap_timer = self._loop.call_later(0.05, self._fill_gap)

    def _fill_gap(self) -> None:
        """A seq that has not arrived 50 ms after a later one: take it from the bus's
        history (or skip past it when the bus no longer keeps it)."""
        self._gap_timer = None
        if not self._pending:
            return
        kept = {e.seq: e for e in self.bus.since(self.state.seq)} if self.bus else {}
        self._pending.update({s: e for s, e in kept.items() if s < min(self._pending)})
        while self._pending:
            nxt = self.state.seq + 1
            if nxt not in self._pending:
                nxt = min(self._pending)
                for client in list(self.clients.values()):  # events lost: say so
                    self._kick(client, CLOSE_SLOW, f"events after seq {self.state.seq} were "
                               "lost; reconnect for a snapshot")
            self._dispatch(self._pending.pop(nxt))

    def _dispatch(self, event: Event) -> None:
        self.state.apply(event)
        self.counts["events"] += 1
        text: str | None = None
        for client in list(self.clients.values()):
            if event.topic not in client.topics or event.seq <= client.floor or client.closing:
                continue
            if text is None:
                text = _dumps({"type": "event", "seq": event.seq, "topic": event.topic,
                               "time": event.time, "data": event.data})
            if event.topic == "equity" or client.live >= self.queue_size:
                self._enqueue_event(client, event, text)
            else:  # the common case, inline
                client.queue.append([event.seq, event.topic, text, True, 0, event])
                client.live += 1
                if not client.wake.is_set():
                    client.wake.set()

    def _enqueue_event(self, client: _Client, event: Event, text: str) -> None:
        conflated = 0
        if event.topic == "equity" and client.equity is not None:
            old = client.equity
            if client.queue and client.queue[-1] is old:
                client.queue.pop()
            else:
                old[3] = False  # skipped when its turn comes
            client.live -= 1
            conflated = old[4] + 1
            client.conflated_total += 1
            self.counts["conflated"] += 1
            self._metric("websocket_dropped", "inc", 1)
        item = [event.seq, event.topic, text, True, conflated, event]
        if event.topic == "equity":
            client.equity = item
        self._put(client, item)

    def _put(self, client: _Client, item: Any) -> None:
        if client.live >= self.queue_size:
            now = time.monotonic()
            if client.over_since is None:
                client.over_since = now
            elif client.live >= 4 * self.queue_size or now - client.over_since > self.grace:
                self.counts["disconnected_slow"] += 1
                self._kick(client, CLOSE_SLOW, f"too slow: {client.live} messages waiting; "
                           f"reconnect with ?since={client.last}")
                return
        client.queue.append(item)
        client.live += 1
        client.wake.set()

    def _control(self, client: _Client, message: Mapping[str, Any] | list[str]) -> None:
        self._put(client, message if isinstance(message, list) else _dumps(message))

    @property
    def last_seq(self) -> int:
        """The bus's last seq (0 without a bus): the highest a client may resume from."""
        return int(self.bus.seq) if self.bus is not None else 0

    def snapshot(self, topics: Iterable[str] = TOPICS, reason: str | None = None
                 ) -> dict[str, Any]:
        """The snapshot message (a dict) for a client of ``topics``."""
        return jsonable(self.state.message(frozenset(topics), self.bus is not None, reason))

    def _restart(self, client: _Client) -> None:
        client.over_since = None
        client.queue.clear()
        client.live = 0
        client.equity = None

    def send_snapshot(self, client: _Client, reason: str | None = None) -> None:
        self._restart(client)
        client.floor = self.state.seq
        self._control(client, self.snapshot(client.topics, reason))

    def resume(self, client: _Client, since: int) -> None:
        """Queue the kept events after ``since`` for ``client`` (or a snapshot when the bus
        no longer keeps them all)."""
        kept = [e for e in self.bus.since(since) if e.seq <= self.state.seq] if self.bus else []
        if kept and kept[0].seq > since + 1 or (not kept and since < self.state.seq):
            oldest = kept[0].seq if kept else self.state.seq + 1
            self.send_snapshot(client, f"the bus no longer keeps the events after seq {since} "
                               f"(the oldest kept is {oldest}): a snapshot instead")
            return
        self._restart(client)
        mine = [e for e in kept if e.topic in client.topics]
        client.floor = max(self.state.seq, since)
        head = _dumps({"type": "resume", "since": since, "seq": client.floor,
                       "count": len(mine)})
        self._control(client, [head] + [
            _dumps({"type": "event", "seq": e.seq, "topic": e.topic, "time": e.time,
                    "data": e.data}) for e in mine])

    # ---- connections -----------------------------------------------------------------
    def connect(self, websocket: Any, topics: frozenset[str] = _ALL,
                since: int | None = None) -> _Client:
        """Register ``websocket`` (accepted), queue its snapshot or resume and start its
        writer task."""
        self._drain()  # the snapshot holds every event that reached the hub
        self._next_id += 1
        client = _Client(websocket, topics, self._next_id)
        self.clients[client.id] = client
        self.counts["connected"] += 1
        if since is None:
            self.send_snapshot(client)
        else:
            self.resume(client, since)
        client.sender = asyncio.ensure_future(self._sender(client))
        self._update_gauge()
        return client

    async def _sender(self, client: _Client) -> None:
        ws = client.websocket
        queue = client.queue
        while True:
            if not queue:
                client.wake.clear()
                await client.wake.wait()
                continue
            texts: list[str] = []
            size = 0
            oldest: Event | None = None
            while queue and len(texts) < _BATCH and size < _BATCH_CHARS:
                item = queue.popleft()
                if isinstance(item, str):  # a control message
                    client.live -= 1
                    texts.append(item)
                    size += len(item)
                elif isinstance(item[0], str):  # a resume batch: written on its own
                    client.live -= 1
                    if texts:
                        await self._write(ws, texts)
                        texts = []
                    await self._write_all(ws, item)
                    self._metric("websocket_messages", "inc", len(item))
                elif item[3]:
                    client.live -= 1
                    if item is client.equity:
                        client.equity = None
                    texts.append(item[2] if not item[4] else
                                 f'{{"conflated":{item[4]},{item[2][1:]}')
                    size += len(texts[-1])
                    client.last = item[0]
                    client.sent += 1
                    oldest = oldest or item[5]
            if client.over_since is not None and client.live < self.queue_size:
                client.over_since = None
            if texts:
                await self._write(ws, texts)
                self._metric("websocket_messages", "inc", len(texts))
                if oldest is not None:
                    self._metric(None, "observe_lag", oldest)

    @classmethod
    async def _write_all(cls, ws: Any, texts: list[str]) -> None:
        start = size = 0
        for i, text in enumerate(texts):
            if i > start and (i - start >= _BATCH or size + len(text) > _BATCH_CHARS):
                await cls._write(ws, texts[start:i])
                start, size = i, 0
            size += len(text)
        if start < len(texts):
            await cls._write(ws, texts[start:])

    @staticmethod
    async def _write(ws: Any, texts: list[str]) -> None:
        await ws.send_text(texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]")

    def handle(self, client: _Client, text: str) -> None:
        """Act on a client's text message; an error message for a malformed one."""
        try:
            if len(text) > _MAX_TEXT:
                raise ValueError(f"message of {len(text)} characters; at most {_MAX_TEXT}")
            try:
                msg = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON ({exc.msg} at character {exc.pos})") from None
            if not isinstance(msg, dict):
                raise ValueError(f"expected a JSON object, got {type(msg).__name__}")
            unknown = sorted(set(msg) - {"subscribe", "resume", "snapshot"})
            if unknown:
                raise ValueError(f"unknown key(s) {unknown}; send 'subscribe', 'resume' or "
                                 "'snapshot'")
            if "subscribe" in msg:
                topics = parse_topics(msg["subscribe"])
                client.topics = topics
                self._control(client, {"type": "subscribed", "topics": sorted(topics)})
            self._drain()
            if "resume" in msg:
                self.resume(client, parse_seq(msg["resume"], self.last_seq))
            if msg.get("snapshot"):
                self.send_snapshot(client)
        except ValueError as exc:
            self.counts["errors"] += 1
            self._control(client, {"type": "error", "detail": str(exc)[:500]})

    def _kick(self, client: _Client, code: int, reason: str) -> None:
        """Close ``client`` with ``code`` from the loop, without waiting."""
        if client.closing:
            return
        client.closing = True
        self._metric("websocket_dropped", "inc", client.live)
        self._restart(client)
        client.closer = asyncio.ensure_future(self.close(client, code, reason))

    async def close(self, client: _Client, code: int = 1000, reason: str = "") -> None:
        """Stop ``client``'s writer and close its connection with ``code``."""
        client.closing = True
        self.clients.pop(client.id, None)
        self._update_gauge()
        task = client.sender
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await client.websocket.close(code=code, reason=reason[:120])

    async def shutdown(self) -> None:
        """Close every client (1001, going away) and stop taking events."""
        for client in list(self.clients.values()):
            await self.close(client, 1001, "the service is stopping")
        self._loop = None

    def _metric(self, name: str | None, method: str, arg: Any) -> None:
        """``metrics.<name>.<method>(arg)`` (or ``metrics.<method>(arg)``) when the service
        has that metric; a metrics failure never reaches a client."""
        target = self.metrics if name is None else getattr(self.metrics, name, None)
        fn = getattr(target, method, None)
        if fn is not None:
            with contextlib.suppress(Exception):
                fn(arg)

    def _update_gauge(self) -> None:
        self._metric("websocket_clients", "set", len(self.clients))

    def stats(self) -> dict[str, int]:
        """Counters: clients now, connections, slow disconnects, conflated equity ticks,
        events handled, malformed messages answered, and messages queued now."""
        return {"clients": len(self.clients), **self.counts,
                "queued": sum(c.live for c in self.clients.values())}


def hub_for(app: FastAPI) -> WebSocketHub:
    """The app's hub (created on first use, on ``app.state.lab.extra["ws"]``)."""
    lab = app.state.lab
    hub = lab.extra.get("ws")
    if hub is None:
        hub = lab.extra["ws"] = WebSocketHub(lab.bus)
    hub.metrics = lab.extra.get("metrics")
    return hub


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    hub = hub_for(app)
    hub.attach(asyncio.get_running_loop())
    try:
        yield
    finally:
        await hub.shutdown()


router = APIRouter(lifespan=_lifespan)


@router.websocket("/ws")
async def live_updates(websocket: WebSocket) -> None:
    """Live engine events: a snapshot, then deltas (see :mod:`alphatrade_lab.service.ws`)."""
    app = websocket.app
    lab = app.state.lab
    await websocket.accept()
    if lab.token and not check_token(lab.token, websocket.headers, websocket.query_params):
        await websocket.close(code=CLOSE_POLICY, reason="missing or wrong API token")
        return
    hub = hub_for(app)
    hub.attach(asyncio.get_running_loop())
    try:
        query = websocket.query_params
        topics = parse_topics(query["topics"]) if "topics" in query else _ALL
        since = parse_seq(query["since"], hub.last_seq) if "since" in query else None
    except ValueError as exc:
        await websocket.send_text(_dumps({"type": "error", "detail": str(exc)[:500]}))
        await websocket.close(code=CLOSE_BAD_QUERY, reason="bad query")
        return
    client = hub.connect(websocket, topics, since)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("text") is not None:
                hub.handle(client, message["text"])
            elif message.get("bytes") is not None:
                await hub.close(client, CLOSE_UNSUPPORTED, "binary messages are not "
                                "supported: send JSON text")
                break
    except Exception:  # the peer went away mid-receive
        pass
    finally:
        if client.closer is not None:
            with contextlib.suppress(BaseException):
                await client.closer
        elif client.id in hub.clients:
            await hub.close(client, 1000)
