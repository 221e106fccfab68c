"""A throwaway PostgreSQL server for tests, benchmarks and deployment checks.

:class:`LocalPostgres` runs ``initdb`` into a fresh temporary folder and ``pg_ctl start``
on 127.0.0.1 (a free port), with its unix socket in that folder, and removes everything on
:meth:`~LocalPostgres.stop`. The server binaries come from ``pg_config --bindir`` or
``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package keeps them off the
``PATH``). ``initdb`` and ``postgres`` refuse to run as root, so as root they run as the
``postgres`` system user (``runuser -u postgres --``; the folder is handed to that user).

The superuser (``postgres`` by default) logs in over TCP with a random password
(SCRAM-SHA-256); local socket connections are trusted. Durability is off (``fsync``,
``synchronous_commit``, ``full_page_writes``): a crashed test server is thrown away anyway.

>>> with LocalPostgres() as pg:  # doctest: +SKIP
...     store = LabStore(pg.create_database("lab"))
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import weakref
from pathlib import Path
from urllib.parse import quote

__all__ = ["LocalPostgres", "postgres_bindir"]

_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "64MB",
}


def postgres_bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, else the
    newest ``/usr/lib/postgresql/*/bin``.

    Raises
    ------
    FileNotFoundError
        No PostgreSQL server binaries are installed (Debian: ``apt-get install postgresql``).

    >>> (postgres_bindir() / "initdb").exists()  # doctest: +SKIP
    True
    """
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 timeout=30, check=True).stdout.strip()
            candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.name))

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                           key=version, reverse=True)]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found in "
                            "`pg_config --bindir` or /usr/lib/postgresql/*/bin; install "
                            "the postgresql package")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    """``cmd`` run as the ``postgres`` user when this process is root."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _run(cmd: list[str], what: str, timeout: float = 120) -> None:
    done = subprocess.run(_as_server_user(cmd), capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"LocalPostgres: {what} failed (exit {done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-2000:]}")


def _cleanup(bindir: Path, data: Path, root: Path) -> None:
    if (data / "postmaster.pid").exists():
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "stop", "-D", str(data),
                                        "-m", "immediate", "-w"]),
                       capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)


class LocalPostgres:
    """A PostgreSQL server in a temporary folder on 127.0.0.1, for as long as it runs.

    Parameters
    ----------
    user
        The superuser's name.
    password
        Its password (default: random). It appears in :attr:`url`, never in a repr.
    settings
        Extra ``postgresql.conf`` settings (values as PostgreSQL writes them, e.g.
        ``{"shared_preload_libraries": "'timescaledb'"}``).

    Use as a context manager, or :meth:`start` and :meth:`stop`. The server is stopped and
    its folder removed when the object is garbage-collected or the interpreter exits.

    Raises
    ------
    FileNotFoundError
        (on start) no server binaries are installed.
    RuntimeError
        (on start) ``initdb`` or ``pg_ctl start`` failed; the message has the server log.
    """

    def __init__(self, *, user: str = "postgres", password: str | None = None,
                 settings: dict[str, str] | None = None):
        self.user = user
        self.password = password if password is not None else secrets.token_urlsafe(16)
        self.settings = {**_SETTINGS, **(settings or {})}
        self.port: int | None = None
        self.root: Path | None = None
        self._finalizer: weakref.finalize | None = None

    def __repr__(self) -> str:
        where = f"127.0.0.1:{self.port}" if self.port else "not running"
        return f"LocalPostgres(user={self.user!r}, {where})"

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def data_dir(self) -> Path:
        """The cluster's data folder (its ``server.log`` is beside it)."""
        if self.root is None:
            raise RuntimeError("LocalPostgres is not running")
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        """The folder of the server's unix socket (``host=`` for a socket connection)."""
        if self.root is None:
            raise RuntimeError("LocalPostgres is not running")
        return self.root

    @property
    def url(self) -> str:
        """``postgresql://user:password@127.0.0.1:port/postgres`` (the superuser)."""
        return self.url_for("postgres")

    def url_for(self, database: str, user: str | None = None,
                password: str | None = None) -> str:
        """The URL of ``database`` on this server, as ``user`` (default: the superuser,
        with its password)."""
        if self.port is None:
            raise RuntimeError("LocalPostgres is not running")
        if user is None:
            user, password = self.user, self.password
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(database, safe='')}"

    def start(self) -> LocalPostgres:
        """Create the cluster and start the server (a no-op when running)."""
        if self.port is not None:
            return self
        bindir = postgres_bindir()
        root = Path(tempfile.mkdtemp(prefix="atl-pg-"))
        self._finalizer = weakref.finalize(self, _cleanup, bindir, root / "data", root)
        try:
            self._init_cluster(bindir, root)
            self.root = root
            log = root / "server.log"
            for attempt in range(5):  # another process may take the free port first
                port = _free_port()
                done = subprocess.run(_as_server_user(
                    [str(bindir / "pg_ctl"), "start", "-D", str(root / "data"), "-l",
                     str(log), "-w", "-t", "60", "-o", f"-p {port}"]),
                    capture_output=True, text=True, timeout=90)
                if done.returncode == 0:
                    self.port = port
                    return self
                text = log.read_text(errors="replace") if log.exists() else ""
                if "already in use" not in text or attempt == 4:
                    raise RuntimeError(f"LocalPostgres: pg_ctl start failed: "
                                       f"{done.stderr.strip()} {text[-2000:]}")
        except BaseException:
            self._finalizer()
            self.root = None
            raise
        raise AssertionError("unreachable")

    def _init_cluster(self, bindir: Path, root: Path) -> None:
        pwfile = root / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        _run([str(bindir / "initdb"), "-D", str(root / "data"), "-U", self.user,
              f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
              "-E", "UTF8", "--locale=C", "--no-sync"], "initdb")
        pwfile.unlink()
        conf = {**self.settings, "unix_socket_directories": f"'{root}'"}
        with open(root / "data" / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write("\n# LocalPostgres\n")
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())

    def create_database(self, name: str, owner: str | None = None) -> str:
        """Create database ``name`` (owned by ``owner``, default the superuser) with
        ``createdb`` over the socket; return its URL as the superuser."""
        if self.port is None:
            raise RuntimeError("LocalPostgres is not running")
        cmd = [str(postgres_bindir() / "createdb"), "-h", str(self.socket_dir), "-p",
               str(self.port), "-U", self.user]
        if owner:
            cmd += ["-O", owner]
        _run([*cmd, name], f"createdb {name}")
        return self.url_for(name)

    def pause(self) -> None:
        """Shut the server down and keep its data: a database that went away (clients'
        connections are closed); :meth:`resume` starts it again on the same port."""
        if self.port is None:
            raise RuntimeError("LocalPostgres is not running")
        _run([str(postgres_bindir() / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m",
              "fast", "-w"], "pg_ctl stop")

    def resume(self) -> None:
        """Start the server again after :meth:`pause`, on its port."""
        if self.port is None or self.root is None:
            raise RuntimeError("LocalPostgres is not running")
        _run([str(postgres_bindir() / "pg_ctl"), "start", "-D", str(self.data_dir), "-l",
              str(self.root / "server.log"), "-w", "-t", "60", "-o", f"-p {self.port}"],
             "pg_ctl start")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        if self._finalizer is not None and self._finalizer.alive:
            bindir = postgres_bindir()
            if self.root is not None and (self.data_dir / "postmaster.pid").exists():
                subprocess.run(_as_server_user(
                    [str(bindir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast",
                     "-w"]), capture_output=True, timeout=60)
            self._finalizer()
        self.port = None
        self.root = None
