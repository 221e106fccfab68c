"""The engine's events on a Redis stream: :class:`RedisPublisher` and the entry format.

The publisher attaches to an :class:`~alphatrade_lab.live.EventBus` from outside the
engine (:meth:`RedisPublisher.attach`) and copies every event to a Redis stream with
``XADD <stream> * event <json>``, the JSON being the event's ``{"seq", "topic", "time",
"data"}`` and the publisher's ``epoch`` (:func:`encode_event`; one field: packing a
command's arguments is most of the publisher's work), and ``XTRIM <stream> MAXLEN ~
<maxlen>`` after each batch. The engine never waits for Redis and never fails because of
it: the bus callback only appends the event to a bounded buffer; a background thread
writes the buffer in pipelined batches. When Redis is unreachable (at start or mid-run)
the thread logs one warning, keeps buffering (the oldest events are dropped, and counted
in :attr:`RedisPublisher.dropped`, once the buffer is full) and reconnects with an
exponential backoff (0.1 s doubling to 5 s); a batch whose write failed is sent again, so
an event may reach the stream twice (readers skip a seq they have seen).

Sequence numbers on the stream continue those already in it: at its first connection the
publisher reads the stream's last ``seq`` and adds it to the bus's (0 on a new stream, so
the stream's seq is the engine's). A service reading the stream therefore sees one
increasing sequence across engine runs; one engine publishes to a stream at a time. The
``epoch`` (a random id per publisher) lets a reader tell a new publisher on a stream that
started over (Redis restarted empty) from a batch sent twice.

The Redis URL may carry a password (``redis://:<password>@host:6379/0``): it is
registered as a secret and never shows in a repr, a log line or an error.
``import redis`` (the ``deploy`` extra) happens when a publisher is made, not on import.

>>> from alphatrade_lab.live.bus import Event
>>> fields = encode_event(Event(3, "fill", 1.5, {"qty": 2.0}), epoch="e1")
>>> fields
{'event': '{"seq":3,"topic":"fill","time":1.5,"data":{"qty":2.0},"epoch":"e1"}'}
>>> read_entry(fields)
(Event(seq=3, topic='fill', time=1.5, data={'qty': 2.0}), 'e1')
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from alphatrade_lab.live.bus import Event, EventBus
from alphatrade_lab.redact import REDACTED, redact, register_secret

__all__ = ["DEFAULT_STREAM", "RedisPublisher", "decode_entry", "encode_event", "read_entry",
           "redis_client", "safe_url"]

#: The stream the engine publishes to and the service reads from.
DEFAULT_STREAM = "alphatrade:events"
_SCHEMES = ("redis", "rediss", "unix")
log = logging.getLogger("alphatrade_lab.live.redis")


def safe_url(url: str) -> str:
    """``url`` without its password, for logs and messages.

    >>> safe_url("redis://:hunter2-Pa55@cache:6379/0")
    'redis://[REDACTED]@cache:6379/0'
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=f"{REDACTED}@{parts.netloc.rpartition('@')[2]}")
    return str(redact(parts.geturl()))


def redis_client(url: str, **options: Any) -> Any:
    """A ``redis.Redis`` for ``url`` (``redis://``, ``rediss://`` or ``unix://``), text
    responses, its password registered as a secret; ``ValueError`` for another scheme and
    ``ImportError`` naming the ``deploy`` extra without redis-py. Connects on first use.

    >>> client = redis_client("redis://:hunter2-Pa55@127.0.0.1:6390/2")  # no connection yet
    >>> kw = client.connection_pool.connection_kwargs
    >>> kw["port"], kw["db"], "hunter2-Pa55" in str(redact(repr(client)))
    (6390, 2, False)
    """
    if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES:
        raise ValueError(f"a Redis URL starts with redis://, rediss:// or unix://, not "
                         f"{safe_url(str(url))[:80]!r}")
    parts = urlsplit(url)
    register_secret(parts.password)
    try:
        import redis
    except ImportError:
        raise ImportError("the Redis event bus needs redis-py: pip install "
                          "'alphatrade_lab[deploy]'") from None
    opts = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0, "decode_responses": True,
            **options}
    return redis.Redis.from_url(url, **opts)


def _default(value: Any) -> Any:
    """JSON for what the engine publishes besides plain Python: timestamps as ISO text,
    numpy values as Python ones, durations in seconds, enums by value, sets as lists."""
    if hasattr(value, "total_seconds"):   # before isoformat: a Timedelta has both
        return None if value != value else value.total_seconds()  # NaT != NaT
    if hasattr(value, "isoformat"):
        return None if value != value else value.isoformat()
    if hasattr(value, "dtype") and hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


def encode_event(event: Event, seq: int | None = None, epoch: str | None = None
                 ) -> dict[str, str]:
    """A stream entry's fields for ``event`` (with ``seq`` instead of its own when given):
    one field, ``event``, holding ``{"seq", "topic", "time", "data"[, "epoch"]}`` as JSON."""
    doc: dict[str, Any] = {"seq": event.seq if seq is None else seq, "topic": event.topic,
                           "time": float(event.time), "data": event.data}
    if epoch is not None:
        doc["epoch"] = epoch
    return {"event": json.dumps(doc, default=_default, separators=(",", ":"))}


def decode_entry(fields: Mapping[str, str]) -> Event:
    """The :class:`~alphatrade_lab.live.bus.Event` of a stream entry's fields;
    ``ValueError`` naming what is wrong with a malformed one.

    >>> decode_entry({"event": '{"seq": 2, "topic": "bar", "time": 0, "data": {}}'}).seq
    2
    """
    return read_entry(fields)[0]


def read_entry(fields: Mapping[str, str]) -> tuple[Event, str | None]:
    """The event of a stream entry's fields and its publisher's epoch (None: none given);
    ``ValueError`` naming what is wrong with a malformed entry."""
    if "event" not in fields:
        raise ValueError(f"stream entry without the field 'event' (fields "
                         f"{sorted(fields)[:5]})")
    try:
        doc = json.loads(fields["event"])
        seq, topic, stamp, data = doc["seq"], doc["topic"], doc["time"], doc["data"]
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"malformed stream entry ({type(exc).__name__}: {exc})"[:300]) \
            from None
    if not (isinstance(seq, int) and seq >= 1 and isinstance(topic, str)
            and isinstance(stamp, int | float) and isinstance(data, dict)):
        raise ValueError(f"malformed stream entry (seq {seq!r}, topic {topic!r}, data of "
                         f"type {type(data).__name__})"[:300])
    epoch = doc.get("epoch")
    return Event(seq, topic, float(stamp), data), None if epoch is None else str(epoch)


class RedisPublisher:
    """Copies a bus's events to a Redis stream from a background thread.

    Parameters
    ----------
    url
        The Redis server (``redis://[:password@]host:port/db``).
    stream
        The stream's key.
    maxlen
        About how many entries the stream keeps (``MAXLEN ~``).
    buffer
        Events held while Redis is slow or away; beyond it the oldest are dropped.
    batch
        Events per pipelined write at most.

    Examples
    --------
    >>> from alphatrade_lab.testing.redis import LocalRedis
    >>> with LocalRedis() as srv:                   # needs redis-server installed
    ...     bus = EventBus()
    ...     pub = RedisPublisher(srv.url).attach(bus)
    ...     for i in range(3):
    ...         _ = bus.publish("fill", {"i": i})
    ...     pub.close()
    ...     print(pub.stats()["sent"], redis_client(srv.url).xlen(DEFAULT_STREAM))
    3 3
    """

    def __init__(self, url: str, *, stream: str = DEFAULT_STREAM, maxlen: int = 100_000,
                 buffer: int = 100_000, batch: int = 500):
        for name, value in (("maxlen", maxlen), ("buffer", buffer), ("batch", batch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RedisPublisher {name} must be a positive whole number, "
                                 f"not {value!r}")
        self._url = url
        self.where = f"{safe_url(url)} stream {stream!r}"
        self.stream, self.maxlen, self.buffer, self.batch = stream, maxlen, buffer, batch
        self._client = redis_client(url)
        self._queue: deque[Event] = deque()
        self._wake = threading.Event()
        self._abort = threading.Event()
        self._closing = False
        self._bus: EventBus | None = None
        self._thread: threading.Thread | None = None
        self.offset: int | None = None   # added to the bus's seq (None: not connected yet)
        self.epoch = uuid.uuid4().hex[:16]
        self.sent = 0
        self._dropped_full = 0     # counted by the bus callback (engine thread)
        self._dropped_writer = 0   # counted by the writer thread
        self.outages = 0
        self.connected = False

    def __repr__(self) -> str:
        return (f"RedisPublisher({self.where}, sent={self.sent}, dropped={self.dropped}, "
                f"buffered={len(self._queue)})")

    # ---- the engine's side ------------------------------------------------------------
    def attach(self, bus: EventBus) -> RedisPublisher:
        """Copy ``bus``'s events from now on (starts the writer thread); returns self."""
        if self._bus is not None:
            raise RuntimeError("this RedisPublisher is attached already")
        self._bus = bus
        self._thread = threading.Thread(target=self._run, name="atl-redis-publisher",
                                        daemon=True)
        self._thread.start()
        bus.on_event(self._offer)
        return self

    def _offer(self, event: Event) -> None:
        """The bus callback: buffer and wake the writer, never wait."""
        if self._closing:
            return
        queue = self._queue
        if len(queue) >= self.buffer:
            try:
                queue.popleft()
                self._dropped_full += 1
            except IndexError:  # the writer took them all meanwhile
                pass
        queue.append(event)
        if not self._wake.is_set():
            self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking events, write what is buffered (for up to ``timeout`` seconds; what
        is left then counts as dropped) and stop the thread."""
        if self._bus is not None:
            self._bus.off_event(self._offer)
        self._closing = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                self._abort.set()
                thread.join(5.0)
        self._discard_rest()
        self._client.close()

    @property
    def dropped(self) -> int:
        """Events that will never reach Redis: the buffer was full, or close came first."""
        return self._dropped_full + self._dropped_writer

    def stats(self) -> dict[str, int]:
        """Events written, dropped and buffered now; outages seen; 1 when connected."""
        return {"sent": self.sent, "dropped": self.dropped, "buffered": len(self._queue),
                "outages": self.outages, "connected": int(self.connected)}

    def summary(self) -> str:
        """One line for a command's output."""
        return (f"redis {self.where}: {self.sent} events sent, {self.dropped} dropped"
                + (f", {self.outages} outage(s)" if self.outages else ""))

    # ---- the writer thread -------------------------------------------------------------
    def _discard_rest(self) -> None:
        left = len(self._queue)
        self._queue.clear()
        if left:
            self._dropped_writer += left
            log.warning("Redis event stream %s: %d buffered event(s) not written at close",
                        self.where, left)

    def _connect(self) -> None:
        self._client.ping()
        if self.offset is None:
            last = self._client.xrevrange(self.stream, count=1)
            self.offset = decode_entry(last[0][1]).seq if last else 0

    def _run(self) -> None:
        import redis

        errors = (redis.RedisError, OSError)
        delay, down_since = 0.1, 0.0
        while not self._abort.is_set():
            if not self.connected:
                try:
                    self._connect()
                except errors as exc:
                    if not down_since:
                        down_since = time.monotonic()
                        self._down(exc)
                    if self._abort.wait(delay):
                        break
                    delay = min(delay * 2, 5.0)
                    continue
                self.connected, delay = True, 0.1
                if down_since:
                    log.warning("Redis event stream %s: connected after %.1f s; %d event(s) "
                                "dropped so far", self.where, time.monotonic() - down_since,
                                self.dropped)
                    down_since = 0.0
            batch = self._take()
            if not batch:
                if self._closing:
                    break
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            try:
                self._write(batch)
            except errors as exc:
                self._requeue(batch)
                self.connected = False
                down_since = time.monotonic()
                self._down(exc)

    def _take(self) -> list[Event]:
        queue, out = self._queue, list[Event]()
        for _ in range(min(len(queue), self.batch)):
            try:
                out.append(queue.popleft())
            except IndexError:  # a full buffer dropped its oldest meanwhile
                break
        return out

    def _write(self, batch: list[Event]) -> None:
        offset = self.offset or 0
        pipe = self._client.pipeline(transaction=False)
        for event in batch:
            pipe.xadd(self.stream, encode_event(event, event.seq + offset, self.epoch))
        pipe.xtrim(self.stream, maxlen=self.maxlen, approximate=True)
        pipe.execute()
        self.sent += len(batch)

    def _requeue(self, batch: list[Event]) -> None:
        """Put a batch whose write failed back in front (the buffer's bound still holds)."""
        queue = self._queue
        room = max(self.buffer - len(queue), 0)
        keep = batch[len(batch) - room:] if room < len(batch) else batch
        self._dropped_writer += len(batch) - len(keep)
        queue.extendleft(reversed(keep))

    def _down(self, exc: BaseException) -> None:
        self.outages += 1
        log.warning("Redis event stream %s unreachable (%s); the engine goes on, buffering up "
                    "to %d events and retrying", self.where,
                    redact(f"{type(exc).__name__}: {exc}")[:300], self.buffer)
