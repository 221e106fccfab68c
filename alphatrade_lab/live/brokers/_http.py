"""Retry timing for the broker adapters' HTTP calls: exponential backoff with jitter and
the wait a rate-limited answer asks for.

>>> policy = RetryPolicy(max_retries=3, backoff=0.1, max_backoff=1.0, jitter=False)
>>> [policy.delay(k) for k in (1, 2, 3, 5)]
[0.1, 0.2, 0.4, 1.0]
>>> retry_after({"Retry-After": "2"}), retry_after({"Retry-After": "0.25"}), retry_after({})
(2.0, 0.25, None)
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RetryPolicy", "retry_after"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before trying a request again.

    ``max_retries`` further attempts after the first; the k-th retry waits
    ``backoff * 2 ** (k - 1)`` seconds (at most ``max_backoff``), times a random factor in
    [0.5, 1] with ``jitter``; a server that asks for a longer wait than ``max_wait``
    (a 429's Retry-After) is not waited for.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_wait: float = 60.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.max_retries, int) and self.max_retries >= 0):
            raise ValueError(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        for name in ("backoff", "max_backoff", "max_wait"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")

    @property
    def attempts(self) -> int:
        """Attempts in all: the first and the retries."""
        return self.max_retries + 1

    def delay(self, retry: int) -> float:
        """Seconds to wait before the ``retry``-th retry (1-based)."""
        base = min(self.max_backoff, self.backoff * 2 ** max(0, retry - 1))
        return base * random.uniform(0.5, 1.0) if self.jitter else base


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait (seconds, >= 0) a rate-limited answer asks for, or None when it names none.

    ``Retry-After`` as seconds (a decimal is accepted) or an HTTP date; otherwise
    ``X-RateLimit-Reset`` (Alpaca's header: the Unix time when the limit resets).
    """
    now = time.time() if now is None else now
    lower = {k.lower(): v for k, v in headers.items()}
    value = lower.get("retry-after")
    if value is not None:
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            if when is None:
                return None
            return max(0.0, when.timestamp() - now)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    reset = lower.get("x-ratelimit-reset")
    if reset is not None:
        try:
            at = float(reset)
        except ValueError:
            return None
        return max(0.0, at - now) if math.isfinite(at) else None
    return None
