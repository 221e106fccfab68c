"""Opening DuckDB files that may come from anyone, and checking SQL that may come from anyone.

A DuckDB file stores SQL: views and macros run when a table is read. A hostile file can
define ``bars`` as ``SELECT content FROM read_blob('/proc/self/environ')``, or read any
local file, write files with ``COPY``, attach other databases, install and load
extensions, or scan the caller's Python variables (pandas replacement scans). Every
connection made here therefore runs with

* ``enable_external_access = false``: no file, directory, network, extension or Python
  object access from SQL (explicitly registered Arrow tables still work);
* ``autoload_known_extensions``, ``autoinstall_known_extensions`` and
  ``allow_community_extensions`` off, ``allow_unsigned_extensions`` off;
* ``lock_configuration = true`` once the session is set up (``TimeZone = 'UTC'``), so SQL
  cannot switch any of this back on (DuckDB also refuses to re-enable external access
  while a database is running).

The file lock and DuckDB's per-process instance cache still apply: when this process
already has the file open through a connection with another configuration (a plain
``duckdb.connect``), :func:`connect` raises :class:`ConfigConflictError` rather than
reuse that connection's unrestricted database.

>>> con = connect(":memory:")
>>> con.execute("SELECT current_setting('enable_external_access')").fetchone()
(False,)
>>> quote_identifier('we"ird')
'"we""ird"'
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from alphatrade_lab.errors import AlphaTradeError, LockTimeout

__all__ = ["SAFE_CONFIG", "ConfigConflictError", "LockTimeout", "backoff", "check_select",
           "connect", "file_lock", "quote_identifier"]

#: Connection settings applied when the database is opened (they cannot change later).
SAFE_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
}

#: Query-tree node types a read statement may contain; anything else (``DELETE_QUERY_NODE``
#: in a ``WITH`` clause, ...) changes data.
_READ_NODES = {"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"}


# Not in alphatrade_lab.errors: its DuckDB base would make that module load DuckDB.
class ConfigConflictError(AlphaTradeError, duckdb.ConnectionException):
    """This process already has the file open through a connection with other settings."""


def backoff(deadline: float, delay: float) -> float | None:
    """One wait of a lock retry loop: sleep about ``delay`` s (jittered, never past
    ``deadline``, a ``time.monotonic()`` value) and return the next, longer delay (at most
    25 ms, so a freed lock is taken quickly); ``None``, without sleeping, once the deadline
    has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    time.sleep(min(left, delay * (0.5 + random.random())))
    return min(delay * 1.5, 0.025)


@contextmanager
def file_lock(path: str | Path, *, shared: bool, timeout: float,
              create: bool = True) -> Iterator[bool]:
    """Hold ``<path>.lock`` (``flock``: shared or exclusive) for the ``with`` block.

    The lab's processes hold it from before ``duckdb.connect`` until after ``close``:
    DuckDB reads a file's headers *before* it takes its own lock and does not read them
    again once it has it, so a process delayed between the two (a loaded machine) while
    another process commits and closes would open the file on stale headers, and its own
    checkpoint would drop the other's committed transaction.

    Parameters
    ----------
    path
        The database file; the lock file sits beside it.
    shared
        Shared (readers) or exclusive (writers).
    timeout
        Seconds to retry (jittered backoff, 5 to 25 ms) before :class:`LockTimeout`.
    create
        Create the lock file when missing. Without it, or when it cannot be created or
        opened (a read-only folder) and ``shared`` is true, the block runs unlocked and
        the context value is ``False``.

    Raises
    ------
    LockTimeout
        The lock was not free within ``timeout``.
    OSError
        An exclusive lock file cannot be created or opened.
    """
    lock_path = f"{path}.lock"
    try:
        if not create:
            raise FileNotFoundError(lock_path)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        try:  # an existing lock file works read-only too
            fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            if not shared:
                raise
            yield False
            return
    try:
        deadline = time.monotonic() + timeout
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                step = backoff(deadline, delay)
                if step is None:
                    raise LockTimeout(f"{lock_path} was held by another process for more "
                                      f"than {timeout:g} s") from None
                delay = step
        yield True
    finally:
        os.close(fd)  # releases the flock


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (embedded quotes doubled)."""
    return '"' + str(name).replace('"', '""') + '"'


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> Any:
    """The value of a query that returns one row of one column (a setting, a function)."""
    row = con.execute(sql, params).fetchone()
    if row is None:
        raise RuntimeError(f"DuckDB returned no row for {sql!r}")
    return row[0]


def connect(path: str | Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open ``path`` (or ``":memory:"``) with external access and extensions disabled.

    The session's time zone is UTC and the configuration is locked before the connection
    is returned.

    Parameters
    ----------
    path
        The database file, or ``":memory:"`` for a new private in-memory database.
    read_only
        Open the file read-only (ignored for ``":memory:"``).

    Returns
    -------
    duckdb.DuckDBPyConnection

    Raises
    ------
    ConfigConflictError
        This process already holds the file through a connection with other settings.
    duckdb.Error
        DuckDB's own errors (file lock held by another process, not a DuckDB file, ...),
        for the caller to name in its own terms.
    """
    memory = str(path) == ":memory:"
    try:
        con = duckdb.connect(":memory:" if memory else str(path),
                             read_only=read_only and not memory, config=dict(SAFE_CONFIG))
    except duckdb.ConnectionException as exc:
        if "different configuration" in str(exc):
            raise ConfigConflictError(str(exc)) from None
        raise
    try:
        # A database instance shared with an earlier connection is already set up (and
        # locked); icu is statically linked, so LOAD reads nothing from disk.
        locked = _scalar(con, "SELECT current_setting('lock_configuration')")
        if not locked:
            con.execute("LOAD icu")
            con.execute("SET GLOBAL TimeZone = 'UTC'")
            con.execute("SET GLOBAL lock_configuration = true")
        elif _scalar(con, "SELECT current_setting('TimeZone')") != "UTC":
            raise ConfigConflictError(f"{path}: the open database is not set to UTC")
    except BaseException:
        con.close()
        raise
    return con


def _query_nodes(tree: Any) -> set[str]:
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            kind = node.get("type")
            if isinstance(kind, str) and kind.endswith("_NODE"):
                found.add(kind)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def check_select(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise ``ValueError`` unless ``sql`` is exactly one statement that only reads.

    The statement is judged by its parse tree, not its first keyword: it must be a
    ``SELECT`` (``EXPLAIN``, which can ``ANALYZE`` any statement, ``PRAGMA``, ``SET``,
    ``CALL``, ``ATTACH``, ``COPY``, DDL and DML are refused), and no part of it (a ``WITH``
    clause, a subquery) may be an ``INSERT``, ``UPDATE`` or ``DELETE``. Table functions
    that write are not visible in the tree: run the statement in a read-only transaction
    on a connection from :func:`connect` as well.
    """
    if not isinstance(sql, str):
        raise ValueError(f"query: expected SQL text, got {type(sql).__name__}")
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise ValueError(f"query: cannot parse the SQL ({exc})") from None
    if len(statements) != 1:
        raise ValueError(f"query: expected one SQL statement, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ValueError(f"query: only SELECT statements are allowed, got {kind.name}; "
                         "use the record_* methods to write")
    tree = json.loads(_scalar(con, "SELECT json_serialize_sql(?::VARCHAR)", [sql]))
    if tree.get("error"):
        raise ValueError(f"query: not a plain SELECT ({tree.get('error_message')})")
    writes = sorted(_query_nodes(tree) - _READ_NODES)
    if writes:
        raise ValueError("query: the SELECT contains a statement that changes data "
                         f"({', '.join(w.removesuffix('_QUERY_NODE') for w in writes)}); "
                         "only reads are allowed")
