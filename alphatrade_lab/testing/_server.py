"""The lifecycle the local fake servers share: a stdlib threading HTTP server on 127.0.0.1
(a free port by default) serving from a daemon thread, started and stopped by hand or as a
context manager. The state lives in the object, so a stopped server started again serves
the same state."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LocalHTTPServer", "QuietHandler", "QuietServer"]


class QuietServer(ThreadingHTTPServer):
    """Threads per request, a deep backlog (many concurrent clients; the default is 5), and
    no traceback for a client that hung up."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no Nagle delay (headers and body go in two writes: no 40 ms
    stalls), no request log."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def body_length(self, limit: int) -> int | None:
        """The request's ``Content-Length`` (0 without one), or None when it is not a
        number or over ``limit``: the body is then left unread, so the connection is
        marked for closing."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if 0 <= length <= limit:
            return length
        self.close_connection = True
        return None


class LocalHTTPServer:
    """Base of :class:`LocalReceiver`, :class:`LocalAlpaca` and :class:`LocalExchange`.

    Subclasses set ``server_class``, ``handler_class``, ``owner_attr`` (the attribute of
    the HTTP server through which handlers reach the object) and ``thread_name``, and call
    :meth:`_init_server` from ``__init__``.
    """

    server_class: type[ThreadingHTTPServer]
    handler_class: type[BaseHTTPRequestHandler]
    owner_attr: str
    thread_name: str

    def _init_server(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` while serving."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        host, port = self._server.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> Any:
        self._stopping.clear()
        self._server = self.server_class((self._host, self._port), self.handler_class)
        setattr(self._server, self.owner_attr, self)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True, name=self.thread_name).start()
        return self

    def stop(self) -> None:
        """Stop serving (requests still waiting on a delay are dropped); the state stays."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
