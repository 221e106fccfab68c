"""Keep credentials out of stored rows.

Alert payloads, run parameters and trade metadata are free-form; a webhook URL or a bot
token can end up in them by accident (an exception message, a config dict). Everything
the store writes into a JSON or free-text column passes through :func:`redact` first:

* values under a key that names a secret (``token``, ``secret``, ``password``,
  ``api_key``, ``webhook``, ``authorization``, ``chat_id`` ...) become ``"[REDACTED]"``;
* inside any string: the user-info of URLs (``https://user:pass@host``), query parameters
  named like secrets (``?token=...``), Telegram bot tokens (``123456789:AA...``, also in
  ``/bot<token>/`` paths), Discord/Slack webhook paths, ``Bearer ...`` credentials and
  ``key=value`` pairs whose key names a secret are replaced by ``[REDACTED]``.

This is a safety net, not a guarantee: the alerting code should not put secrets in
payloads in the first place.

>>> redact({"url": "https://bob:hunter2@example.com/x", "bot_token": "1:abc", "n": 3})
{'url': 'https://[REDACTED]@example.com/x', 'bot_token': '[REDACTED]', 'n': 3}
>>> redact("post to https://discord.com/api/webhooks/123/abcDEF-ghi failed")
'post to https://discord.com/api/webhooks/[REDACTED] failed'
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REDACTED", "looks_secret", "redact"]

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(token|secret|passw(or)?d|passphrase|api[_-]?key|apikey|private[_-]?key|"
    r"access[_-]?key|auth|credential|webhook|chat[_-]?id|cookie|session[_-]?id|dsn)",
    re.IGNORECASE)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # user-info in a URL: scheme://user:password@host
    (re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@"), REDACTED + "@"),
    # Discord / Slack webhook paths
    (re.compile(r"(?<=/api/webhooks/)[^\s\"'<>]+"), REDACTED),
    (re.compile(r"(?<=hooks\.slack\.com/services/)[^\s\"'<>]+"), REDACTED),
    # Telegram bot tokens, bare or in /bot<token>/ paths
    (re.compile(r"(?<![\w])(bot)?\d{6,12}:[A-Za-z0-9_-]{30,}"), REDACTED),
    # Authorization headers
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{12,}"), r"\1 " + REDACTED),
    # key=value / key: value pairs and URL query parameters named like secrets
    (re.compile(r"(?i)\b([\w-]*(?:token|secret|passw(?:or)?d|api[_-]?key|apikey|"
                r"access[_-]?key|signature|sig)[\w-]*)(=|:\s*)([^\s&\"',;]+)"),
     r"\1\2" + REDACTED),
)


def looks_secret(key: Any) -> bool:
    """Whether a mapping key names a credential (``bot_token``, ``DISCORD_WEBHOOK``...).

    >>> looks_secret("TELEGRAM_BOT_TOKEN"), looks_secret("symbol")
    (True, False)
    """
    return isinstance(key, str) and bool(_SECRET_KEY.search(key))


def _redact_text(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` (str, dict, list, tuple or scalar) without credentials."""
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, dict):
        return {k: (REDACTED if looks_secret(k) and v is not None else redact(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
