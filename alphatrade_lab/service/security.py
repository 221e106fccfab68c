"""Who may call the service: bound to 127.0.0.1 with no token by default; anywhere else
only with ``ALPHATRADE_API_TOKEN``, checked on REST (``Authorization: Bearer <token>``) and on
the WebSocket (the same header, or ``?token=`` for browsers, which cannot set headers on a
WebSocket). The comparison takes constant time; the token never appears in a response."""

from __future__ import annotations

import hmac
import logging
import os
import re
from typing import Any

from alphatrade_lab.redact import redact, register_secret

__all__ = ["LOOPBACK", "TOKEN_ENV", "RedactingFilter", "check_token", "token_for_host"]

TOKEN_ENV = "ALPHATRADE_API_TOKEN"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def token_for_host(host: str, token: str | None = None) -> str | None:
    """The token a service bound to ``host`` requires: ``token`` or the environment's; a
    host other than the loopback without one is refused (``ValueError``)."""
    token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
    if host not in LOOPBACK and not token:
        raise ValueError(f"binding to {host!r} needs a token: set {TOKEN_ENV} (the service is "
                         "read by anyone who can reach the port)")
    return token


def check_token(expected: str | None, headers: Any, query: Any = None) -> bool:
    """True when no token is required, or the request carries it (a bearer header, or
    ``token`` in the query string)."""
    if not expected:
        return True
    given = ""
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    elif query is not None:
        given = query.get("token") or ""
    return hmac.compare_digest(given.encode(), expected.encode())


class RedactingFilter(logging.Filter):
    """Rewrites log records without the token and ``token=`` query values: uvicorn's access
    log prints request paths with their query string (``/ws?token=...``)."""

    _QUERY = re.compile(r"([?&]token=)[^&\s\"']*")

    def __init__(self, token: str | None = None):
        super().__init__()
        register_secret(token)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = redact(self._QUERY.sub(r"\1[REDACTED]", text))
        if clean != text:
            record.msg, record.args = clean, ()
        return True
