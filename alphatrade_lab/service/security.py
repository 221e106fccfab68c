"""Who may call the service: bound to 127.0.0.1 with no token by default; anywhere else
only with ``ALPHATRADE_API_TOKEN``, checked on REST (``Authorization: Bearer <token>``) and on
the WebSocket (the same header, or ``?token=`` for browsers, which cannot set headers on a
WebSocket). The comparison takes constant time; the token never appears in a response."""

from __future__ import annotations

import hmac
import os
from typing import Any

__all__ = ["TOKEN_ENV", "LOOPBACK", "check_token", "token_for_host"]

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
