"""``AlertManager``: fan an alert out to every sink, concurrently, without ever raising.

All deliveries run on the manager's own event loop, in a daemon thread, with one pooled
:class:`httpx.AsyncClient`. ``await manager.alert(...)`` hands the work to that loop and
awaits it from any loop; :meth:`AlertManager.send` blocks for it, so it also works where
an event loop is already running (a Jupyter cell).

Noise control: an alert identical to one sent less than ``dedupe_window`` seconds ago
(same level, title, message and data) is not sent; the next identical alert after the
window, or :meth:`AlertManager.flush`, carries the repeat count. The table of recent
alerts is bounded: entries whose window is over are dropped (their repeat count, if any,
is sent then), and past ``max_dedupe_keys`` the oldest are dropped the same way. Each
sink has a minimum level and a rate limit (see :mod:`alphatrade_lab.alerts.sinks`).

Nothing stalls the caller for long: each alert has a total ``deadline`` (default 60 s)
for all its sinks, retries and waits included; a sink still busy then is cancelled and
counted as failed. :meth:`AlertManager.close` waits at most ``close_timeout`` seconds for
alerts in flight and marks those it had to cancel as failed, so every future resolves.

With a ``store``, every alert that was sent is recorded in its ``alerts`` table with the
sinks that delivered it and those that failed (their scrubbed errors go in
``data["_delivery_errors"]``, a list of ``{"sink", "error"}``). Rows are written by a
background thread from a bounded queue (``store_queue`` rows), so a store locked by
another process never blocks :meth:`AlertManager.send`: the writer retries until the
lock is free. :meth:`AlertManager.close` drains the queue within its timeout and logs
what could not be written. ``AlertResult.recorded`` turns True once the row is written.

>>> import logging
>>> manager = AlertManager([LogAlerter()], dedupe_window=60)
>>> manager.send("warning", "Risk Alert: max_drawdown", "12.34%").delivered
['log']
>>> manager.send("warning", "Risk Alert: max_drawdown", "12.34%").suppressed
True
>>> manager.close()
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import queue
import threading
import time
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from alphatrade_lab.alerts.sinks import (
    AlertDeliveryError,
    DiscordAlerter,
    LogAlerter,
    Sink,
    TelegramAlerter,
    WebhookAlerter,
    scrub,
)
from alphatrade_lab.errors import StoreLockedError
from alphatrade_lab.events import Alert, AlertLevel
from alphatrade_lab.redact import redact, register_env_secrets

if TYPE_CHECKING:
    from alphatrade_lab.store import LabStore

__all__ = ["AlertManager", "AlertResult"]

log = logging.getLogger("alphatrade_lab.alerts")


@dataclass
class AlertResult:
    """What happened to one alert: sinks that delivered it, failed (with the scrubbed
    reason), were skipped (below their minimum level); or it was a suppressed repeat.

    ``recorded`` turns True when the store's background writer has written the alert's
    row (after :meth:`AlertManager.send` returns; :meth:`AlertManager.close` waits for it).
    """

    alert: Alert
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    suppressed: bool = False
    recorded: bool = False
    elapsed: float = 0.0

    def __repr__(self) -> str:
        return redact(f"AlertResult(alert={self.alert!r}, delivered={self.delivered!r}, "
                      f"failed={self.failed!r}, skipped={self.skipped!r}, "
                      f"suppressed={self.suppressed}, recorded={self.recorded}, "
                      f"elapsed={self.elapsed:.3f})")

    @property
    def ok(self) -> bool:
        """Sent (or suppressed as a repeat) and no sink failed."""
        return not self.failed


@dataclass
class _Seen:
    first: float
    alert: Alert
    suppressed: int = 0


_CLOSED = object()
_BATCH = 500  # alert rows written in one store transaction at most


class _StoreWriter:
    """Writes alert rows to a store from a bounded queue, in a daemon thread: what has
    queued up meanwhile goes in one transaction (at most ``_BATCH`` rows), retried while
    the store is locked by another process (``StoreLockedError``); a batch the store
    refuses is written row by row, so one bad row loses only itself."""

    def __init__(self, store: LabStore, maxsize: int, counts: dict[str, Any]):
        self.store, self.counts = store, counts
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.stopping = threading.Event()
        self._count_lock = threading.Lock()  # counts are bumped from two threads
        self._idle = threading.Condition()
        self._busy = 0
        self.thread = threading.Thread(target=self._run, name="alphatrade-alerts-store",
                                       daemon=True)
        self.thread.start()

    def put(self, result: AlertResult, row: tuple[tuple, dict]) -> bool:
        """Queue a row; False (and a warning) when the queue is full or closed."""
        if self.stopping.is_set():
            self._lost([result], "the alert manager is closed")
            return False
        with self._idle:
            self._busy += 1
        try:
            self.queue.put_nowait((result, row))
        except queue.Full:
            with self._idle:
                self._busy -= 1
            self._lost([result], f"the store queue is full ({self.queue.maxsize} rows "
                                 "waiting)")
            return False
        return True

    def _lost(self, results: list[AlertResult], why: str) -> None:
        if not results:
            return
        with self._count_lock:
            self.counts["record_errors"] += len(results)
        titles = ", ".join(repr(scrub(r.alert.title)) for r in results[:5])
        more = f" and {len(results) - 5} more" if len(results) > 5 else ""
        log.warning("%d alert%s not recorded in the store (%s): %s%s", len(results),
                    "s" * (len(results) != 1), why, titles, more)

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while batch[-1] is not _CLOSED and len(batch) < _BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            closed = batch[-1] is _CLOSED
            items = batch[:-1] if closed else batch
            try:
                if items:
                    self._write(items)
            finally:
                with self._idle:
                    self._busy -= len(items)
                    self._idle.notify_all()
            if closed:
                return

    def _write(self, items: list) -> None:
        rows = [dict(zip(("level", "title", "message", "data"), args, strict=True)) | kwargs
                for _, (args, kwargs) in items]
        delay = 0.05
        while True:
            try:
                self.store.record_alerts(rows)
            except StoreLockedError as exc:
                if self.stopping.is_set():
                    self._lost([r for r, _ in items], f"still locked at close: {exc}")
                    return
                time.sleep(delay)  # the store itself waited lock_timeout already
                delay = min(delay * 2, 1.0)
                continue
            except Exception as exc:
                if len(items) > 1:  # find the row the store refuses
                    for item in items:
                        self._write([item])
                    return
                with self._count_lock:
                    self.counts["record_errors"] += 1
                log.warning("could not record alert %r in the store: %s",
                            scrub(items[0][0].alert.title),
                            scrub(f"{type(exc).__name__}: {exc}"))
                return
            for result, _ in items:
                result.recorded = True
            with self._count_lock:
                self.counts["recorded"] += len(items)
            return

    def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for every queued row, then stop; rows still queued
        are logged as not recorded (a row being written finishes or is logged)."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._idle:
            while self._busy and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)
        self.stopping.set()
        left_over = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not _CLOSED:
                left_over.append(item[0])
                with self._idle:
                    self._busy -= 1
        self._lost(left_over, f"not written within the close timeout of {timeout:g} s")
        self.queue.put(_CLOSED)


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="alphatrade-alerts",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class AlertManager:
    """Send alerts to several sinks at once.

    Parameters
    ----------
    sinks
        :class:`~alphatrade_lab.alerts.sinks.Sink` objects. A
        :class:`~alphatrade_lab.alerts.sinks.LogAlerter` is added unless one is given or
        ``log=False``.
    store
        A :class:`~alphatrade_lab.store.LabStore` (or a path to one) that records every
        alert sent; ``run_id`` ties the rows to a run.
    dedupe_window
        Seconds during which identical alerts are sent once (0 turns this off).
    max_dedupe_keys
        At most this many distinct recent alerts are remembered for deduplication.
    deadline
        Seconds each alert may take in all (every sink, retries and waits); None: no
        deadline. :meth:`send` and :meth:`submit` take their own ``deadline=``.
    close_timeout
        Seconds :meth:`close` waits for alerts in flight and for queued store rows.
    store_queue
        How many alert rows may wait for the store (beyond that, rows are logged and
        dropped rather than blocking the caller).
    transport
        An :class:`httpx.AsyncBaseTransport` for the pooled client (tests).
    max_connections
        Size of the client's connection pool (each sink also caps its own requests).
    """

    def __init__(self, sinks: Iterable[Sink] = (), *, store: LabStore | str | Path | None = None,
                 run_id: str | None = None, dedupe_window: float = 300.0, log: bool = True,
                 transport: httpx.AsyncBaseTransport | None = None,
                 max_connections: int = 256, max_dedupe_keys: int = 10_000,
                 deadline: float | None = 60.0, close_timeout: float = 10.0,
                 store_queue: int = 10_000):
        self.sinks: list[Sink] = list(sinks)
        if log and not any(isinstance(s, LogAlerter) for s in self.sinks):
            self.sinks.append(LogAlerter())
        names = [s.name for s in self.sinks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sink names must be unique, got {dupes} more than once; "
                             "pass name=... to tell them apart")
        if isinstance(store, str | Path):
            from alphatrade_lab.store import LabStore

            store = LabStore(store)
        self.store = store
        self.run_id = run_id
        self.dedupe_window = float(dedupe_window)
        self._transport = transport
        self._max_connections = int(max_connections)
        if max_dedupe_keys < 1:
            raise ValueError(f"max_dedupe_keys must be >= 1, got {max_dedupe_keys}")
        for name, value in (("deadline", deadline), ("close_timeout", close_timeout)):
            if value is not None and not float(value) >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value}")
        self.max_dedupe_keys = int(max_dedupe_keys)
        self.deadline = None if deadline is None else float(deadline)
        self.close_timeout = float(close_timeout)
        self._seen: collections.OrderedDict[str, _Seen] = collections.OrderedDict()
        self._failing: set[str] = set()
        self._runner: _LoopThread | None = None
        self._client: httpx.AsyncClient | None = None
        self._lock = threading.Lock()
        self._inflight: set[asyncio.Task] = set()
        self.counts: dict[str, Any] = {
            "sent": 0, "suppressed": 0, "recorded": 0, "record_errors": 0,
            "delivered": dict.fromkeys(names, 0), "failed": dict.fromkeys(names, 0)}
        self._store_queue = int(store_queue)
        self._writer: _StoreWriter | None = None

    def __repr__(self) -> str:
        store = f", store={self.store!r}" if self.store is not None else ""
        return f"AlertManager([{', '.join(map(repr, self.sinks))}]{store})"

    # ----------------------------------------------------------- construction
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: Any) -> AlertManager:
        """A manager with the sinks configured in the environment (the log is always on).

        ``TELEGRAM_BOT_TOKEN`` and ``TELEGRAM_CHAT_ID`` (``TELEGRAM_API_BASE`` overrides
        ``https://api.telegram.org``); ``DISCORD_WEBHOOK`` (``DISCORD_API_BASE`` replaces
        its scheme and host); ``ALERT_WEBHOOK_URL``; ``ALERT_TIMEOUT`` (seconds) and
        ``ALERT_MIN_LEVEL`` apply to every HTTP sink. ``options`` go to the constructor
        (``store=``, ``dedupe_window=``...), ``sink_options`` to every HTTP sink.

        >>> m = AlertManager.from_env({"DISCORD_WEBHOOK": "https://discord.com/api/webhooks/1/x"})
        >>> [s.name for s in m.sinks]
        ['discord', 'log']
        """
        env = os.environ if env is None else env
        register_env_secrets(env)
        sink_options: dict[str, Any] = dict(options.pop("sink_options", {}) or {})
        if env.get("ALERT_TIMEOUT"):
            sink_options.setdefault("timeout", float(env["ALERT_TIMEOUT"]))
        if env.get("ALERT_MIN_LEVEL"):
            sink_options.setdefault("min_level", AlertLevel.parse(env["ALERT_MIN_LEVEL"]))
        sinks: list[Sink] = []
        token, chat = env.get("TELEGRAM_BOT_TOKEN"), env.get("TELEGRAM_CHAT_ID")
        if token and chat:
            base = env.get("TELEGRAM_API_BASE") or "https://api.telegram.org"
            sinks.append(TelegramAlerter(token, chat, api_base=base, **sink_options))
        elif token or chat:
            log.warning("Telegram alerts are off: set both TELEGRAM_BOT_TOKEN and "
                        "TELEGRAM_CHAT_ID")
        if env.get("DISCORD_WEBHOOK"):
            url = env["DISCORD_WEBHOOK"]
            if env.get("DISCORD_API_BASE"):
                api, parts = urlsplit(env["DISCORD_API_BASE"]), urlsplit(url)
                prefix = api.path.rstrip("/")
                url = urlunsplit((api.scheme, api.netloc, prefix + parts.path,
                                  parts.query, ""))
            sinks.append(DiscordAlerter(url, **sink_options))
        if env.get("ALERT_WEBHOOK_URL"):
            sinks.append(WebhookAlerter(env["ALERT_WEBHOOK_URL"], **sink_options))
        return cls(sinks, **options)

    # ----------------------------------------------------------- loop and client
    def _runner_(self) -> _LoopThread:
        with self._lock:
            if self._runner is None:
                self._runner = _LoopThread()
            return self._runner

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport, timeout=5.0, follow_redirects=False,
                limits=httpx.Limits(max_connections=self._max_connections,
                                    max_keepalive_connections=64))
        return self._client

    async def _on_loop(self, coro: Coroutine) -> Any:
        runner = self._runner_()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is runner.loop:
            return await coro
        return await asyncio.wrap_future(runner.submit(coro))

    # ----------------------------------------------------------- sending
    async def alert(self, level: Any, title: str | None = None, message: str = "",
                    data: Mapping[str, Any] | None = None) -> AlertResult:
        """Send an alert (or an :class:`Alert` given as ``level``) to every sink whose
        minimum level it reaches; returns an :class:`AlertResult`, never raises for a
        failing sink."""
        alert = level if isinstance(level, Alert) else Alert(level, title or "", message,
                                                             dict(data or {}))
        return await self._on_loop(self._tracked(alert, self.deadline))

    async def info(self, title: str, message: str = "", data: Mapping | None = None
                   ) -> AlertResult:
        """:meth:`alert` at INFO."""
        return await self.alert(AlertLevel.INFO, title, message, data)

    async def warning(self, title: str, message: str = "", data: Mapping | None = None
                      ) -> AlertResult:
        """:meth:`alert` at WARNING."""
        return await self.alert(AlertLevel.WARNING, title, message, data)

    async def critical(self, title: str, message: str = "", data: Mapping | None = None
                       ) -> AlertResult:
        """:meth:`alert` at CRITICAL."""
        return await self.alert(AlertLevel.CRITICAL, title, message, data)

    async def emergency(self, title: str, message: str = "", data: Mapping | None = None
                        ) -> AlertResult:
        """:meth:`alert` at EMERGENCY."""
        return await self.alert(AlertLevel.EMERGENCY, title, message, data)

    async def alert_many(self, alerts: Iterable[Alert]) -> list[AlertResult]:
        """Send several alerts concurrently (each sink still keeps its rate limit)."""
        alerts = list(alerts)

        async def run() -> list[AlertResult]:
            return list(await asyncio.gather(*(self._tracked(a, self.deadline)
                                               for a in alerts)))

        return await self._on_loop(run())

    def send(self, level: Any, title: str | None = None, message: str = "",
             data: Mapping[str, Any] | None = None, *,
             deadline: float | None | str = "default") -> AlertResult:
        """Blocking :meth:`alert`; safe inside a running event loop (Jupyter).

        Returns within about ``deadline`` seconds (default: the manager's ``deadline``,
        60 s; None waits for every sink's retries): sinks still busy then are cancelled
        and reported in ``failed``. The store row is written later, in the background.
        """
        alert = level if isinstance(level, Alert) else Alert(level, title or "", message,
                                                             dict(data or {}))
        self._refuse_own_loop("send")
        return self._runner_().submit(self._tracked(alert, self._deadline(deadline))).result()

    def submit(self, level: Any, title: str | None = None, message: str = "",
               data: Mapping[str, Any] | None = None, *,
               deadline: float | None | str = "default") -> concurrent.futures.Future:
        """Hand an alert to the manager's loop without waiting; returns a
        :class:`concurrent.futures.Future` of its :class:`AlertResult` (resolved by
        the ``deadline``, or by :meth:`close` at the latest)."""
        alert = level if isinstance(level, Alert) else Alert(level, title or "", message,
                                                             dict(data or {}))
        return self._runner_().submit(self._tracked(alert, self._deadline(deadline)))

    def send_many(self, alerts: Iterable[Alert], *,
                  deadline: float | None | str = "default") -> list[AlertResult]:
        """Blocking :meth:`alert_many`. Each alert has the ``deadline``, counted from this
        call (with a rate limit, a large batch may need a longer one)."""
        self._refuse_own_loop("send_many")
        alerts = list(alerts)
        limit = self._deadline(deadline)

        async def run() -> list[AlertResult]:
            return list(await asyncio.gather(*(self._tracked(a, limit) for a in alerts)))

        return self._runner_().submit(run()).result()

    def _deadline(self, deadline: float | None | str) -> float | None:
        if deadline == "default":
            return self.deadline
        if deadline is not None and not float(deadline) >= 0:
            raise ValueError(f"deadline must be a number of seconds >= 0, got {deadline}")
        return None if deadline is None else float(deadline)

    def _refuse_own_loop(self, what: str) -> None:
        runner = self._runner
        if runner is not None and threading.current_thread() is runner.thread:
            raise RuntimeError(f"AlertManager.{what} called from the manager's own loop; "
                               "use `await manager.alert(...)`")

    # ----------------------------------------------------------- internals
    def _dedupe(self, alert: Alert) -> bool:
        """True when ``alert`` repeats one sent within the window (it is then counted).

        Also drops expired entries and, past ``max_dedupe_keys``, the oldest ones; the
        repeat counts they held are sent (:meth:`_evicted`)."""
        if self.dedupe_window <= 0:
            return False
        now = time.monotonic()
        key = alert.key()
        seen = self._seen.get(key)
        if seen is not None and now - seen.first < self.dedupe_window:
            seen.suppressed += 1
            return True
        if seen is not None:
            if seen.suppressed:
                alert.repeat_count = seen.suppressed + 1
            del self._seen[key]
        self._seen[key] = _Seen(now, alert)  # insertion order is the order of `first`
        evicted = []
        while self._seen:
            oldest_key, oldest = next(iter(self._seen.items()))
            if oldest_key == key or (now - oldest.first < self.dedupe_window
                                     and len(self._seen) <= self.max_dedupe_keys):
                break
            self._seen.popitem(last=False)
            if oldest.suppressed:
                evicted.append(oldest)
        for old in evicted:
            self._spawn(self._fan_out(self._repeat(old), self.deadline))
        return False

    @staticmethod
    def _repeat(seen: _Seen) -> Alert:
        """The alert carrying the repeat count of ``seen``'s suppressed copies."""
        out = Alert(seen.alert.level, seen.alert.title, seen.alert.message, seen.alert.data,
                    repeat_count=seen.suppressed)
        seen.suppressed = 0
        return out

    def _spawn(self, coro: Coroutine) -> asyncio.Task:
        """Run ``coro`` as a task on the manager's loop, known to :meth:`close`."""
        task = asyncio.get_running_loop().create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    async def _tracked(self, alert: Alert, deadline: float | None) -> AlertResult:
        """:meth:`_process` as a task that :meth:`close` can wait for and cancel."""
        task = self._spawn(self._process(alert, deadline))
        try:
            return await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
        # cancelled by close() before it even started: every sink it wanted failed
        why = "not delivered: the alert manager closed before delivery started"
        result = AlertResult(alert, failed={s.name: f"{s.name}: {why}"
                                            for s in self.sinks if s.wants(alert)},
                             skipped=[s.name for s in self.sinks if not s.wants(alert)])
        for name in result.failed:
            self.counts["failed"][name] += 1
        if self.store is not None:
            self._record(self.store, result)
        return result

    async def _deliver_one(self, sink: Sink, alert: Alert) -> str | None:
        try:
            await sink.deliver(alert, self._get_client())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, AlertDeliveryError):
                return sink.scrub(exc)
            return sink.scrub(f"{sink.name}: {type(exc).__name__}: {exc}")
        return None

    async def _process(self, alert: Alert, deadline: float | None = None) -> AlertResult:
        started = time.perf_counter()
        if self._dedupe(alert):
            self.counts["suppressed"] += 1
            return AlertResult(alert, suppressed=True)
        result = await self._fan_out(alert, deadline)
        result.elapsed = time.perf_counter() - started
        return result

    async def _fan_out(self, alert: Alert, deadline: float | None = None) -> AlertResult:
        """Deliver to every sink that wants ``alert``, within ``deadline`` seconds; a sink
        still busy then, or when the manager closes (this task is cancelled), is
        cancelled and failed. Always returns the result and queues its store row."""
        result = AlertResult(alert)
        targets: list[Sink] = []
        for sink in self.sinks:
            if sink.wants(alert):
                targets.append(sink)
            else:
                result.skipped.append(sink.name)
        tasks = {asyncio.ensure_future(self._deliver_one(s, alert)): s for s in targets}
        why = f"deadline of {deadline:g} s exceeded" if deadline is not None else ""
        try:
            if tasks:
                await asyncio.wait(tasks, timeout=deadline)
        except asyncio.CancelledError:
            why = "the alert manager closed before delivery finished"
        for task in tasks:
            if not task.done():
                task.cancel()
        if tasks:
            await asyncio.wait(tasks)  # cancelled sinks clean up (close their requests)
        for task, sink in tasks.items():
            error = (f"{sink.name}: not delivered: {why}" if task.cancelled()
                     else task.result())
            if error is None:
                result.delivered.append(sink.name)
                self.counts["delivered"][sink.name] += 1
                if sink.name in self._failing:
                    self._failing.discard(sink.name)
                    log.warning("alert sink %s delivers again", sink.name)
            else:
                result.failed[sink.name] = error
                self.counts["failed"][sink.name] += 1
                self._log_failure(sink.name, alert, error)
        self.counts["sent"] += 1
        if self.store is not None:
            self._record(self.store, result)
        return result

    def _log_failure(self, sink: str, alert: Alert, error: str) -> None:
        """WARNING for a sink's first failure, DEBUG for the next ones until it delivers
        again (a dead service must not flood the log with one line per alert)."""
        first = sink not in self._failing
        self._failing.add(sink)
        log.log(logging.WARNING if first else logging.DEBUG, "alert %r not delivered: %s%s",
                scrub(alert.title), error,
                " (further failures of this sink are logged at DEBUG until it recovers)"
                if first else "")

    def _record(self, store: LabStore, result: AlertResult) -> bool:
        """Queue the result's store row (the writer thread writes it)."""
        alert = result.alert
        data = dict(alert.data)
        if alert.repeat_count > 1:
            data["_repeat_count"] = alert.repeat_count
        if result.failed:
            # a list, not a dict: the store redacts values under keys like "webhook"
            data["_delivery_errors"] = [{"sink": k, "error": v}
                                        for k, v in result.failed.items()]
        row = ((alert.level, scrub(alert.title), scrub(alert.message), data),
               {"delivered": list(result.delivered), "failed": list(result.failed),
                "ts": alert.ts, "run_id": self.run_id})
        with self._lock:
            if self._writer is None:
                self._writer = _StoreWriter(store, self._store_queue, self.counts)
            writer = self._writer
        return writer.put(result, row)

    # ----------------------------------------------------------- lifecycle
    async def _flush(self, deadline: float | None = None) -> list[AlertResult]:
        pending = [s for s in self._seen.values() if s.suppressed]
        return list(await asyncio.gather(*(self._fan_out(self._repeat(seen), deadline)
                                           for seen in pending)))

    def flush(self) -> list[AlertResult]:
        """Send the repeat counts of alerts suppressed since they were last sent."""
        if self._runner is None:
            return []
        return self._runner.submit(self._flush(self.deadline)).result()

    async def _drain(self, timeout: float, flush: bool) -> None:
        """Wait up to ``timeout`` s for the alerts in flight (and the repeat counts, with
        ``flush``), cancel what is left (each then resolves as failed), close the client."""
        end = time.monotonic() + timeout
        if flush:
            await self._flush(max(0.0, end - time.monotonic()))
        while self._inflight:
            left = end - time.monotonic()
            current = set(self._inflight)
            if left > 0:
                await asyncio.wait(current, timeout=left)
            late = [t for t in current if not t.done()]
            if not late:
                continue
            for task in late:
                task.cancel()
            await asyncio.wait(late)
            log.warning("%d alert%s still in flight at close were cancelled and reported as "
                        "failed (close timeout %g s)", len(late), "s" * (len(late) != 1),
                        timeout)
        await asyncio.sleep(0)  # let the callers' wrappers pick up their results
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def close(self, flush: bool = True, timeout: float | None = None) -> None:
        """Send pending repeat counts (``flush``), wait for alerts in flight, write the
        queued store rows, close the client and stop the loop.

        Waits at most ``timeout`` seconds (default ``close_timeout``) for the alerts and
        as long again for the store rows; alerts still in flight then are cancelled and
        resolved as failed (recorded as such), rows not written are logged."""
        timeout = self.close_timeout if timeout is None else float(timeout)
        with self._lock:
            runner, self._runner = self._runner, None
        try:
            if runner is not None:
                try:
                    # the drain cancels what is late, and cancelled sinks give up at once
                    runner.submit(self._drain(timeout, flush)).result(timeout=timeout + 5)
                except concurrent.futures.TimeoutError:
                    log.warning("alert manager: close did not finish within %g s", timeout)
                finally:
                    runner.stop()
        finally:
            with self._lock:
                writer, self._writer = self._writer, None
            if writer is not None:
                writer.drain(timeout)

    async def aclose(self) -> None:
        """:meth:`close` for async code."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> AlertManager:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> AlertManager:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
