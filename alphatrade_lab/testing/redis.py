"""A real ``redis-server`` on 127.0.0.1 for tests and benchmarks: :class:`LocalRedis`.

It runs the installed binary (``redis-server`` on ``PATH``, or ``/usr/bin/redis-server``) on
a free port of the loopback, in a temporary folder, without persistence (``--save ''
--appendonly no``): nothing outlives it. :meth:`LocalRedis.stop` and
:meth:`LocalRedis.start` take it down and bring it back on the same port (the data is
gone: a restarted Redis is empty), for tests of a Redis that goes away.

>>> with LocalRedis(password="s3cret-Pa55") as srv:   # needs redis-server installed
...     print(srv.ping(), srv)
True LocalRedis(redis://:[REDACTED]@127.0.0.1:..., running)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from alphatrade_lab.redact import REDACTED, register_secret

__all__ = ["LocalRedis", "find_redis_server"]

_FALLBACK = "/usr/bin/redis-server"


def find_redis_server() -> str:
    """The ``redis-server`` binary: on ``PATH``, else ``/usr/bin/redis-server``;
    ``FileNotFoundError`` naming both places when there is none.

    >>> find_redis_server().endswith("redis-server")   # needs redis-server installed
    True
    """
    found = shutil.which("redis-server")
    if found:
        return found
    if os.access(_FALLBACK, os.X_OK):
        return _FALLBACK
    raise FileNotFoundError("redis-server was not found on PATH nor at /usr/bin/redis-server; "
                            "install it (apt-get install redis-server)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRedis:
    """A ``redis-server`` process on 127.0.0.1 (a context manager: started on enter,
    stopped on exit).

    Parameters
    ----------
    password
        Started with ``--requirepass`` when given: :attr:`url` carries it
        (``redis://:<password>@127.0.0.1:<port>/0``), its repr does not.
    binary
        The server to run (default: :func:`find_redis_server`).
    timeout
        Seconds to wait for the server to answer ``PING`` at start.
    """

    def __init__(self, password: str | None = None, *, binary: str | None = None,
                 timeout: float = 10.0):
        self.binary = binary or find_redis_server()
        self.password = password
        if password:
            register_secret(password)
        self.timeout = float(timeout)
        self.port = _free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:<port>/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def __repr__(self) -> str:
        auth = f":{REDACTED}@" if self.password else ""
        state = "running" if self.running else "stopped"
        return f"LocalRedis(redis://{auth}127.0.0.1:{self.port}/0, {state})"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> LocalRedis:
        """Start the server (again, on the same port) and wait until it answers PING."""
        if self.running:
            return self
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="atl-redis-")
        folder = Path(self._tmp.name)
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(folder), "--daemonize", "no",
                "--logfile", str(folder / "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (folder / "redis.log").read_text(errors="replace")[-2000:] \
                    if (folder / "redis.log").exists() else ""
                self.stop()
                raise RuntimeError(f"redis-server ({self.binary}) did not answer PING on "
                                   f"127.0.0.1:{self.port} within {self.timeout:g} s; its "
                                   f"log ends: {log!r}")
            time.sleep(0.02)
        return self

    def ping(self) -> bool:
        """Whether the server answers ``PING`` (with ``AUTH`` first when it has a password)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                expect = b""
                if self.password:
                    s.sendall(_command("AUTH", self.password))
                    expect += b"+OK\r\n"
                s.sendall(_command("PING"))
                expect += b"+PONG\r\n"
                got = b""
                while len(got) < len(expect):
                    chunk = s.recv(64)
                    if not chunk:
                        break
                    got += chunk
                return got == expect
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGTERM, or SIGKILL with ``kill``); the folder is kept until
        :meth:`close`."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def close(self) -> None:
        """Stop the server and remove its folder."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _command(*parts: str) -> bytes:
    """A command in the Redis protocol (RESP): an array of bulk strings."""
    out = [f"*{len(parts)}\r\n".encode()]
    for p in parts:
        b = p.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)
