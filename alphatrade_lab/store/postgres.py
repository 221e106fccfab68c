"""The lab store on PostgreSQL (and TimescaleDB): ``LabStore("postgresql://...")``.

``LabStore(url)`` with a ``postgresql://`` or ``postgres://`` URL returns a
:class:`PostgresLabStore`: the same tables, writers, readers, validation and migrations as
the DuckDB file, in the database the URL names (its default schema). It needs psycopg 3
(the ``deploy`` extra); the rest of the library imports without it.

Connections, transactions, processes
------------------------------------
The store keeps one connection per process (opened on first use, reopened after a fork
or when the server dropped it; threads take turns on it). Every write is one transaction:
the run id checks, then each table's rows through ``COPY ... FROM STDIN`` (CSV written by
Arrow from the validated rows), then ``COMMIT``; an error or Ctrl-C rolls it back, and a
killed writer's transaction never commits. Any number of processes may write at once:
PostgreSQL's transactions keep their rows apart (the tests run two writer processes and
count every row). ``lock_timeout`` is PostgreSQL's ``lock_timeout`` (waiting for a row or
table lock another transaction holds; 0 fails at once): it raises
:class:`~alphatrade_lab.errors.StoreLockedError`. ``read_only=True`` makes every
transaction of the session read-only.

The URL's password is never shown: ``repr``, ``store.path`` and every error name the
database as ``postgresql://host:port/dbname``. Wrong credentials, an unknown
database or an unreachable server raise one :class:`~alphatrade_lab.errors.StoreError` at
``LabStore(...)``.

Schema
------
A new database is created at the current schema version in one transaction: the tables
of :mod:`alphatrade_lab.store.schema` with ``JSONB`` for JSON, and indexes on ``run_id``,
``symbol`` and the time column each reader filters on. ``timescale``:

- ``"auto"`` (default): when the ``timescaledb`` extension is installed in the database
  (``CREATE EXTENSION timescaledb``, done by its owner), the bar-time tables ``trades``
  (``entry_time``), ``signals``, ``fills``, ``equity`` and ``positions`` (``timestamp``)
  become hypertables; otherwise plain tables.
- ``True``: the same, installing the extension if the server offers it
  (``pg_available_extensions``); a server without it raises StoreError at start.
- ``False``: plain tables.

The hypertables have no unique index (TimescaleDB requires the time column in every
unique index); ``orders``, ``live_state`` and ``news``, whose primary keys lack a time,
stay plain tables (``news`` is keyed on the article's URL alone, so that an article whose
time a later fetch corrects is still one row; ``(url_key, published_at)`` would store it
twice), with a B-tree index on ``published_at``. It only matters when the store is
created. TimescaleDB is not packaged by Debian, so the tests cannot run this path; it is
written from TimescaleDB's documentation.

Untrusted SQL
-------------
:meth:`LabStore.query` runs one statement (its text starting with ``SELECT``, ``WITH`` or
``(``, without ``INSERT``/``UPDATE``/``DELETE``/``MERGE``/``INTO``), sent through the
extended protocol (which refuses several statements), on a connection of its own that
is closed afterwards, inside ``BEGIN READ ONLY`` with ``statement_timeout`` =
``query_timeout`` seconds, always rolled back. What a statement may *read* is what the
store's role may read: **the role must not be a superuser** (nor a member of
``pg_read_server_files``, ``pg_execute_server_program`` or ``pg_signal_backend``), or
``pg_read_file`` and ``lo_import`` can read the server's files; the tests check that an
ordinary role gets "permission denied". Give the store its own role owning its database.

Placeholders: as in DuckDB, ``?`` or ``$1`` with a list and ``$name`` with a dict
(:func:`alphatrade_lab.store.pg_sql.to_psycopg`; ``?`` is always a placeholder, so write
jsonb's ``?`` operator as ``jsonb_exists``). Results have the DuckDB store's dtypes: UTC
timestamps, ``datetime64`` dates, JSON as text (``json.loads`` it; PostgreSQL's ``JSONB``
keeps one copy of a repeated key and orders keys by length, then bytes), ``numeric`` as
float64.

>>> store = LabStore("postgresql://lab:pw@127.0.0.1:5432/lab")  # doctest: +SKIP
>>> store  # doctest: +SKIP
LabStore('postgresql://127.0.0.1:5432/lab')
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from alphatrade_lab.errors import DataError, StoreError, StoreLockedError, StoreUnavailableError
from alphatrade_lab.redact import Redactor, register_secret
from alphatrade_lab.store.lab_store import LabStore, _to_pandas, check_timeout
from alphatrade_lab.store.migrations import SchemaVersionError, current_version, migrate
from alphatrade_lab.store.pg_sql import check_select, to_psycopg
from alphatrade_lab.store.schema import SCHEMA_VERSION, TABLES, create_table_sql

__all__ = ["HYPERTABLES", "PostgresLabStore", "display_url", "schema_sql"]

# libpq's messages for a server that is not there (now): refused, unreachable, timed out,
# gone mid-session, shutting down or starting up, a host name not resolved (yet)
_UNREACHABLE = ("connection refused", "could not connect", "timeout expired", "timed out",
                "server closed the connection", "connection is closed", "terminating",
                "shutting down", "starting up", "no route to host", "network is unreachable",
                "could not translate host name", "no such file or directory",
                "connection reset", "broken pipe", "consuming input failed")

#: The bar-time tables that become TimescaleDB hypertables, and their time column.
HYPERTABLES = {"trades": "entry_time", "signals": "timestamp", "fills": "timestamp",
               "equity": "timestamp", "positions": "timestamp"}
# the time column each other reader filters or sorts on (indexed)
_TIMES = {**HYPERTABLES, "alerts": "ts", "drift_stats": "window_end",
          "feed_events": "timestamp", "news": "published_at"}
# the key of the advisory lock held while a store creates or migrates the schema
_MIGRATION_LOCK = 0x61746C5F7363  # "atl_sc"
# Arrow types of PostgreSQL type OIDs (results): the DuckDB store's dtypes
_ARROW_OF = {16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(),
             700: pa.float32(), 701: pa.float64(), 1700: pa.float64(), 1082: pa.date32(),
             1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"), 25: pa.string(),
             1043: pa.string(), 1042: pa.string(), 19: pa.string(), 114: pa.string(),
             3802: pa.string()}
_CSV = pacsv.WriteOptions(include_header=False, batch_size=65536)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ImportError("LabStore('postgresql://...') needs psycopg 3: pip install "
                          "'alphatrade_lab[deploy]' (or psycopg[binary])") from None
    return psycopg


def display_url(url: str) -> str:
    """``url`` as ``postgresql://host:port/dbname``: what identifies the database, without
    the user, the password or other options (the library's error messages redact URL
    user-info anyway).

    >>> display_url("postgres://bob:s3cret@db.example:5433/lab?sslmode=require")
    'postgresql://db.example:5433/lab'
    """
    info = _psycopg().conninfo.conninfo_to_dict(url)
    host = info.get("host") or ""
    host = quote(host, safe="") if host.startswith("/") else host
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{host}{port}/{quote(info.get('dbname') or '', safe='')}"


def schema_sql(hypertables: bool = False, timescale_version: str = "") -> list[str]:
    """The statements that create a fresh store: every table (JSON as ``JSONB``), the
    indexes, and with ``hypertables`` the TimescaleDB hypertables (``create_hypertable``
    with ``by_range`` from TimescaleDB 2.13, the older call before).

    >>> sql = schema_sql()
    >>> sql[0].splitlines()[0], sum(s.startswith("CREATE INDEX") for s in sql) > 10
    ('CREATE TABLE runs (', True)
    >>> schema_sql(True, "2.17.2")[-1]
    "SELECT create_hypertable('positions', by_range('timestamp'))"
    """
    out = [create_table_sql(t, "postgres") for t in TABLES]
    for table, cols in TABLES.items():
        names = {c.name for c in cols}
        keyed = table in ("runs", "orders", "live_state")  # run_id leads their primary key
        indexed: list[str] = [c for c in ("run_id", "symbol") if c in names and not (
            c == "run_id" and keyed)]
        if table in _TIMES and not (hypertables and table in HYPERTABLES):
            indexed.append(_TIMES[table])  # a hypertable has TimescaleDB's time index
        out += [f'CREATE INDEX {table}_{c}_idx ON {table} ("{c}")' for c in indexed]
    if hypertables:
        new = tuple(int(p) for p in timescale_version.split(".")[:2] if p.isdigit()) >= (2, 13)
        out += [f"SELECT create_hypertable('{t}', by_range('{c}'))" if new
                else f"SELECT create_hypertable('{t}', '{c}')" for t, c in HYPERTABLES.items()]
    return out


def _register_text_json(con: Any) -> None:
    """Load json/jsonb as their text (the DuckDB store's readers return JSON as text)."""
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    class JsonText(Loader):
        def load(self, data: Any) -> str:
            return bytes(data).decode()

    class JsonBinaryText(JsonText):
        format = Format.BINARY

    class JsonbBinaryText(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> str:
            return bytes(data[1:]).decode()  # a version byte, then the text

    for name in ("json", "jsonb"):
        con.adapters.register_loader(name, JsonText)
    con.adapters.register_loader("json", JsonBinaryText)
    con.adapters.register_loader("jsonb", JsonbBinaryText)


def _column(values: Sequence[Any], oid: int) -> pa.Array:
    kind = _ARROW_OF.get(oid)
    if kind is not None:
        if oid == 1700:
            values = [None if v is None else float(v) for v in values]
        return pa.array(values, type=kind)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def _frame(cursor: Any) -> pd.DataFrame:
    """A result set as the DuckDB store returns it (through Arrow)."""
    if cursor.description is None:
        raise DataError("query: the statement returned no result set")
    rows = cursor.fetchall()
    names = [d.name for d in cursor.description]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = [_column(col, d.type_code) for col, d in zip(columns, cursor.description,
                                                          strict=True)]
    return _to_pandas(pa.Table.from_arrays(arrays, names=names))


class _Connection:
    """A psycopg connection with the DuckDB store's ``execute(sql, params)`` (``?``,
    ``$1`` and ``$name`` placeholders), so the shared code runs on both backends."""

    def __init__(self, con: Any):
        self.raw = con

    def execute(self, sql: str, params: Any = None) -> Any:
        text, values = to_psycopg(sql, params)
        return self.raw.cursor(binary=True).execute(text, values)


class PostgresLabStore(LabStore):
    """:class:`LabStore` on a PostgreSQL database (see the module's notes).

    Parameters
    ----------
    path
        ``postgresql://user:password@host:port/dbname`` (libpq's URL; options such as
        ``?sslmode=require`` pass through). A database without the store's tables gets
        them; one at an older schema version is migrated.
    read_only
        Refuse writes; every transaction of the session is read-only.
    lock_timeout
        Seconds to wait for a lock another transaction holds (0: fail at once), then
        raise :class:`~alphatrade_lab.errors.StoreLockedError`.
    timescale
        ``"auto"``, ``True`` or ``False``: hypertables for the bar-time tables when the
        store is created (see the module's notes).
    query_timeout
        Seconds :meth:`query` may run (PostgreSQL's ``statement_timeout``; 0: no limit).

    Raises
    ------
    StoreError
        The server cannot be reached, refuses the credentials, has no such database,
        cannot create the schema, or ``timescale=True`` on a server without TimescaleDB.
        The message names the database, never the password.
    ImportError
        psycopg is not installed.
    """

    _json_type = "JSONB"

    @property
    def dialect(self) -> str:
        """``"postgres"``: :meth:`query` speaks PostgreSQL's SQL."""
        return "postgres"

    def __init__(self, path: str, *, read_only: bool = False, lock_timeout: float = 30.0,
                 timescale: bool | str = "auto", query_timeout: float = 30.0):
        self._url = str(path)
        self._pg: Any = None
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self.memory = False
        self.read_only = read_only
        self._released = -1.0
        self._con = None
        try:
            self.path = display_url(self._url)
            password = _psycopg().conninfo.conninfo_to_dict(self._url).get("password")
        except _psycopg().ProgrammingError as exc:  # an unparseable URL
            raise StoreError(f"LabStore: not a valid PostgreSQL URL "
                             f"({Redactor().text(str(exc))})") from None
        if password:
            register_secret(password)
        self._password = password or ""
        self.lock_timeout = check_timeout(lock_timeout, "lock_timeout", self.path)
        self.query_timeout = check_timeout(query_timeout, "query_timeout", self.path)
        if timescale not in (True, False, "auto"):
            raise ValueError(f"LabStore({self.path!r}): timescale must be True, False or "
                             f"'auto', got {timescale!r}")
        with self._connect(read_only) as con:
            if read_only:
                self.migrated_from = self._check_version(con)
            else:
                self.migrated_from = self._set_up(con, timescale)

    def __repr__(self) -> str:
        mode = ", read_only=True" if self.read_only else ""
        return f"LabStore({self.path!r}{mode})"

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            self.close()

    def close(self) -> None:
        """Close the store's connection (the next call opens a new one)."""
        with self._lock:
            if self._pg is not None and self._pid == os.getpid():
                self._pg.close()
            self._pg = None

    # ------------------------------------------------------------ set-up
    def _error(self, exc: Exception, what: str) -> StoreError | StoreUnavailableError:
        """The store's error for a psycopg one: :class:`StoreUnavailableError` when the
        server cannot be reached or dropped the connection (SQLSTATE class 08 "connection
        exception" or 57P "operator intervention": shutting down, starting up; libpq's
        connection failures carry no SQLSTATE and are told by their message), so that
        the engine's spool keeps the write; :class:`StoreError` for anything else, wrong
        credentials and a missing database included (one clear error at start)."""
        text = str(exc).strip()
        if self._password:
            text = text.replace(self._password, "[REDACTED]")
        message = f"{self.path}: {what} ({type(exc).__name__}: {Redactor().text(text)})"
        state = getattr(exc, "sqlstate", None) or ""
        if isinstance(exc, _psycopg().OperationalError) and (
                state.startswith(("08", "57P"))
                or (not state and any(m in text.lower() for m in _UNREACHABLE))):
            return StoreUnavailableError(message)
        return StoreError(message)

    def _check_version(self, con: _Connection) -> int:
        version = current_version(con)
        if version == 0:
            raise StoreError(f"{self.path}: no lab store in this database (read_only=True)")
        if version != SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path} is at schema version {version}, this code reads "
                f"{SCHEMA_VERSION}; open it once without read_only to migrate it"
                if version < SCHEMA_VERSION else
                f"{self.path} is at schema version {version}, newer than this code's "
                f"{SCHEMA_VERSION}; upgrade alphatrade_lab")
        return version

    def _timescale(self, con: _Connection, wanted: bool | str) -> tuple[bool, list[str]]:
        """Whether to make hypertables, and the statements that install the extension."""
        if wanted is False:
            return False, []
        installed = con.execute("SELECT extversion FROM pg_extension "
                                "WHERE extname = 'timescaledb'").fetchall()
        if installed:
            return True, [installed[0][0]]
        if wanted == "auto":
            return False, []
        offered = con.execute("SELECT default_version FROM pg_available_extensions "
                              "WHERE name = 'timescaledb'").fetchall()
        if not offered:
            raise StoreError(f"{self.path}: timescale=True but this server has no "
                             "timescaledb extension (pg_available_extensions); install "
                             "TimescaleDB or pass timescale=False")
        return True, [offered[0][0], "CREATE EXTENSION IF NOT EXISTS timescaledb"]

    def _set_up(self, con: _Connection, timescale: bool | str) -> int:
        psycopg = _psycopg()
        con.execute("SELECT pg_advisory_lock(?)", [_MIGRATION_LOCK]).fetchall()
        try:
            hyper, extra = self._timescale(con, timescale)
            create = [*extra[1:], *schema_sql(hyper, extra[0] if extra else "")]
            return migrate(con, create=create)[0]
        except psycopg.Error as exc:
            raise self._error(exc, "cannot set up the lab store schema") from None
        finally:
            if not (self._pg.closed or self._pg.broken):
                con.execute("SELECT pg_advisory_unlock(?)", [_MIGRATION_LOCK]).fetchall()

    # ------------------------------------------------------------ connections
    def _session(self, read_only: bool) -> Any:
        psycopg = _psycopg()
        info = psycopg.conninfo.conninfo_to_dict(self._url)
        extra = {k: v for k, v in (("connect_timeout", 10),
                                   ("application_name", "alphatrade_lab"))
                 if k not in info}
        try:
            raw = psycopg.connect(self._url, autocommit=True, **extra)
        except psycopg.Error as exc:
            raise self._error(exc, "cannot connect to PostgreSQL") from None
        try:
            _register_text_json(raw)
            # lock_timeout 0 means "no limit" to PostgreSQL: the store's 0 is "at once"
            wait = f"{max(1, round(self.lock_timeout * 1000))}ms"
            raw.execute("SELECT set_config('TimeZone', 'UTC', false), "
                        "set_config('lock_timeout', %s, false), "
                        "set_config('default_transaction_read_only', %s, false)",
                        [wait, "on" if read_only else "off"])
        except psycopg.Error as exc:
            raw.close()
            raise self._error(exc, "cannot set up the connection") from None
        return raw

    @contextmanager
    def _connect(self, read_only: bool) -> Iterator[Any]:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's socket is not ours
                self._pg, self._pid = None, os.getpid()
            if self._pg is None or self._pg.closed or self._pg.broken:
                self._pg = self._session(self.read_only)
            yield _Connection(self._pg)

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        if self.read_only:
            raise PermissionError(f"{self}: the store was opened read-only")
        psycopg = _psycopg()
        with self._connect(read_only=False) as con:
            try:
                con.execute("BEGIN")
                try:
                    yield con
                except BaseException:
                    try:
                        con.execute("ROLLBACK")
                    except psycopg.Error:
                        self.close()  # a connection in an unknown state is not reused
                    raise
                con.execute("COMMIT")
            except psycopg.errors.LockNotAvailable as exc:
                raise StoreLockedError(
                    f"{self.path}: another transaction held a lock for more than "
                    f"lock_timeout={self.lock_timeout:g} s; nothing was written "
                    f"({Redactor().text(str(exc).strip())})") from None
            except psycopg.errors.IntegrityError as exc:
                raise DataError(f"{self.path}: the write broke a table constraint and "
                                f"nothing was written ({Redactor().text(str(exc))})"
                                ) from None
            except psycopg.errors.DataError as exc:  # e.g. a NUL character in a text
                raise DataError(f"{self.path}: PostgreSQL refused a value and nothing was "
                                f"written ({type(exc).__name__}: "
                                f"{Redactor().text(str(exc))})") from None
            except psycopg.Error as exc:
                raise self._error(exc, "the write failed and nothing was written") from None

    def _append(self, con: Any, table: str, rows: pa.Table) -> None:
        """``COPY`` Arrow rows into ``table`` as CSV (quoted text; NULL is an unquoted
        empty field)."""
        for i, field in enumerate(rows.schema):
            # UTC times as naive text, read in the session's TimeZone (UTC, set on every
            # connection): Arrow formats them 20x faster than with their zone
            if pa.types.is_timestamp(field.type) and field.type.tz is not None:
                rows = rows.set_column(i, field.name, pc.cast(
                    rows.column(i), pa.timestamp(field.type.unit)))
        cols = ", ".join(f'"{c}"' for c in rows.column_names)
        with con.raw.cursor().copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT csv)") as copy:
            for batch in rows.to_batches(max_chunksize=65536):
                sink = pa.BufferOutputStream()
                pacsv.write_csv(batch, sink, _CSV)
                copy.write(sink.getvalue())

    # ------------------------------------------------------------ reads
    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
              ) -> pd.DataFrame:
        """Run one read-only SQL statement with bound parameters; return a DataFrame.

        ``?`` or ``$1`` placeholders take a list, ``$name`` a dict (a ``?`` outside a
        literal is always a placeholder: write jsonb's ``?`` as ``jsonb_exists``). The text
        must be one statement starting with ``SELECT``, ``WITH`` or ``(`` without
        ``INSERT``, ``UPDATE``, ``DELETE``, ``MERGE`` or ``INTO`` (else ``ValueError``). It
        runs on a session of its own in a ``READ ONLY`` transaction that is rolled back,
        for at most ``query_timeout`` seconds; what it may read is what the store's role
        may read (never a superuser: see the module's notes). A failing or timed-out
        statement raises :class:`~alphatrade_lab.errors.DataError`.
        """
        return self._read(sql, params, check=True)

    def _read(self, sql: str, params: Any = None, *, check: bool = False) -> pd.DataFrame:
        psycopg = _psycopg()
        if check:
            check_select(sql)
        try:
            text, values = to_psycopg(sql, params)
        except ValueError as exc:
            raise DataError(f"query on {self.path} failed ({exc})") from None
        if not check:
            with self._connect(read_only=True) as con:
                try:
                    return _frame(con.raw.cursor(binary=True).execute(text, values))
                except psycopg.Error as exc:
                    down = self._error(exc, "the read failed")
                    if isinstance(down, StoreUnavailableError):
                        raise down from None
                    raise DataError(f"read from {self.path} failed ({type(exc).__name__}: "
                                    f"{Redactor().text(str(exc).strip())})") from None
        # untrusted SQL: a connection of its own, a read-only transaction rolled back
        raw = self._session(read_only=True)
        try:
            raw.execute("BEGIN READ ONLY")
            raw.execute("SELECT set_config('statement_timeout', %s, true)",
                        [f"{round(self.query_timeout * 1000)}ms"])
            return _frame(raw.cursor(binary=True).execute(text, values))
        except psycopg.errors.QueryCanceled as exc:
            raise DataError(f"query on {self.path} ran longer than query_timeout="
                            f"{self.query_timeout:g} s ({str(exc).strip()})") from None
        except psycopg.Error as exc:
            raise DataError(f"query on {self.path} failed ({type(exc).__name__}: "
                            f"{Redactor().text(str(exc).strip())})") from None
        finally:
            raw.close()  # the transaction dies with the session

