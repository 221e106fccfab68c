"""The service's side of the Redis event bus: :class:`RedisSource` reads the engine's stream
through a consumer group into the service's own :class:`~alphatrade_lab.live.EventBus`.

The engine's :class:`~alphatrade_lab.live.redis_bus.RedisPublisher` writes each event to a
stream; the service, another process, runs a ``RedisSource`` in a thread:

1. ``XGROUP CREATE <stream> <group> 0 MKSTREAM`` (a new group starts at the stream's
   oldest entry, so events published before the service started are not lost).
2. **History.** The last ``history`` entries the group was given before (acknowledged or
   not) go into the local bus first, so that a WebSocket client of a previous run of the
   service can resume with ``?since=<its last seq>`` and that the hub's snapshot holds them.
3. **Pending.** ``XREADGROUP ... 0``: the entries given to this consumer and never
   acknowledged (a service killed mid-stream), then ``XREADGROUP ... >`` for new ones
   (blocking up to ``block`` seconds per call).

Each event enters the local bus with the **stream's seq** (:meth:`EventBus.publish_event`),
so seqs mean the same before and after a restart of the service, and is acknowledged
(``XACK``) only after the bus handed it to its subscribers (the WebSocket hub). A seq at or
below the bus's last is a duplicate (a batch the publisher sent twice, history read again)
and is acknowledged without being published. Except when it comes from a publisher (an
``epoch``) not seen before: then the stream started over (Redis restarted empty, then an
engine started) and that publisher's events are renumbered to follow the bus's last seq
(with a warning), so that they are not taken for duplicates. Redis unreachable: one
warning, reconnection with a backoff (0.1 s doubling to 5 s); the REST API keeps serving
the store.

``create_app(store, redis_url=...)`` builds one; the app's lifespan starts it, waits up to
``ready_timeout`` seconds for steps 1-2 (before the first client is accepted), and stops
it at shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from alphatrade_lab.live.bus import Event, EventBus
from alphatrade_lab.live.redis_bus import DEFAULT_STREAM, read_entry, redis_client, safe_url
from alphatrade_lab.redact import redact

__all__ = ["DEFAULT_GROUP", "RedisSource"]

#: The consumer group of the dashboard service.
DEFAULT_GROUP = "alphatrade-service"
log = logging.getLogger("alphatrade_lab.service.redis")


class RedisSource:
    """Reads a Redis stream through a consumer group into an event bus.

    Parameters
    ----------
    url
        The Redis server (``redis://[:password@]host:port/db``; the password never shows).
    bus
        The bus to publish into (default: a new :class:`~alphatrade_lab.live.EventBus`).
    stream, group, consumer
        The stream's key, the consumer group and this reader's name in it. Keep the
        consumer's name across restarts: its unacknowledged entries are read again first.
    count
        Entries per read at most.
    block
        Seconds a read waits for new entries.
    history
        Entries already given to the group that are read back at start (default: the
        bus's history size).

    Examples
    --------
    >>> from alphatrade_lab.live.redis_bus import RedisPublisher
    >>> from alphatrade_lab.testing.redis import LocalRedis
    >>> with LocalRedis() as srv:                   # needs redis-server installed
    ...     engine_bus = EventBus()
    ...     pub = RedisPublisher(srv.url).attach(engine_bus)
    ...     _ = [engine_bus.publish("fill", {"i": i}) for i in range(5)]
    ...     pub.close()
    ...     source = RedisSource(srv.url).start()
    ...     _ = source.wait_until(lambda: source.counts["acked"] == 5)
    ...     pending = source.stats()["pending"]
    ...     source.stop()
    >>> [(e.seq, e.data["i"]) for e in source.bus.since(3)], pending
    ([(4, 3), (5, 4)], 0)
    """

    def __init__(self, url: str, bus: EventBus | None = None, *, stream: str = DEFAULT_STREAM,
                 group: str = DEFAULT_GROUP, consumer: str = "service", count: int = 500,
                 block: float = 0.1, history: int | None = None):
        self.bus = bus if bus is not None else EventBus()
        self.where = f"{safe_url(url)} stream {stream!r} group {group!r}"
        self.stream, self.group, self.consumer = stream, group, consumer
        self.count = int(count)
        self.block_ms = max(int(block * 1000), 1)
        self.history = int(history) if history is not None else self.bus.history
        self._client = redis_client(url)
        self._stop = threading.Event()
        self.ready = threading.Event()   # the group exists and the history is in the bus
        self._thread: threading.Thread | None = None
        self.counts = {"received": 0, "duplicates": 0, "malformed": 0, "acked": 0,
                       "history": 0, "outages": 0, "renumbered": 0}
        self._shift: dict[str | None, int] = {}   # per publisher epoch: added to its seqs
        self.connected = False

    def __repr__(self) -> str:
        return (f"RedisSource({self.where}, consumer={self.consumer!r}, "
                f"received={self.counts['received']}, connected={self.connected})")

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> RedisSource:
        """Start the reader thread; returns self."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="atl-redis-source",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading (after the read in progress) and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._client.close()

    def wait_until(self, condition: Any, timeout: float = 10.0) -> bool:
        """Poll ``condition()`` every 5 ms for up to ``timeout`` seconds; its last value."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return bool(condition())
            time.sleep(0.005)
        return True

    def stats(self) -> dict[str, int]:
        """Counters, 1 when connected, and the group's pending entries (-1: unknown)."""
        try:
            pending = int(self._client.xpending(self.stream, self.group)["pending"])
        except Exception:  # Redis away or no group yet
            pending = -1
        return {**self.counts, "connected": int(self.connected), "pending": pending,
                "seq": self.bus.seq}

    # ---- the reader thread -------------------------------------------------------------
    def _run(self) -> None:
        import redis

        delay = 0.1
        while not self._stop.is_set():
            try:
                self._session()
            except (redis.RedisError, OSError) as exc:
                if self.connected or not self.counts["outages"]:
                    self.counts["outages"] += 1
                    log.warning("Redis event stream %s unreachable (%s); retrying",
                                self.where, redact(f"{type(exc).__name__}: {exc}")[:300])
                self.connected = False
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1

    def _session(self) -> None:
        """One connection's work: group, history, pending, then new entries until stopped
        (or until a read finds the group gone, e.g. Redis restarted empty)."""
        import redis

        client = self._client
        try:
            client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        if not self.connected and self.counts["outages"]:
            log.warning("Redis event stream %s: connected again", self.where)
        self.connected = True
        if not self.ready.is_set():
            self._read_history()
            self.ready.set()
        try:
            cursor = "0"
            while not self._stop.is_set():  # this consumer's unacknowledged entries
                got = client.xreadgroup(self.group, self.consumer, {self.stream: cursor},
                                        count=self.count)
                entries = got[0][1] if got else []
                if not entries:
                    break
                self._handle(entries)
                cursor = entries[-1][0]
            while not self._stop.is_set():
                got = client.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                        count=self.count, block=self.block_ms)
                if got:
                    self._handle(got[0][1])
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("Redis event stream %s: the consumer group is gone (Redis restarted "
                        "empty?); creating it again", self.where)

    def _read_history(self) -> None:
        """The last entries the group was given, into the bus (published, not acked)."""
        groups = self._client.xinfo_groups(self.stream)
        last = next((g.get("last-delivered-id") for g in groups if g.get("name") == self.group),
                    None)
        if not last or last == "0-0" or self.history < 1:
            return
        entries = self._client.xrevrange(self.stream, max=last, min="-", count=self.history)
        for _, fields in reversed(entries):
            if self._publish(fields):
                self.counts["history"] += 1

    def _publish(self, fields: Any) -> bool:
        """Publish one entry's event into the bus; False for a duplicate or a bad entry."""
        if not fields:   # an entry trimmed from the stream while pending
            return False
        try:
            event, epoch = read_entry(fields)
        except ValueError as exc:
            self.counts["malformed"] += 1
            log.warning("Redis event stream %s: skipped an entry: %s", self.where, exc)
            return False
        last = self.bus.seq
        if epoch not in self._shift:  # a new publisher: after the bus's last seq
            self._shift[epoch] = 0 if event.seq > last or epoch is None else \
                last - event.seq + 1
            if self._shift[epoch]:
                log.warning("Redis event stream %s: a new publisher starts at seq %d, not "
                            "above the last seq %d (the stream started over?): its events "
                            "are renumbered from %d", self.where, event.seq, last, last + 1)
        shift = self._shift[epoch]
        if shift:
            event = Event(event.seq + shift, event.topic, event.time, event.data)
            self.counts["renumbered"] += 1
        if event.seq <= last:
            self.counts["duplicates"] += 1
            return False
        self.bus.publish_event(event)
        return True

    def _handle(self, entries: list[Any]) -> None:
        """Publish a batch, then acknowledge it (every entry reached the hub by then)."""
        for _, fields in entries:
            if self._publish(fields):
                self.counts["received"] += 1
        self._client.xack(self.stream, self.group, *[entry_id for entry_id, _ in entries])
        self.counts["acked"] += len(entries)
