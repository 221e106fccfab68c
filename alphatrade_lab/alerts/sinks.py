"""Where alerts go: Telegram, Discord, a generic JSON webhook, and the log.

Every HTTP sink posts through the manager's pooled :class:`httpx.AsyncClient` with

* a timeout per request (``timeout``, default 5 s);
* at most ``attempts`` attempts (default 3): timeouts, connection errors and 5xx
  answers are retried after an exponential backoff with jitter (``backoff`` × 2^k,
  times a random factor in [0.5, 1]); a 429 waits as long as the service says
  (Telegram's ``parameters.retry_after``, Discord's ``retry_after`` or the
  ``Retry-After`` header), unless that is longer than ``max_wait``; other 4xx are final;
* a rate limit per destination (Telegram: 1 message a second per chat; Discord: 5
  requests per 2 seconds per webhook), shared by every sink object with the same one;
* a circuit breaker: after ``trip_after`` failed attempts in a row (timeouts, connection
  errors, 5xx and 429s alike) the sink fails fast for ``cooldown`` seconds, so a dead or
  rate-limiting service costs about one timeout or wait, not one per alert;
* a cap on concurrent requests (``max_concurrency``, default 4) so one slow service
  cannot take the whole connection pool; keep it >= ``trip_after`` so that a hung
  service trips the breaker within one timeout.

Failures raise :class:`AlertDeliveryError`, whose message never holds the token or the
webhook URL; reprs and the ``httpx`` request log lines are scrubbed as well.

>>> TelegramAlerter("123456789:" + "A" * 35, "42")
TelegramAlerter(api_base='https://api.telegram.org', bot_token='[REDACTED]', chat_id='[REDACTED]')
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from alphatrade_lab.alerts.formatting import (
    discord_payload,
    format_text,
    telegram_messages,
    webhook_payload,
)
from alphatrade_lab.errors import AlertDeliveryError
from alphatrade_lab.events import Alert, AlertLevel
from alphatrade_lab.redact import REDACTED, redact, redact_truncate, register_secret

__all__ = [
    "AlertDeliveryError",
    "CircuitBreaker",
    "DiscordAlerter",
    "LogAlerter",
    "RateLimiter",
    "Sink",
    "TelegramAlerter",
    "WebhookAlerter",
    "scrub",
]

log = logging.getLogger("alphatrade_lab.alerts")

# ----------------------------------------------------------------------------- secrets
def scrub(text: Any, extra: Iterable[str | None] = ()) -> str:
    """``str(text)`` without the ``extra`` strings or anything
    :func:`alphatrade_lab.redact.redact` removes (registered and environment secrets,
    bot tokens, webhook paths...).

    >>> register_secret("sEcReT-tOkEn-123")
    >>> scrub("POST https://example.com/hook/sEcReT-tOkEn-123 failed")
    'POST https://example.com/hook/[REDACTED] failed'
    """
    return redact(str(text), extra)


def _redacted(alert: Alert, extra: Iterable[str | None]) -> Alert:
    """A copy of ``alert`` whose title, message and data are redacted."""
    extra = tuple(extra)
    return dataclasses.replace(alert, title=redact(alert.title, extra),
                               message=redact(alert.message, extra),
                               data=redact(alert.data, extra))


class _ScrubFilter(logging.Filter):
    """Scrubs secrets from records of the ``httpx``/``httpcore`` loggers, which log
    every request's URL (a Telegram URL holds the bot token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _ScrubFilter()
for _name in ("httpx", "httpcore", "httpcore.connection", "httpcore.http11",
              "httpcore.http2", "httpcore.proxy", "httpcore.socks"):
    if _FILTER not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_FILTER)


# ----------------------------------------------------------------------------- limits
class RateLimiter:
    """At most ``n`` events per ``period`` seconds (sliding window), across threads.

    :meth:`reserve` books the next free slot and returns how long to wait for it.

    >>> rl = RateLimiter(2, 1.0)
    >>> [round(rl.reserve(now=0.0), 3) for _ in range(3)]
    [0.0, 0.0, 1.0]
    """

    def __init__(self, n: int, period: float):
        if n < 1 or period <= 0:
            raise ValueError(f"rate limit needs n >= 1 and period > 0, got {n}, {period}")
        self.n, self.period = int(n), float(period)
        self._slots: deque[float] = deque(maxlen=self.n)
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def reserve(self, now: float | None = None) -> float:
        with self._lock:
            now = time.monotonic() if now is None else now
            slot = max(now, self._paused_until)
            if len(self._slots) == self.n:
                slot = max(slot, self._slots[0] + self.period)
            self._slots.append(slot)
            return slot - now

    def pause(self, seconds: float) -> None:
        """No slot before ``seconds`` from now (the service asked us to wait)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)


_LIMITERS: dict[str, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def _shared_limiter(key: str, rate: tuple[int, float] | None) -> RateLimiter | None:
    if rate is None:
        return None
    digest = hashlib.sha256(f"{key}|{rate[0]}|{rate[1]}".encode()).hexdigest()
    with _LIMITERS_LOCK:
        return _LIMITERS.setdefault(digest, RateLimiter(*rate))


class CircuitBreaker:
    """Opens after ``trip_after`` failures in a row; stays open ``cooldown`` seconds.

    >>> cb = CircuitBreaker(2, 30.0)
    >>> cb.failure(); cb.is_open()
    False
    >>> cb.failure(); cb.is_open()
    True
    >>> cb.success(); cb.is_open()
    False
    """

    def __init__(self, trip_after: int = 3, cooldown: float = 30.0):
        self.trip_after, self.cooldown = int(trip_after), float(cooldown)
        self.failures = 0
        self.open_until = 0.0
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.trip_after > 0 and self.failures >= self.trip_after:
                self.open_until = time.monotonic() + self.cooldown

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.open_until = 0.0


# ----------------------------------------------------------------------------- sinks
class Sink:
    """Base class: a named destination with a minimum level.

    Subclasses implement ``async deliver(alert, client)`` and raise
    :class:`AlertDeliveryError` on failure.
    """

    kind = "sink"

    def __init__(self, name: str | None = None, min_level: Any = AlertLevel.INFO):
        self.name = name or self.kind
        self.min_level = AlertLevel.parse(min_level)

    def wants(self, alert: Alert) -> bool:
        """Whether the alert's level reaches this sink's minimum."""
        return alert.level >= self.min_level

    def _secrets(self) -> tuple[str, ...]:
        return ()

    def scrub(self, text: Any) -> str:
        """``text`` without this sink's (or any registered) secrets."""
        return scrub(text, self._secrets())

    def _repr_fields(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        fields = self._repr_fields()
        if self.name != self.kind:
            fields["name"] = self.name
        if self.min_level != AlertLevel.INFO:
            fields["min_level"] = self.min_level.name
        inner = ", ".join(f"{k}={v!r}" for k, v in sorted(fields.items()))
        return f"{type(self).__name__}({inner})"

    async def deliver(self, alert: Alert, client: httpx.AsyncClient | None) -> None:
        raise NotImplementedError


class LogAlerter(Sink):
    """Writes alerts to a :mod:`logging` logger (secrets redacted); never fails."""

    kind = "log"
    LEVELS = {AlertLevel.INFO: logging.INFO, AlertLevel.WARNING: logging.WARNING,
              AlertLevel.CRITICAL: logging.ERROR, AlertLevel.EMERGENCY: logging.CRITICAL}

    def __init__(self, logger: str | logging.Logger = "alphatrade_lab.alerts", *,
                 name: str | None = None, min_level: Any = AlertLevel.INFO):
        super().__init__(name, min_level)
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    def _repr_fields(self) -> dict[str, Any]:
        return {"logger": self.logger.name}

    async def deliver(self, alert: Alert, client: httpx.AsyncClient | None = None) -> None:
        self.logger.log(self.LEVELS[alert.level], "%s", scrub(format_text(alert)))


class _Outcome:
    __slots__ = ("final", "ok", "reason", "wait")

    def __init__(self, ok: bool, reason: str = "", wait: float | None = None,
                 final: bool = False):
        self.ok, self.reason, self.wait, self.final = ok, reason, wait, final


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out >= 0 and out == out else None


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


class HttpSink(Sink):
    """An HTTP sink with timeouts, retries, rate limit, concurrency cap and breaker."""

    default_rate: tuple[int, float] | None = None

    def __init__(self, name: str | None = None, min_level: Any = AlertLevel.INFO, *,
                 timeout: float = 5.0, attempts: int = 3, backoff: float = 0.5,
                 max_backoff: float = 8.0, max_wait: float = 60.0,
                 rate: tuple[int, float] | None | Literal["default"] = "default",
                 max_concurrency: int = 4, trip_after: int = 3, cooldown: float = 30.0):
        super().__init__(name, min_level)
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self.timeout, self.attempts = float(timeout), int(attempts)
        self.backoff, self.max_backoff, self.max_wait = backoff, max_backoff, max_wait
        self.rate: tuple[int, float] | None = self.default_rate if rate == "default" else rate
        self.max_concurrency = int(max_concurrency)
        self.breaker = CircuitBreaker(trip_after, cooldown)
        self._semaphores: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._headers: dict[str, str] = {}
        self.attempts_made = 0

    @property
    def limiter(self) -> RateLimiter | None:
        return _shared_limiter(self._limit_key(), self.rate)

    def _limit_key(self) -> str:
        return self.name

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            sem = self._semaphores[loop] = asyncio.Semaphore(self.max_concurrency)
        return sem

    def _requests(self, alert: Alert) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def _classify(self, resp: httpx.Response) -> _Outcome:
        if resp.is_success:
            return _Outcome(True)
        if resp.status_code == 429:
            body = _json(resp)
            wait = _float(body.get("retry_after")) if isinstance(body, dict) else None
            wait = wait if wait is not None else _float(resp.headers.get("Retry-After"))
            return _Outcome(False, "HTTP 429 rate limited", wait)
        if resp.status_code >= 500:
            return _Outcome(False, f"HTTP {resp.status_code}")
        return _Outcome(False, f"HTTP {resp.status_code}: "
                        f"{redact_truncate(resp.text, 200, self._secrets())}", final=True)

    def _delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return base * random.uniform(0.5, 1.0)

    async def _post(self, client: httpx.AsyncClient, url: str, body: dict[str, Any]
                    ) -> tuple[httpx.Response | None, str]:
        """One request: the response, or None and the (scrubbed) error."""
        limiter = self.limiter
        if limiter is not None:
            await limiter.acquire()
        self.attempts_made += 1
        try:
            return await client.post(url, json=body, headers=self._headers or None,
                                     timeout=self.timeout), ""
        except httpx.TimeoutException as exc:
            return None, f"timed out after {self.timeout:g} s ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {self.scrub(exc)}"

    async def _send_one(self, client: httpx.AsyncClient, url: str, body: dict[str, Any]
                        ) -> None:
        reason, attempt = "not attempted", 0
        async with self._semaphore():
            for attempt in range(1, self.attempts + 1):
                if self.breaker.is_open():
                    last = "" if attempt == 1 else f"; last: {reason}"
                    reason = (f"circuit open after {self.breaker.failures} failures in a "
                              f"row, not retried{last}")
                    attempt -= 1
                    break
                resp, error = await self._post(client, url, body)
                if resp is None:
                    outcome = _Outcome(False, error)
                else:
                    try:
                        outcome = self._classify(resp)
                    except Exception as exc:
                        outcome = _Outcome(False, f"unreadable response: "
                                           f"{type(exc).__name__}", final=True)
                if outcome.ok:
                    self.breaker.success()
                    return
                reason = self.scrub(outcome.reason)
                if outcome.final:
                    break
                # 429s count too: a service that only answers "retry later" is down for
                # us, and waiting on it once per alert would stall every caller
                self.breaker.failure()
                if self.breaker.is_open() and attempt < self.attempts:
                    reason += "; circuit now open, not retried"
                    break
                if attempt == self.attempts:
                    break
                if outcome.wait is not None:
                    if outcome.wait > self.max_wait:
                        reason += f" (retry after {outcome.wait:g} s > max_wait)"
                        break
                    if self.limiter is not None:
                        self.limiter.pause(outcome.wait)
                    await asyncio.sleep(outcome.wait)
                else:
                    await asyncio.sleep(self._delay(attempt))
        raise AlertDeliveryError(self.name, reason, attempt)

    async def deliver(self, alert: Alert, client: httpx.AsyncClient | None = None) -> None:
        """Post the alert (several messages for a long Telegram alert, in order)."""
        own = client is None
        client = client or httpx.AsyncClient()
        try:
            for url, body in self._requests(_redacted(alert, self._secrets())):
                await self._send_one(client, url, body)
        finally:
            if own:
                await client.aclose()


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2],
                       "/" + REDACTED if parts.path not in ("", "/") or parts.query else "",
                       "", ""))


class TelegramAlerter(HttpSink):
    """Posts MarkdownV2 messages through the Bot API's ``sendMessage``.

    ``api_base`` points elsewhere for tests or a self-hosted Bot API server. Default rate
    limit: 1 message a second per chat (Telegram's advice for one chat).
    """

    kind = "telegram"
    default_rate = (1, 1.0)

    def __init__(self, bot_token: str, chat_id: str | int, *,
                 api_base: str = "https://api.telegram.org", name: str | None = None,
                 min_level: Any = AlertLevel.INFO, **options: Any):
        if not bot_token or chat_id in (None, ""):
            raise ValueError("TelegramAlerter needs a bot token and a chat id")
        super().__init__(name, min_level, **options)
        self._token, self._chat_id = str(bot_token), str(chat_id)
        self.api_base = api_base.rstrip("/")
        register_secret(self._token, f"bot{self._token}", self._url())

    def _url(self) -> str:
        return f"{self.api_base}/bot{self._token}/sendMessage"

    def _secrets(self) -> tuple[str, ...]:
        return (self._token, self._url(), self._chat_id)

    def _limit_key(self) -> str:
        return f"telegram|{self.api_base}|{self._token}|{self._chat_id}"

    def _repr_fields(self) -> dict[str, Any]:
        return {"api_base": _mask_url(self.api_base) if "@" in self.api_base
                else self.api_base, "bot_token": REDACTED, "chat_id": REDACTED}

    def _requests(self, alert: Alert) -> list[tuple[str, dict[str, Any]]]:
        return [(self._url(), {"chat_id": self._chat_id, "text": text,
                               "parse_mode": "MarkdownV2",
                               "link_preview_options": {"is_disabled": True}})
                for text in telegram_messages(alert)]

    def _classify(self, resp: httpx.Response) -> _Outcome:
        body = _json(resp)
        if resp.is_success:
            if isinstance(body, dict) and body.get("ok") is True:
                return _Outcome(True)
            # the message may have been posted: do not retry (no duplicates)
            return _Outcome(False, f"HTTP {resp.status_code} with a malformed body "
                            "(expected {\"ok\": true})", final=True)
        desc = body.get("description", "") if isinstance(body, dict) else resp.text
        desc = redact_truncate(desc, 200, self._secrets())
        if resp.status_code == 429:
            params = body.get("parameters") if isinstance(body, dict) else None
            wait = _float(params.get("retry_after")) if isinstance(params, dict) else None
            wait = wait if wait is not None else _float(resp.headers.get("Retry-After"))
            return _Outcome(False, f"HTTP 429 {desc}".strip(), wait)
        if resp.status_code >= 500:
            return _Outcome(False, f"HTTP {resp.status_code} {desc}".strip())
        return _Outcome(False, f"HTTP {resp.status_code} {desc}".strip(), final=True)


class DiscordAlerter(HttpSink):
    """Posts one embed per alert to a Discord webhook. Default rate limit: 5 requests per
    2 seconds per webhook (Discord's per-webhook bucket)."""

    kind = "discord"
    default_rate = (5, 2.0)

    def __init__(self, webhook_url: str, *, name: str | None = None,
                 min_level: Any = AlertLevel.INFO, username: str | None = "alphatrade_lab",
                 **options: Any):
        if not webhook_url:
            raise ValueError("DiscordAlerter needs a webhook URL")
        super().__init__(name, min_level, **options)
        self._url, self.username = str(webhook_url), username
        path = urlsplit(self._url).path
        register_secret(self._url, path if len(path) > 1 else None,
                  path.rpartition("/api/webhooks/")[2] or None)

    def _secrets(self) -> tuple[str, ...]:
        return (self._url,)

    def _limit_key(self) -> str:
        return f"discord|{self._url}"

    def _repr_fields(self) -> dict[str, Any]:
        return {"webhook_url": _mask_url(self._url)}

    def _requests(self, alert: Alert) -> list[tuple[str, dict[str, Any]]]:
        return [(self._url, discord_payload(alert, self.username))]

    def _classify(self, resp: httpx.Response) -> _Outcome:
        if resp.status_code == 429:
            body = _json(resp)
            wait = _float(body.get("retry_after")) if isinstance(body, dict) else None
            for header in ("Retry-After", "X-RateLimit-Reset-After"):
                if wait is None:
                    wait = _float(resp.headers.get(header))
            return _Outcome(False, "HTTP 429 rate limited", wait)
        return super()._classify(resp)


class WebhookAlerter(HttpSink):
    """POSTs the alert as JSON (:meth:`Alert.to_dict`) to any URL; ``headers`` (e.g. an
    ``Authorization``) are sent with every request and treated as secrets. No rate limit
    unless ``rate=(n, seconds)``."""

    kind = "webhook"

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None,
                 name: str | None = None, min_level: Any = AlertLevel.INFO, **options: Any):
        if not url:
            raise ValueError("WebhookAlerter needs a URL")
        super().__init__(name, min_level, **options)
        self._url, self._headers = str(url), dict(headers or {})
        # the URL's token-like path, query secrets and "Bearer <token>" parts are included;
        # a plain path such as /api/alerts is not (it would be redacted in every log line)
        register_secret(self._url, *self._headers.values())

    def _secrets(self) -> tuple[str, ...]:
        return (self._url, *self._headers.values())

    def _limit_key(self) -> str:
        return f"webhook|{self._url}"

    def _repr_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": _mask_url(self._url)}
        if self._headers:
            out["headers"] = dict.fromkeys(self._headers, REDACTED)
        return out

    def _requests(self, alert: Alert) -> list[tuple[str, dict[str, Any]]]:
        return [(self._url, webhook_payload(alert))]
