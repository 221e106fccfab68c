"""An in-process event bus: the engine publishes, the dashboard and notebooks subscribe.

Publishing never blocks and never fails because of a subscriber: each subscription has a
bounded queue, and a subscriber that falls behind loses its oldest events (counted in
:attr:`Subscription.dropped`) instead of holding the engine up. Every event carries a
sequence number, increasing by one per event, and the bus keeps the last ``history``
events so that a subscriber can catch up from the last number it saw (:meth:`EventBus.since`).

>>> bus = EventBus()
>>> sub = bus.subscribe(["fill"])
>>> _ = bus.publish("bar", {"symbol": "AAA"})
>>> _ = bus.publish("fill", {"symbol": "AAA", "qty": 1.0})
>>> [(e.seq, e.topic) for e in sub.drain()], [e.seq for e in bus.since(0)]
([(2, 'fill')], [1, 2])
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

__all__ = ["TOPICS", "Event", "EventBus", "Subscription"]

#: What the engine publishes.
TOPICS = ("bar", "signal", "order", "fill", "equity", "position", "alert", "drift", "feed",
          "risk", "status")


class Event(NamedTuple):
    """``seq``: 1, 2, ... per bus; ``time``: wall-clock seconds (``time.time()``) at publish."""

    seq: int
    topic: str
    time: float
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "topic": self.topic, "time": self.time, "data": self.data}


class Subscription:
    """A bounded queue of the events of some topics (all topics when ``topics`` is None)."""

    def __init__(self, bus: EventBus, topics: Iterable[str] | None, maxsize: int):
        self._bus = bus
        self.topics = None if topics is None else frozenset(topics)
        self.maxsize = int(maxsize)
        self._queue: deque[Event] = deque()
        self._ready = threading.Condition(threading.Lock())
        self.dropped = 0
        self.closed = False

    def _offer(self, event: Event) -> None:
        if self.topics is not None and event.topic not in self.topics:
            return
        with self._ready:
            if len(self._queue) >= self.maxsize:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self._ready.notify()

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to ``timeout`` seconds (None: forever); None on timeout."""
        with self._ready:
            if not self._queue:
                self._ready.wait_for(lambda: bool(self._queue) or self.closed, timeout)
            return self._queue.popleft() if self._queue else None

    def drain(self) -> list[Event]:
        """Every event queued now, without waiting."""
        with self._ready:
            out = list(self._queue)
            self._queue.clear()
        return out

    def __len__(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self._bus._remove(self)
        with self._ready:
            self.closed = True
            self._ready.notify_all()


class EventBus:
    """Publish/subscribe within one process (thread-safe).

    Parameters
    ----------
    history
        Events kept for :meth:`since` (a client resuming after a disconnect).
    """

    def __init__(self, history: int = 10_000):
        self._lock = threading.Lock()
        self._seq = 0
        self._history: deque[Event] = deque(maxlen=int(history))
        # tuples, replaced on (un)subscribe: publish reads them without copying
        self._subs: tuple[Subscription, ...] = ()
        self._callbacks: tuple[Callable[[Event], None], ...] = ()
        self.callback_errors = 0

    @property
    def history(self) -> int:
        """How many events the bus keeps for :meth:`since`."""
        return self._history.maxlen or 0

    @property
    def seq(self) -> int:
        """The sequence number of the last event published (0: none yet)."""
        return self._seq

    def publish(self, topic: str, data: dict[str, Any]) -> Event:
        """Publish ``data`` under ``topic``; returns the event (with its sequence number)."""
        with self._lock:
            self._seq += 1
            event = Event(self._seq, topic, time.time(), data)
            self._history.append(event)
        self._deliver(event)
        return event

    def publish_event(self, event: Event) -> Event:
        """Publish an event that already has its sequence number and time (one read from
        another bus, e.g. through Redis): the bus's seq becomes ``event.seq``, which must be
        above the last one (a gap is allowed: events the source lost).

        >>> bus = EventBus()
        >>> bus.publish_event(Event(7, "fill", 0.0, {"qty": 1.0})).seq, bus.seq
        (7, 7)
        """
        with self._lock:
            if event.seq <= self._seq:
                raise ValueError(f"event seq {event.seq} is not above the bus's last seq "
                                 f"{self._seq}")
            self._seq = event.seq
            self._history.append(event)
        self._deliver(event)
        return event

    def _deliver(self, event: Event) -> None:
        for sub in self._subs:
            sub._offer(event)
        for fn in self._callbacks:
            try:
                fn(event)
            except Exception:  # a subscriber's bug must not stop the engine
                self.callback_errors += 1

    def subscribe(self, topics: Iterable[str] | None = None, *, maxsize: int = 10_000
                  ) -> Subscription:
        """A new subscription to ``topics`` (None: all) keeping at most ``maxsize`` events."""
        if topics is not None:
            topics = list(topics)
            unknown = sorted(set(topics) - set(TOPICS))
            if unknown:
                raise ValueError(f"unknown topic(s) {unknown}; the bus publishes {list(TOPICS)}")
        sub = Subscription(self, topics, maxsize)
        with self._lock:
            self._subs = (*self._subs, sub)
        return sub

    def on_event(self, fn: Callable[[Event], None]) -> None:
        """Call ``fn(event)`` on every event, in the publishing thread: it must be quick
        (hand the event to a loop or a queue); its exceptions are counted, not raised."""
        with self._lock:
            self._callbacks = (*self._callbacks, fn)

    def off_event(self, fn: Callable[[Event], None]) -> None:
        """Stop calling ``fn`` (given to :meth:`on_event`); unknown callbacks are ignored."""
        with self._lock:
            self._callbacks = tuple(f for f in self._callbacks if f is not fn)

    def since(self, seq: int) -> list[Event]:
        """Kept events with a sequence number above ``seq`` (oldest first)."""
        with self._lock:
            return [e for e in self._history if e.seq > seq]

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)
