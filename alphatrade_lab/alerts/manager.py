"""``AlertManager``: fan an alert out to every sink, concurrently, without ever raising.

All deliveries run on the manager's own event loop, in a daemon thread, with one pooled
:class:`httpx.AsyncClient`. ``await manager.alert(...)`` hands the work to that loop and
awaits it from any loop; :meth:`AlertManager.send` blocks for it, so it also works where
an event loop is already running (a Jupyter cell).

Noise control: an alert identical to one sent less than ``dedupe_window`` seconds ago
(same level, title, message and data) is not sent; the next identical alert after the
window, or :meth:`AlertManager.flush`, carries the repeat count. Each sink has a minimum
level and a rate limit (see :mod:`alphatrade_lab.alerts.sinks`).

With a ``store``, every alert that was sent is recorded in its ``alerts`` table with the
sinks that delivered it and those that failed (their scrubbed errors go in
``data["_delivery_errors"]``, a list of ``{"sink", "error"}``).

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
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from alphatrade_lab.alerts.levels import Alert, AlertLevel
from alphatrade_lab.alerts.sinks import (
    AlertDeliveryError,
    DiscordAlerter,
    LogAlerter,
    Sink,
    TelegramAlerter,
    WebhookAlerter,
    scrub,
)
from alphatrade_lab.redact import register_env_secrets

__all__ = ["AlertManager", "AlertResult"]

log = logging.getLogger("alphatrade_lab.alerts")


@dataclass
class AlertResult:
    """What happened to one alert: sinks that delivered it, failed (with the scrubbed
    reason), were skipped (below their minimum level); or it was a suppressed repeat."""

    alert: Alert
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    suppressed: bool = False
    recorded: bool = False
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """Sent (or suppressed as a repeat) and no sink failed."""
        return not self.failed


@dataclass
class _Seen:
    first: float
    alert: Alert
    suppressed: int = 0


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
    transport
        An :class:`httpx.AsyncBaseTransport` for the pooled client (tests).
    max_connections
        Size of the client's connection pool (each sink also caps its own requests).
    """

    def __init__(self, sinks: Iterable[Sink] = (), *, store: Any = None,
                 run_id: str | None = None, dedupe_window: float = 300.0, log: bool = True,
                 transport: httpx.AsyncBaseTransport | None = None,
                 max_connections: int = 256):
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
        self._seen: dict[str, _Seen] = {}
        self._failing: set[str] = set()
        self._runner: _LoopThread | None = None
        self._client: httpx.AsyncClient | None = None
        self._lock = threading.Lock()
        self.counts = {"sent": 0, "suppressed": 0, "recorded": 0, "record_errors": 0,
                       "delivered": dict.fromkeys(names, 0), "failed": dict.fromkeys(names, 0)}

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
                base, parts = urlsplit(env["DISCORD_API_BASE"]), urlsplit(url)
                prefix = base.path.rstrip("/")
                url = urlunsplit((base.scheme, base.netloc, prefix + parts.path,
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
        return await self._on_loop(self._process(alert))

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
            return list(await asyncio.gather(*(self._process(a) for a in alerts)))

        return await self._on_loop(run())

    def send(self, level: Any, title: str | None = None, message: str = "",
             data: Mapping[str, Any] | None = None) -> AlertResult:
        """Blocking :meth:`alert`; safe inside a running event loop (Jupyter)."""
        alert = level if isinstance(level, Alert) else Alert(level, title or "", message,
                                                             dict(data or {}))
        self._refuse_own_loop("send")
        return self._runner_().submit(self._process(alert)).result()

    def submit(self, level: Any, title: str | None = None, message: str = "",
               data: Mapping[str, Any] | None = None) -> concurrent.futures.Future:
        """Hand an alert to the manager's loop without waiting; returns a
        :class:`concurrent.futures.Future` of its :class:`AlertResult`."""
        alert = level if isinstance(level, Alert) else Alert(level, title or "", message,
                                                             dict(data or {}))
        return self._runner_().submit(self._process(alert))

    def send_many(self, alerts: Iterable[Alert]) -> list[AlertResult]:
        """Blocking :meth:`alert_many`."""
        self._refuse_own_loop("send_many")
        alerts = list(alerts)

        async def run() -> list[AlertResult]:
            return list(await asyncio.gather(*(self._process(a) for a in alerts)))

        return self._runner_().submit(run()).result()

    def _refuse_own_loop(self, what: str) -> None:
        runner = self._runner
        if runner is not None and threading.current_thread() is runner.thread:
            raise RuntimeError(f"AlertManager.{what} called from the manager's own loop; "
                               "use `await manager.alert(...)`")

    # ----------------------------------------------------------- internals
    def _dedupe(self, alert: Alert) -> bool:
        """True when ``alert`` repeats one sent within the window (it is then counted)."""
        if self.dedupe_window <= 0:
            return False
        now = time.monotonic()
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items()
                          if now - v.first < self.dedupe_window}
        key = alert.key()
        seen = self._seen.get(key)
        if seen is not None and now - seen.first < self.dedupe_window:
            seen.suppressed += 1
            return True
        if seen is not None and seen.suppressed:
            alert.repeat_count = seen.suppressed + 1
        self._seen[key] = _Seen(now, alert)
        return False

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

    async def _process(self, alert: Alert) -> AlertResult:
        started = time.perf_counter()
        if self._dedupe(alert):
            self.counts["suppressed"] += 1
            return AlertResult(alert, suppressed=True)
        result = await self._fan_out(alert)
        result.elapsed = time.perf_counter() - started
        return result

    async def _fan_out(self, alert: Alert) -> AlertResult:
        result = AlertResult(alert)
        targets = []
        for sink in self.sinks:
            (targets if sink.wants(alert) else result.skipped).append(
                sink if sink.wants(alert) else sink.name)
        errors = await asyncio.gather(*(self._deliver_one(s, alert) for s in targets))
        for sink, error in zip(targets, errors, strict=True):
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
            result.recorded = await self._record(result)
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

    async def _record(self, result: AlertResult) -> bool:
        alert = result.alert
        data = dict(alert.data)
        if alert.repeat_count > 1:
            data["_repeat_count"] = alert.repeat_count
        if result.failed:
            # a list, not a dict: the store redacts values under keys like "webhook"
            data["_delivery_errors"] = [{"sink": k, "error": v}
                                        for k, v in result.failed.items()]
        try:
            await asyncio.to_thread(
                self.store.record_alert, alert.level, scrub(alert.title),
                scrub(alert.message), data, delivered=result.delivered,
                failed=list(result.failed), ts=alert.ts, run_id=self.run_id)
        except Exception as exc:
            self.counts["record_errors"] += 1
            log.warning("could not record alert %r in the store: %s", scrub(alert.title),
                        scrub(f"{type(exc).__name__}: {exc}"))
            return False
        self.counts["recorded"] += 1
        return True

    # ----------------------------------------------------------- lifecycle
    async def _flush(self) -> list[AlertResult]:
        pending = [s for s in self._seen.values() if s.suppressed]
        out = []
        for seen in pending:
            repeat = Alert(seen.alert.level, seen.alert.title, seen.alert.message,
                           seen.alert.data, repeat_count=seen.suppressed)
            seen.suppressed = 0
            out.append(await self._fan_out(repeat))
        return out

    def flush(self) -> list[AlertResult]:
        """Send the repeat counts of alerts suppressed since they were last sent."""
        if self._runner is None:
            return []
        return self._runner.submit(self._flush()).result()

    async def _aclose(self) -> None:
        await self._flush()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def close(self, flush: bool = True) -> None:
        """Send pending repeat counts (``flush``), close the client and stop the loop."""
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            coro = self._aclose() if flush else self._close_client()
            runner.submit(coro).result(timeout=120)
        finally:
            runner.stop()

    async def _close_client(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

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
