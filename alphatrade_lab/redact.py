"""Keep credentials out of stored rows, alert payloads, logs and error messages.

Alert payloads, run parameters, trade metadata and error messages are free-form; a
webhook URL or a bot token can end up in them by accident (an exception message, a config
dict, a data cell). :func:`redact` replaces credentials by ``"[REDACTED]"`` and leaves
everything else unchanged, in this order:

1. **Known secrets, exactly, everywhere.** The values of the environment variables that
   hold credentials (``TELEGRAM_BOT_TOKEN``, ``TELEGRAM_CHAT_ID``, ``DISCORD_WEBHOOK``,
   ``ALERT_WEBHOOK_URL``, and any variable whose name :func:`is_secret_key` accepts,
   such as ``EXCHANGE_API_KEY`` or ``DB_PASSWORD``; ``PWD``/``OLDPWD`` are directories),
   read at redaction time, and every value passed to :func:`register_secret` (the alert
   sinks register their tokens and URLs). The URL of a known secret is also matched by
   its path, its last path segment (a webhook token) and its query values; a Telegram
   token also by its part after the colon. Values shorter than 6 characters are not
   matched: they would mangle ordinary text.
2. **Well-known shapes**, wherever they appear: PEM private-key blocks, URL user-info
   (``https://user:pass@host``, ``https://TOKEN@host``), Discord webhook paths
   (``/api/webhooks/...``, ``/api/v10/webhooks/...``) and Slack ``hooks.slack.com`` paths,
   Telegram bot tokens (``123456789:AA...``), ``Bearer`` credentials of any length, and
   the prefixed tokens of Stripe (``sk_live_``), AWS (``AKIA...``), GitHub (``ghp_``),
   Slack (``xoxb-``), Google (``AIza``), OpenAI-style ``sk-...``, Hugging Face (``hf_``)
   and JWTs (``eyJ...``).
3. **Values under secret keys**: ``key=value``, ``key: value``, ``"key": "value"`` (JSON),
   ``'key': 'value'`` (a dict's repr), quoted values with spaces, URL query parameters,
   and mapping keys. A key names a secret when, split into words on ``_``, ``-``, ``.``
   and camelCase, its *last* word is one of ``token``, ``secret``, ``password``,
   ``passwd``, ``pwd``, ``passphrase``, ``credential(s)``, ``authorization``, ``auth``,
   ``cookie``, ``dsn``, ``apikey``, ``signature``, ``webhook``, ``jwt``; or it is ``key``
   after ``api``, ``private``, ``secret``, ``access``, ``client``, ``signing``...; or
   ``id`` after ``chat`` or ``session``; or ``url``/``uri``/``header`` after one of these
   (``webhook_url``). In a URL query, ``key``, ``sig`` and ``code`` count as well. Whole
   words only: ``macd_signal``, ``sigma``, ``design``, ``n_tokens``, ``max_tokens``,
   ``tokenizer``, ``author`` and ``webhook_enabled`` are ordinary keys. Booleans and
   ``None`` under a secret key are kept (they cannot be credentials), and so is a short
   plain word after ``webhook:`` or ``auth:`` in text (``webhook: HTTP 404`` names a
   sink; a real value is a URL or a token).

:func:`redact_truncate` redacts first and cuts afterwards, so a cut can never expose part
of a secret. This is a safety net, not a guarantee: a password without a recognisable
shape, in prose (``the password is hunter2``), is not found.

>>> redact({"url": "https://bob:hunter2@example.com/x", "bot_token": "1:abc", "n": 3})
{'url': 'https://[REDACTED]@example.com/x', 'bot_token': '[REDACTED]', 'n': 3}
>>> redact("post to https://discord.com/api/v10/webhooks/123/abcDEF-ghi failed")
'post to https://discord.com/api/v10/webhooks/[REDACTED] failed'
>>> redact("macd_signal: drifted by psi 0.31 | sigma=0.2, password='hunter 2'")
"macd_signal: drifted by psi 0.31 | sigma=0.2, password='[REDACTED]'"
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["REDACTED", "TRIGGER", "Redactor", "is_secret_key", "known_secrets", "redact",
           "redact_truncate", "register_env_secrets", "register_secret"]

REDACTED = "[REDACTED]"

#: Shortest value matched as a known secret.
MIN_SECRET_LENGTH = 6

# ----------------------------------------------------------------------------- key names
_HEAD = frozenset({
    "token", "secret", "secrets", "password", "passwords", "passwd", "pwd", "passphrase",
    "credential", "credentials", "authorization", "auth", "cookie", "cookies", "dsn",
    "apikey", "signature", "webhook", "jwt", "sessionid", "privkey"})
_KEY_QUALIFIERS = frozenset({
    "api", "private", "secret", "access", "client", "signing", "encryption", "master",
    "auth", "app", "license", "subscription", "service", "account", "webhook", "hmac",
    "ssh", "deploy"})
_ID_QUALIFIERS = frozenset({"chat", "session"})
_TAILS = frozenset({"url", "uri", "urls", "header", "headers", "value", "b64", "base64",
                    "hex", "pem", "str", "string", "text"})
_QUERY_HEAD = frozenset({"key", "sig", "code"})
# in text, a plain word after these is a label ("webhook: HTTP 404"), not a credential
_WEAK = frozenset({"webhook", "auth"})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_ENV_NAMES = frozenset({"TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "DISCORD_WEBHOOK",
                        "ALERT_WEBHOOK_URL"})
_ENV_NOT_SECRET = frozenset({"PWD", "OLDPWD"})


def _words(key: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(key)]


def _secret_words(words: list[str], query: bool = False) -> bool:
    if not words:
        return False
    last = words[-1]
    if last in _HEAD or (query and last in _QUERY_HEAD):
        return True
    if last in ("key", "keys"):
        return len(words) > 1 and words[-2] in _KEY_QUALIFIERS
    if last == "id" and len(words) > 1 and words[-2] in _ID_QUALIFIERS:
        return True
    if last in _TAILS and len(words) > 1:
        return words[-2] == "hook" or _secret_words(words[:-1])
    return False


@lru_cache(maxsize=4096)
def is_secret_key(key: Any) -> bool:
    """Whether a mapping key or variable name names a credential.

    Whole words decide (see the module docstring), not substrings.

    >>> [is_secret_key(k) for k in ("TELEGRAM_BOT_TOKEN", "apiKey", "webhook_url")]
    [True, True, True]
    >>> [is_secret_key(k) for k in ("macd_signal", "max_tokens", "author", "webhook_enabled")]
    [False, False, False, False]
    """
    return isinstance(key, str) and _secret_words(_words(key))


@lru_cache(maxsize=4096)
def _is_query_secret(key: str) -> bool:
    return _secret_words(_words(key), query=True)


@lru_cache(maxsize=1024)
def _secret_env_name(name: str) -> bool:
    return name in _ENV_NAMES or (name not in _ENV_NOT_SECRET and is_secret_key(name))


# ----------------------------------------------------------------------------- known secrets
_REGISTERED: set[str] = set()
_LOCK = threading.Lock()
_VERSION = [0]


@lru_cache(maxsize=1024)
def _token_like(text: str, n: int) -> bool:
    """At least ``n`` characters with a digit and a letter: a generated token, not a word
    or a plain path (``/api/alerts``), which must stay readable everywhere else."""
    return len(text) >= n and any(c.isdigit() for c in text) and any(c.isalpha() for c in text)


def _variants(value: str) -> frozenset[str]:
    """``value`` and the parts of it that are secret on their own."""
    value = value.strip()
    out = {value}
    if "://" in value:
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is not None:
            tail = parts.path + (f"?{parts.query}" if parts.query else "")
            if _token_like(tail, 16):
                out.add(tail)
            if "/webhooks/" in parts.path:
                out.add(parts.path.split("/webhooks/", 1)[1])
            last = parts.path.rstrip("/").rpartition("/")[2]
            if _token_like(last, 12):
                out.add(last)
            if parts.password:
                out.add(parts.password)
            if parts.username and parts.password is None:
                out.add(parts.username)
            out.update(v for k, v in parse_qsl(parts.query)
                       if _is_query_secret(k) or _token_like(v, 16))
            if parts.path.startswith("/bot"):
                out.update(_variants(parts.path[4:].partition("/")[0]))
    elif re.fullmatch(r"\d{5,}:[\w-]{20,}", value):
        out.add(value.partition(":")[2])
    elif (m := _SCHEME.match(value)) and " " not in value[m.end():]:
        out.add(value[m.end():])            # an Authorization header: "Bearer <token>"
    return frozenset(v for v in out if len(v) >= MIN_SECRET_LENGTH)


def register_secret(*values: str | None) -> None:
    """Redact these exact values (and their secret parts) everywhere from now on.

    For credentials passed programmatically rather than through the environment; the
    alert sinks register their tokens, webhook URLs and headers. ``None``, empty and
    too-short values are ignored.

    >>> register_secret("my-exchange-Pa55phrase")
    >>> redact("login with my-exchange-Pa55phrase failed")
    'login with [REDACTED] failed'
    """
    new: set[str] = set()
    for v in values:
        if isinstance(v, str) and v.strip():
            new |= _variants(v)
    with _LOCK:
        if not new <= _REGISTERED:
            _REGISTERED.update(new)
            _VERSION[0] += 1


def register_env_secrets(env: Mapping[str, str]) -> None:
    """:func:`register_secret` the values of ``env``'s credential variables (the names
    the environment rule above accepts), for a configuration given as a mapping.

    >>> register_env_secrets({"MY_SERVICE_TOKEN": "tok-8h2Kd9Lq", "LOG_LEVEL": "debug"})
    >>> redact("tok-8h2Kd9Lq at debug")
    '[REDACTED] at debug'
    """
    register_secret(*(v for k, v in env.items()
                      if isinstance(k, str) and isinstance(v, str) and _secret_env_name(k)))


def _env_secrets() -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in os.environ.items() if v and _secret_env_name(k))


def known_secrets() -> frozenset[str]:
    """The exact values :func:`redact` removes: registered ones and the environment's."""
    with _LOCK:
        out = set(_REGISTERED)
    for _, v in _env_secrets():
        out |= _variants(v)
    return frozenset(out)


# (key, regex, secrets), replaced as one tuple so that threads never see a mix
_CACHE: list[tuple[Any, re.Pattern[str] | None, tuple[str, ...]] | None] = [None]


@lru_cache(maxsize=64)
def _compile(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(map(re.escape, secrets))) if secrets else None


def _known_regex() -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
    # the environment is re-read on every call (a few microseconds); the regex is rebuilt
    # only when it or the registered set changed
    env = _env_secrets()
    key = (_VERSION[0], env)
    cached = _CACHE[0]
    if cached is None or cached[0] != key:
        with _LOCK:
            found = set(_REGISTERED)
        for _, v in env:
            found |= _variants(v)
        secrets = tuple(sorted(found, key=lambda s: (-len(s), s)))
        cached = _CACHE[0] = (key, _compile(secrets), secrets)
    return cached[1], cached[2]


# ----------------------------------------------------------------------------- patterns
_PEM = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?"
                  r"(?:-----END[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\Z)", re.DOTALL)
#: Text that matches none of this (valid in Python's ``re`` and in RE2, so pyarrow can
#: apply it to a whole column) and holds no known secret comes back from redact unchanged.
TRIGGER = (r"[=:@]|(?i:bearer)|eyJ|AKIA|ASIA|AROA|AIDA|gh[pousr]_|github_pat_|xox|sk_|rk_|"
           r"whsec_|sk-|AIza|hf_|webhooks/|hooks\.slack|-----BEGIN")
_MAYBE = re.compile(TRIGGER)
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # user-info in a URL: scheme://user:password@host, scheme://token@host
    (re.compile(r"(?<=://)[^\s/@?#\[\]\"'<>]+@"), REDACTED + "@"),
    # Discord webhook paths (any API version) and Slack webhook paths
    (re.compile(r"(?i)(/api(?:/v\d+)?/webhooks/|/webhooks/(?=\d{5,}/)|hooks\.slack\.com/"
                r"(?:services|workflows|triggers)/)(?!\[REDACTED\])[^\s\"'<>()\[\]{}]+"),
     r"\1" + REDACTED),
    # Telegram bot tokens, bare or in /bot<token>/ paths
    (re.compile(r"(?<![\w])(bot)?\d{5,12}:[A-Za-z0-9_-]{30,}"), REDACTED),
    # prefixed API tokens
    (re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{6,}|\bwhsec_[A-Za-z0-9]{16,}"
                r"|\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{16}\b|\bgh[pousr]_[A-Za-z0-9]{20,}"
                r"|\bgithub_pat_\w{20,}|\bxox[abeoprs]-[A-Za-z0-9-]{10,}"
                r"|\bAIza[0-9A-Za-z_-]{30,}|\bsk-[A-Za-z0-9_-]{20,}|\bhf_[A-Za-z0-9]{30,}"
                r"|\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Authorization credentials
    (re.compile(r"(?i)\b(bearer)\s+(?!\[REDACTED\])[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
)
# a key and its separator (the value is found by _value_span)
_KV = re.compile(r"(?<![\w.\-])-{0,2}(?P<key>[A-Za-z_][\w.\-]*)(?:\\?[\"'])?[ \t]*"
                 r"(?:=(?![=>])|:(?![:/]))[ \t]*")
_QUOTE = re.compile(r"[bBrRuU]{0,2}(\\?[\"'])")
_SCHEME = re.compile(r"(?i)(?:bearer|basic|token|bot|digest|apikey)[ \t]+")
_BARE = re.compile(r"(?:[^\s&,;\"'<>(){}\[\]]|\[REDACTED\])+")


def _close_quote(text: str, start: int, quote: str) -> int:
    if len(quote) == 2:   # \" inside a JSON string
        end = text.find(quote, start)
        return len(text) if end < 0 else end
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            return i
        i += 1
    return len(text)


def _close_bracket(text: str, start: int) -> int:
    pairs = {"[": "]", "{": "}", "(": ")"}
    stack, i, quote = [pairs[text[start]]], start + 1, None
    while i < len(text) and stack:
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in pairs:
            stack.append(pairs[c])
        elif c == stack[-1]:
            stack.pop()
        i += 1
    return i


def _value_span(text: str, i: int) -> tuple[int, int] | None:
    """Start and end of the value that begins at ``i`` (None: no value to redact)."""
    if i >= len(text):
        return None
    m = _QUOTE.match(text, i)
    if m:
        start = m.end()
        end = _close_quote(text, start, m.group(1))
        return None if text.startswith(REDACTED, start) and end == start + len(REDACTED) \
            else (start, end)
    if text[i] in "[{(" and not text.startswith(REDACTED, i):
        return i, _close_bracket(text, i)
    m = _SCHEME.match(text, i)
    if m:
        i = m.end()
    m = _BARE.match(text, i)
    if m is None or m.group() == REDACTED:
        return None
    return i, m.end()


def _plain(value: str) -> bool:
    return len(value) < 16 and value.isalpha()


def _key_values(text: str) -> str:
    out, pos = [], 0
    for m in _KV.finditer(text):
        if m.start() < pos:
            continue
        key, k0 = m.group("key"), m.start("key")
        query = k0 > 0 and text[k0 - 1] in "?&;"
        if not (_is_query_secret(key) if query else is_secret_key(key)):
            continue
        span = _value_span(text, m.end())
        if span is None:
            continue
        if _words(key)[-1] in _WEAK and _plain(text[span[0]:span[1]]):
            continue   # "webhook: HTTP 404 ..." names a sink, it does not hold a URL
        out += [text[pos:span[0]], REDACTED]
        pos = span[1]
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


class Redactor:
    """A snapshot of the known secrets (plus ``extra``) that redacts many values.

    :func:`redact` makes one per call; code that redacts a whole column makes one for
    all its values (reading the environment once). ``redactor(value)`` is
    ``redact(value)`` as of the snapshot.
    """

    def __init__(self, extra: Iterable[str | None] = ()):
        regex, secrets = _known_regex()
        more: set[str] = set()
        for v in extra:
            if isinstance(v, str) and v.strip():
                more |= _variants(v)
        if more - set(secrets):
            secrets = tuple(sorted(set(secrets) | more, key=lambda s: (-len(s), s)))
            regex = _compile(secrets)
        self.regex, self.secrets = regex, secrets

    def text(self, text: str) -> str:
        """``text`` without credentials."""
        if "-----BEGIN" in text:
            text = _PEM.sub(REDACTED, text)
        if self.regex is not None:
            text = self.regex.sub(REDACTED, text)
        if not _MAYBE.search(text):
            return text
        for pattern, repl in _SHAPES:
            text = pattern.sub(repl, text)
        return _key_values(text)

    def __call__(self, value: Any) -> Any:
        return self.value(value)

    def value(self, value: Any) -> Any:
        """``value`` without credentials (see :func:`redact`)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                secret = is_secret_key(k) and v is not None and not isinstance(v, bool) \
                    and not (isinstance(v, str) and v == "")
                out[self.text(k) if isinstance(k, str) else k] = \
                    REDACTED if secret else self.value(v)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            return type(value)(self.value(v) for v in value)
        return value


def redact(value: Any, extra: Iterable[str | None] = ()) -> Any:
    """A copy of ``value`` (str, mapping, list, tuple, set or scalar) without credentials.

    ``extra`` are further exact secrets for this call only. Mappings become dicts; other
    values keep their type; text without credentials comes back unchanged.
    """
    return Redactor(extra).value(value)


def redact_truncate(text: Any, limit: int, extra: Iterable[str | None] = ()) -> str:
    """``str(text)`` redacted, then cut to about ``limit`` characters (``…`` marks a cut).

    Redaction comes first, so a secret that straddles the cut is removed whole; a
    ``[REDACTED]`` marker is never cut in half, and a tail that is the beginning of a
    known secret (a body that arrived already cut) is redacted too.

    >>> register_secret("Zq9xWv4RtY7pLm2K")
    >>> redact_truncate("x" * 10 + "Zq9xWv4RtY7pLm2K", 12)
    'xxxxxxxxxx[REDACTED]…'
    >>> redact_truncate("body ends in Zq9xWv4R", 100)
    'body ends in [REDACTED]'
    """
    r = Redactor(extra)
    text = str(text)
    # a margin past the cut keeps a secret that straddles it whole while redacting,
    # without redacting megabytes of a body nobody will read
    out = r.text(text[:limit + 8192])
    cut = len(out) > limit
    if cut:
        p = out.rfind(REDACTED, 0, limit + len(REDACTED))
        out = out[:p] + REDACTED if p >= 0 and p + len(REDACTED) > limit else out[:limit]
    for s in r.secrets:
        if "://" in s:   # its path and token are known secrets of their own
            continue
        for k in range(min(len(s) - 1, len(out)), MIN_SECRET_LENGTH - 1, -1):
            if out.endswith(s[:k]):
                out = out[:-k] + REDACTED
                break
    return out + "…" if cut else out
