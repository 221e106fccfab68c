"""A local HTTP receiver that impersonates Telegram, Discord and webhook endpoints.

For tests, benchmarks and notebooks: a :class:`http.server.ThreadingHTTPServer` on
127.0.0.1 (a free port) in a daemon thread records every request and answers with
scripted :class:`Reply` objects (status, body, headers, delay), or by default like the
real services: ``/bot<token>/sendMessage`` gets ``{"ok": true, ...}``, a
``/api/webhooks/...`` path gets 204, anything else 200 ``{"ok": true}``.

>>> import httpx
>>> with LocalReceiver() as rx:
...     rx.script("/hook", [Reply(500)])
...     codes = [httpx.post(rx.url + "/hook", json={"n": i}).status_code for i in range(2)]
>>> codes, [r.json["n"] for r in rx.requests("/hook")]
([500, 200], [0, 1])
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from alphatrade_lab.testing._server import LocalHTTPServer, QuietHandler, QuietServer

__all__ = ["LocalReceiver", "Received", "Reply"]


@dataclass
class Reply:
    """One scripted answer; ``body`` may be a dict/list (sent as JSON), str or bytes;
    ``delay`` seconds pass before answering (longer than a client's timeout: a hang)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    """A request as it arrived: monotonic time, method, path, headers and body."""

    t: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class _Handler(QuietHandler):
    server: QuietServer

    def _handle(self) -> None:
        rx: LocalReceiver = self.server.receiver  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = rx._record_and_reply(Received(time.monotonic(), self.command, self.path,
                                              dict(self.headers), body))
        if reply.delay and rx._stopping.wait(reply.delay):
            return
        payload = reply.body
        if isinstance(payload, dict | list):
            data = json.dumps(payload).encode()
            ctype = "application/json"
        elif isinstance(payload, str):
            data, ctype = payload.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = payload or b"", "application/octet-stream"
        self.send_response(reply.status)
        if data:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if data and reply.status not in (204, 304):
            self.wfile.write(data)

    do_POST = do_GET = do_PUT = _handle


class LocalReceiver(LocalHTTPServer):
    """Start with ``with LocalReceiver() as rx:`` (or :meth:`start`); ``rx.url`` is its
    base URL."""

    server_class = QuietServer
    handler_class = _Handler
    owner_attr = "receiver"
    thread_name = "alerts-receiver"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._init_server(host, port)
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._scripts: dict[str, deque[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self._count = 0

    # ----------------------------------------------------------- scripting
    def script(self, prefix: str, replies: list[Reply]) -> None:
        """Answer the next requests whose path starts with ``prefix`` with ``replies``,
        in order (then the default)."""
        with self._lock:
            self._scripts.setdefault(prefix, deque()).extend(replies)

    def default(self, prefix: str, reply: Reply) -> None:
        """Answer every (unscripted) request under ``prefix`` with ``reply``."""
        with self._lock:
            self._defaults[prefix] = reply

    def _record_and_reply(self, req: Received) -> Reply:
        with self._lock:
            self._received.append(req)
            self._count += 1
            for prefix in sorted(self._scripts, key=len, reverse=True):
                if req.path.startswith(prefix) and self._scripts[prefix]:
                    return self._scripts[prefix].popleft()
            for prefix in sorted(self._defaults, key=len, reverse=True):
                if req.path.startswith(prefix):
                    return self._defaults[prefix]
            if "/bot" in req.path and req.path.endswith("/sendMessage"):
                return Reply(200, {"ok": True, "result": {"message_id": self._count}})
            if "/api/webhooks/" in req.path:
                return Reply(204)
            return Reply(200, {"ok": True})

    # ----------------------------------------------------------- inspection
    def requests(self, prefix: str = "") -> list[Received]:
        """Requests received so far whose path starts with ``prefix``."""
        with self._lock:
            return [r for r in self._received if r.path.startswith(prefix)]

    def wait_for(self, n: int, prefix: str = "", timeout: float = 10.0) -> list[Received]:
        """Wait until ``n`` requests under ``prefix`` arrived (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.requests(prefix)
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.01)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
