"""``LabStore``: the lab's DuckDB file of runs, trades, signals, performance, drift, alerts,
and the live engine's orders, fills, equity, positions, feed events and state
(:mod:`alphatrade_lab.store.live`: ``record_live`` and its readers), and the news cache
(:mod:`alphatrade_lab.store.news`: ``record_news``, ``news``, ``news_watermark``).

``LabStore("postgresql://...")`` is the same store on PostgreSQL
(:class:`~alphatrade_lab.store.postgres.PostgresLabStore`, which replaces only the
connection, insert, read and DDL layer below); what follows is about DuckDB.

Concurrency model
-----------------
DuckDB lets **one process** write a database file; other processes cannot even open it
read-only while that process has it open. So a file store never keeps a connection
open: every write opens a connection, runs one transaction (``BEGIN ... COMMIT``) and
closes it; every read opens a read-only connection and closes it. When another process
holds the file, ``duckdb.connect`` fails on the file lock and the store retries (jittered
backoff, 5 to 25 ms between attempts) for up to ``lock_timeout`` seconds, then raises
:class:`StoreLockedError` (naming the file and DuckDB's message with the holder's PID).
Two writer processes therefore interleave whole transactions, and readers get in
between writes (a store that has just released the file pauses 5-30 ms before taking it
again, so a process in a tight write loop does not starve the others; there is no queue,
so access is not strictly fair). A process that opens the file with plain
``duckdb.connect`` and keeps it open blocks everyone else until it closes (that is
DuckDB, not the store).

The store's own lock file, ``<file>.lock`` beside the database (``flock``: shared for
reads, exclusive for writes), is held from before ``duckdb.connect`` until after
``close``. DuckDB reads the file's headers before it takes its own lock and never again
once it has it: a process that read them and was then delayed (a loaded machine) while
another process committed and closed used to open the file on stale headers, and one of
the two processes' committed transactions was lost (``tests/test_store_concurrency.py``
reproduces it by delaying the child's lock calls). The lock file only orders store
processes; a process using plain ``duckdb.connect`` is still subject to that DuckDB race.

Atomicity: a write is one transaction; an exception (bad data found by the database,
Ctrl-C) rolls it back. A killed writer's transaction never reaches the WAL (DuckDB logs
at commit); blocks a large insert wrote to the file ahead of commit stay unreferenced and
are reused (the tests kill a writer in the middle of a 300,000-row insert). Inputs are
validated before the connection is opened, so bad data never holds the lock; only the
check that a referenced ``run_id`` exists runs inside the transaction.

``":memory:"`` keeps one connection for the store's lifetime (there is nothing to share).

Untrusted files
---------------
A store file may come from someone else, and DuckDB files hold SQL (views, macros) that
runs when a table is read. Every connection is opened through
:func:`alphatrade_lab.data.duckdb_io.connect`: external access (files, network, extensions,
Python objects) is off and the configuration locked, for the store's own statements and
for :meth:`LabStore.query`. A file this process already holds through another DuckDB
connection (with DuckDB's default settings) is refused with :class:`StoreError` rather
than read through that unrestricted connection.

:meth:`LabStore.query` accepts one ``SELECT`` whose parse tree holds no ``INSERT``,
``UPDATE`` or ``DELETE`` (``WITH d AS (DELETE ... RETURNING *)``), and runs it in a
read-only transaction that is always rolled back, on a read-only connection for files.

>>> import pandas as pd
>>> store = LabStore(":memory:")
>>> run = store.record_run("manual", {"note": "doctest"})
>>> _ = store.record_signals(pd.DataFrame({
...     "timestamp": pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC"),
...     "symbol": "AAA", "direction": [1, 0, -1]}), run_id=run)
>>> store.query("SELECT CAST(sum(direction) AS INTEGER) AS s, count(*) AS n "
...             "FROM signals WHERE run_id = ?", [run]).to_dict("records")
[{'s': 0, 'n': 3}]
"""

from __future__ import annotations

import math
import numbers
import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from alphatrade_lab.backtest.frames import fingerprint, portfolio_frames
from alphatrade_lab.backtest.kernels import _REL_TOL
from alphatrade_lab.data.duckdb_io import (
    ConfigConflictError,
    LockTimeout,
    backoff,
    check_select,
    file_lock,
)
from alphatrade_lab.data.duckdb_io import connect as safe_connect
from alphatrade_lab.errors import DataError, StoreError, StoreLockedError, location
from alphatrade_lab.store.live import _ID_CHUNK, LiveTables
from alphatrade_lab.store.migrations import SchemaVersionError, current_version, migrate
from alphatrade_lab.store.news import NewsTables
from alphatrade_lab.store.schema import SCHEMA_VERSION, TABLES, column_names
from alphatrade_lab.store.validate import to_arrow

if TYPE_CHECKING:
    from alphatrade_lab.backtest.portfolio import Portfolio

__all__ = ["LabStore", "StoreError", "StoreLockedError", "code_version"]

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock")
# columns of a monitoring drift report that the drift_stats table does not keep
_DRIFT_COUNTS = ("n_ref", "n_cur", "nan_ref", "nan_cur")
# Per symbol of one run: trades, win rate and pnl from ``trades``, signal counts from
# ``signals`` and the worst and best day from ``daily_performance``.
_RUN_SUMMARY_SQL = """
WITH t AS (
    SELECT symbol, count(*) AS trades, avg(CASE WHEN pnl > 0 THEN 1.0 ELSE 0.0 END) AS win_rate,
           sum(pnl) AS pnl
    FROM trades WHERE run_id = $run GROUP BY symbol
), s AS (
    SELECT symbol, count(*) AS signals,
           sum(CASE WHEN was_executed THEN 1 ELSE 0 END) AS executed
    FROM signals WHERE run_id = $run GROUP BY symbol
), d AS (
    SELECT portfolio AS symbol, min(pnl_pct) AS worst_day, max(pnl_pct) AS best_day
    FROM daily_performance WHERE run_id = $run GROUP BY portfolio
)
SELECT t.symbol, t.trades, t.win_rate, t.pnl, coalesce(s.signals, 0) AS signals,
       coalesce(s.executed, 0) AS executed, d.worst_day, d.best_day
FROM t LEFT JOIN s ON s.symbol = t.symbol LEFT JOIN d ON d.symbol = t.symbol
ORDER BY t.symbol
"""
_PROCESS_LOCKS: dict[str, threading.RLock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(key: str) -> threading.RLock:
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(key, threading.RLock())


def code_version() -> str:
    """``alphatrade_lab <version>``, plus ``+g<commit>`` when run from a git checkout.

    The commit is read from the ``.git`` files (no git command is run).

    >>> code_version().startswith("alphatrade_lab ")
    True
    """
    from alphatrade_lab import __version__

    out = f"alphatrade_lab {__version__}"
    git = Path(__file__).resolve().parents[2] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = git / ref
            if ref_file.exists():
                head = ref_file.read_text().strip()
            else:
                packed = (git / "packed-refs").read_text().splitlines()
                head = next(line.split()[0] for line in packed if line.endswith(" " + ref))
        if len(head) >= 12 and all(ch in "0123456789abcdef" for ch in head[:12]):
            out += f"+g{head[:12]}"
    except (OSError, StopIteration, IndexError):
        pass
    return out


def check_timeout(value: Any, name: str, where: str) -> float:
    """``value`` as float seconds; ValueError unless it is a finite number >= 0."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value < 0):
        raise ValueError(f"LabStore({where!r}): {name} must be a finite number of seconds "
                         f">= 0, got {value!r}")
    return float(value)


def is_postgres_url(path: Any) -> bool:
    """Whether ``path`` names a PostgreSQL database (``postgresql://`` or ``postgres://``).

    >>> is_postgres_url("postgresql://lab@db/lab"), is_postgres_url("data/lab.duckdb")
    (True, False)
    """
    return isinstance(path, str) and path.startswith(("postgresql://", "postgres://"))


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas(date_as_object=False)
    for name in df.columns:
        dtype = df[name].dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            df[name] = df[name].dt.tz_convert("UTC")
    return df


class LabStore(LiveTables, NewsTables):
    """Open or create the lab store at ``path`` (a DuckDB file, or ``":memory:"``; a
    ``postgresql://`` URL gives a :class:`~alphatrade_lab.store.postgres.PostgresLabStore`
    with the same methods and its own options).

    Parameters
    ----------
    path
        The database file (its folder is created) or ``":memory:"``. An existing file at
        an older schema version is migrated forward on open (not with ``read_only``).
    read_only
        Refuse writes; open the file only with read-only connections.
    lock_timeout
        Seconds to keep retrying when another process holds the file (0: fail at once);
        a finite number >= 0.

    Raises
    ------
    StoreError
        The file is not a DuckDB database (corrupt, empty), cannot be created or written
        (read-only file or folder, a parent that is a file), or this process holds it
        open through another DuckDB connection. The message names the path.

    Writers return the run id they wrote to; readers return DataFrames with UTC
    timestamps, dates as ``datetime64`` and JSON columns as text (``json.loads`` them).
    """

    #: The SQL type of JSON values (``CAST(? AS JSON)`` of the live state).
    _json_type = "JSON"

    @property
    def dialect(self) -> str:
        """The SQL dialect :meth:`query` speaks: ``"duckdb"`` here, ``"postgres"`` for a
        PostgreSQL store (for callers that keep a faster SQL text per database).

        >>> LabStore(":memory:").dialect
        'duckdb'
        """
        return "duckdb"

    def __new__(cls, path: str | Path = "data/lab.duckdb", *args: Any, **kwargs: Any
                ) -> LabStore:
        if cls is LabStore and is_postgres_url(path):
            from alphatrade_lab.store.postgres import PostgresLabStore

            return super().__new__(PostgresLabStore)
        return super().__new__(cls)

    def __init__(self, path: str | Path = "data/lab.duckdb", *, read_only: bool = False,
                 lock_timeout: float = 30.0):
        self.memory = str(path) == ":memory:"
        self.path: str | Path = ":memory:" if self.memory else Path(path)
        self.read_only = read_only
        self.lock_timeout: float = check_timeout(lock_timeout, "lock_timeout", str(path))
        self._con: duckdb.DuckDBPyConnection | None = None
        self._released: float = -1.0
        if self.memory:
            self._con = safe_connect(":memory:")
            self.migrated_from = migrate(self._con)[0]
            return
        path = Path(path)
        if path.is_dir():
            raise StoreError(f"{path}: is a directory, not a lab store file")
        if read_only:
            if not path.exists():
                raise FileNotFoundError(f"{path}: no lab store there (read_only=True)")
            with self._connect(read_only=True) as con:
                version = current_version(con)
            if version != SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{path} is at schema version {version}, this code reads "
                    f"{SCHEMA_VERSION}; open it once without read_only to migrate it"
                    if version < SCHEMA_VERSION else
                    f"{path} is at schema version {version}, newer than this code's "
                    f"{SCHEMA_VERSION}; upgrade alphatrade_lab")
            self.migrated_from = version
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create its folder {path.parent} "
                             f"({exc.strerror or exc})") from None
        with self._connect(read_only=False) as con:
            try:
                self.migrated_from = migrate(con)[0]
            except duckdb.Error as exc:
                raise StoreError(f"{path}: cannot set up the lab store schema "
                                 f"({type(exc).__name__}: {exc})") from None

    def __repr__(self) -> str:
        mode = ", read_only=True" if self.read_only else ""
        return f"LabStore({str(self.path)!r}{mode})"

    def __enter__(self) -> LabStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the in-memory connection (file stores hold none between calls)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    # ----------------------------------------------------------- connections
    @contextmanager
    def _connect(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.memory:
            if self._con is None:
                raise RuntimeError("the in-memory store is closed")
            with _process_lock(f"memory:{id(self)}"):
                yield self._con
            return
        key = str(Path(self.path).resolve())
        with _process_lock(key):
            # courtesy: right after releasing the file, give waiting processes a turn
            since = time.monotonic() - self._released
            if since < 0.05:
                time.sleep(random.uniform(0.005, 0.03))
            deadline = time.monotonic() + self.lock_timeout
            with self._sidecar_lock(key, read_only, deadline):
                con = self._open(key, read_only, deadline)
                try:
                    yield con
                finally:
                    con.close()
                    self._released = time.monotonic()

    def _locked_out(self, what: str, detail: str) -> StoreLockedError:
        return StoreLockedError(
            f"{self.path}: another process held the {what} for more than "
            f"lock_timeout={self.lock_timeout:g} s{detail}. DuckDB allows one process at a "
            "time; retry later or raise lock_timeout.")

    @contextmanager
    def _sidecar_lock(self, key: str, read_only: bool, deadline: float) -> Iterator[None]:
        """Hold ``<file>.lock`` from before ``duckdb.connect`` until after ``close`` (see
        :func:`alphatrade_lab.data.duckdb_io.file_lock` for why)."""
        stack = ExitStack()
        try:  # only taking the lock is guarded here, not the block it holds
            stack.enter_context(file_lock(key, shared=read_only,
                                          timeout=max(0.0, deadline - time.monotonic())))
        except LockTimeout as exc:
            raise self._locked_out("store's lock file", f" ({exc})") from None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the lock file {key}.lock "
                             f"({exc.strerror or exc})") from None
        with stack:
            yield

    def _open(self, key: str, read_only: bool, deadline: float) -> duckdb.DuckDBPyConnection:
        delay = 0.005
        while True:
            try:
                return safe_connect(key, read_only=read_only)
            except ConfigConflictError:
                # reusing that connection's database would run our SQL, and the file's,
                # with its settings (external access on, writable)
                raise StoreError(
                    f"{self.path}: this process already has the file open through another "
                    "DuckDB connection; close it first (the store opens the file itself, "
                    "with external access disabled)") from None
            except duckdb.Error as exc:
                if not (isinstance(exc, duckdb.IOException)
                        and any(m in str(exc) for m in _LOCK_MARKERS)):
                    raise StoreError(f"{self.path}: cannot open the lab store "
                                     f"({type(exc).__name__}: {exc})") from None
                step = backoff(deadline, delay)
                if step is None:
                    raise self._locked_out("DuckDB file lock", f" ({exc})") from None
                delay = step

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.read_only:
            raise PermissionError(f"{self}: the store was opened read-only")
        with self._connect(read_only=False) as con:
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                except BaseException:
                    try:
                        con.execute("ROLLBACK")
                    except duckdb.Error:
                        pass
                    raise
                con.execute("COMMIT")
            except duckdb.ConstraintException as exc:
                raise DataError(f"{self.path}: the write broke a table constraint and "
                                f"nothing was written ({exc})") from None
            except duckdb.Error as exc:
                raise StoreError(f"{self.path}: the write failed and nothing was written "
                                 f"({type(exc).__name__}: {exc})") from None

    def _insert(self, con: Any, table: str, rows: pa.Table) -> int:
        """Insert an Arrow table into ``table`` after checking its run ids: a new run's id
        must be free, any other row's must be in ``runs`` (names are from the schema)."""
        if rows.num_rows == 0:
            return 0
        if "run_id" in rows.column_names:
            ids = pc.unique(rows.column("run_id")).drop_null().to_pylist()
            known: set[str] = set()
            for i in range(0, len(ids), _ID_CHUNK):
                part = ids[i:i + _ID_CHUNK]
                known.update(r[0] for r in con.execute(
                    f"SELECT run_id FROM runs WHERE run_id IN ({', '.join('?' * len(part))})",
                    part).fetchall())
            if table == "runs" and known:
                raise DataError(f"runs: run_id {min(known)!r} is already in {self.path}; "
                                "nothing was written (run ids are never overwritten)")
            missing = [i for i in ids if i not in known]
            if table != "runs" and missing:
                raise DataError(f"{table}: run_id {missing[0]!r} is not in runs; "
                                "record the run first (LabStore.record_run)")
        self._append(con, table, rows)
        return rows.num_rows

    def _append(self, con: Any, table: str, rows: pa.Table) -> None:
        """Insert Arrow rows into ``table`` by column name (DuckDB reads the Arrow table in
        place)."""
        view = f"_incoming_{table}"
        cols = ", ".join(f'"{c}"' for c in rows.column_names)
        con.register(view, rows)
        try:
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {view}")
        finally:
            try:
                con.unregister(view)
            except duckdb.Error:  # an aborted transaction; a later register replaces it
                pass

    def _write(self, batches: Sequence[tuple[str, pa.Table]]) -> None:
        with self._transaction() as con:
            for table, rows in batches:
                self._insert(con, table, rows)

    # ----------------------------------------------------------- writers
    def _run_rows(self, kind: str, params: Any, run_id: str | None, created_at: Any,
                  code_version_: str | None, data_fingerprint: str | None,
                  notes: str | None) -> tuple[str, pa.Table]:
        run_id = run_id or uuid.uuid4().hex
        row = pd.DataFrame({
            "run_id": [run_id],
            "created_at": [pd.Timestamp(created_at or datetime.now(UTC))],
            "kind": [kind],
            "params": [params if params is not None else None],
            "code_version": [code_version_ if code_version_ is not None else code_version()],
            "data_fingerprint": [data_fingerprint],
            "notes": [notes],
        })
        return run_id, to_arrow("runs", row)

    def record_run(self, kind: str = "manual", params: Mapping[str, Any] | None = None, *,
                   run_id: str | None = None, created_at: Any = None,
                   code_version: str | None = None, data_fingerprint: str | None = None,
                   notes: str | None = None) -> str:
        """Add a run (``kind`` such as ``"backtest"``, ``"live"``, ``"monitoring"``).

        ``params`` is stored as JSON (credentials redacted); ``code_version`` defaults to
        :func:`code_version`. Returns the run id (a new UUID hex unless given).
        """
        run_id, rows = self._run_rows(kind, params, run_id, created_at, code_version,
                                      data_fingerprint, notes)
        self._write([("runs", rows)])
        return run_id

    def record_backtest(self, pf: Portfolio, *, strategy: str | None = None,
                        params: Mapping[str, Any] | None = None,
                        model_version: str | None = None, kind: str = "backtest",
                        daily: str = "columns", signals: pd.DataFrame | None = None,
                        run_id: str | None = None, code_version: str | None = None,
                        data_fingerprint: str | None = None, notes: str | None = None) -> str:
        """Record a backtest Portfolio: its run, trades and daily performance in one
        transaction (and ``signals`` rows in the same one, when given).

        A convenience over :meth:`record_frames`: the frames come from
        :func:`alphatrade_lab.backtest.frames.portfolio_frames` (trades from ``pf.trades``,
        daily performance from the equity curve per ``daily`` = ``"columns"``, ``"total"``
        or ``"both"``). ``data_fingerprint`` defaults to a hash of the close prices the
        portfolio ran on. Returns the run id.
        """
        if data_fingerprint is None:
            try:
                data_fingerprint = fingerprint(pf)
            except DataError:
                data_fingerprint = None
        frames = portfolio_frames(pf, daily)
        if signals is not None:
            frames["signals"] = signals
        return self.record_frames(frames, kind=kind, params=params, strategy=strategy,
                                  model_version=model_version, run_id=run_id,
                                  code_version=code_version,
                                  data_fingerprint=data_fingerprint, notes=notes)

    def record_frames(self, frames: Mapping[str, pd.DataFrame], *, kind: str = "backtest",
                      params: Mapping[str, Any] | None = None, strategy: str | None = None,
                      model_version: str | None = None, run_id: str | None = None,
                      code_version: str | None = None, data_fingerprint: str | None = None,
                      notes: str | None = None) -> str:
        """Record a new run and its frames in one transaction: ``frames`` maps table
        names (``"trades"``, ``"signals"``, ``"daily_performance"``, ...) to rows without
        a ``run_id`` (the new run's id is filled in; ``strategy`` and ``model_version``
        fill the trades' columns). Returns the run id.

        >>> store = LabStore(":memory:")
        >>> sig = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=2,
        ...                     freq="1h", tz="UTC"), "symbol": "AAA", "direction": [1, -1]})
        >>> run = store.record_frames({"signals": sig}, kind="manual")
        >>> store.signals(run)["direction"].tolist(), store.runs(run_id=run)["kind"].tolist()
        ([1, -1], ['manual'])
        """
        unknown = [t for t in frames if t not in TABLES or t == "runs"]
        if unknown:
            raise DataError(f"record_frames: no table {unknown[0]!r} takes a run's rows; "
                            f"use one of {[t for t in TABLES if t != 'runs']}")
        run_id, run_rows = self._run_rows(kind, params, run_id, None, code_version,
                                          data_fingerprint, notes)
        batches = [("runs", run_rows)]
        for table, frame in frames.items():
            extra: dict[str, Any] = {"run_id": run_id}
            if table == "trades":
                extra.update(strategy=strategy, model_version=model_version)
            batches.append((table, to_arrow(table, frame, extra)))
        self._write(batches)
        return run_id

    def _record(self, table: str, frame: pd.DataFrame, defaults: Mapping[str, Any]) -> int:
        defaults = {k: v for k, v in defaults.items() if v is not None}
        rows = to_arrow(table, frame, defaults)
        self._write([(table, rows)])
        return rows.num_rows

    def record_trades(self, trades: pd.DataFrame, *, run_id: str | None = None,
                      strategy: str | None = None, model_version: str | None = None) -> int:
        """Append trades (columns of the ``trades`` table; ``symbol``, ``side`` long/short,
        ``quantity``, ``entry_time``, ``entry_price`` required). Returns the row count."""
        return self._record("trades", trades, {"run_id": run_id, "strategy": strategy,
                                               "model_version": model_version})

    def record_signals(self, signals: pd.DataFrame, *, run_id: str | None = None,
                       model_type: str | None = None) -> int:
        """Append signals: ``timestamp``, ``symbol``, ``direction`` (-1/0/1) and optional
        ``confidence`` (0..1), ``model_type``, ``features_hash``, ``was_executed``, ``run_id``.
        A wide frame converts with :func:`~alphatrade_lab.store.signals_from_wide`."""
        return self._record("signals", signals, {"run_id": run_id, "model_type": model_type})

    def record_daily_performance(self, frame: pd.DataFrame, *, run_id: str | None = None,
                                 portfolio: str | None = None) -> int:
        """Append ``daily_performance`` rows computed elsewhere (e.g. by a live bot)."""
        return self._record("daily_performance", frame,
                            {"run_id": run_id, "portfolio": portfolio})

    def record_model_performance(self, frame: pd.DataFrame, *,
                                 run_id: str | None = None) -> int:
        """Append model performance: ``date``, ``symbol``, ``model_type``,
        ``predictions_count``, ``correct_predictions``, optional ``avg_confidence``;
        ``accuracy`` is computed as correct / predictions when absent, else checked."""
        frame = frame.copy(deep=False) if isinstance(frame, pd.DataFrame) else frame
        if isinstance(frame, pd.DataFrame) and {"predictions_count",
                                                "correct_predictions"} <= set(frame.columns):
            n = pd.to_numeric(frame["predictions_count"], errors="coerce")
            k = pd.to_numeric(frame["correct_predictions"], errors="coerce")
            over = (k > n).to_numpy()
            if over.any():
                i = int(over.argmax())
                raise DataError(f"{location('model_performance', 'correct_predictions', i)} "
                                f"is {k.iloc[i]:g} > predictions_count {n.iloc[i]:g}")
            acc = (k / n.where(n > 0)).to_numpy()
            if "accuracy" not in frame.columns:
                frame["accuracy"] = acc
            else:
                given = pd.to_numeric(frame["accuracy"], errors="coerce").to_numpy()
                # the engine's float tolerance (an accuracy is at most 1, so relative
                # to it is absolute)
                off = (abs(given - acc) > _REL_TOL) & ~pd.isna(acc)
                if off.any():
                    i = int(off.argmax())
                    raise DataError(f"{location('model_performance', 'accuracy', i)} is "
                                    f"{given[i]:g} but correct/predictions is {acc[i]:g}")
        return self._record("model_performance", frame, {"run_id": run_id})

    def record_drift(self, report: pd.DataFrame, *, run_id: str | None = None,
                     window_start: Any = None, window_end: Any = None) -> int:
        """Append a drift report: one row per ``feature`` and ``method`` with its
        ``statistic``, optional ``p_value`` and ``threshold``, and ``drifted`` (computed as
        ``statistic > threshold`` when absent). The window may be given as arguments.

        A report of :func:`~alphatrade_lab.monitoring.drift_report` or
        :func:`~alphatrade_lab.monitoring.rolling_drift` is taken as it is: its counts
        (``n_ref``, ``n_cur``, ``nan_ref``, ``nan_cur``) are not stored, and its rows whose
        statistic is NaN or infinite (not computable: a window with too few values) are
        skipped. Returns the row count.
        """
        frame = report.copy(deep=False) if isinstance(report, pd.DataFrame) else report
        if isinstance(frame, pd.DataFrame):
            frame = frame.drop(columns=[c for c in _DRIFT_COUNTS if c in frame.columns])
            if "statistic" in frame.columns:
                # a text statistic stays, for the validation to refuse it
                stat = pd.to_numeric(frame["statistic"], errors="coerce").to_numpy(np.float64)
                keep = np.isfinite(stat) | (np.isnan(stat) & frame["statistic"].notna())
                frame = frame[keep].reset_index(drop=True)
            if "drifted" not in frame.columns and {"statistic", "threshold"} <= set(frame.columns):
                frame["drifted"] = (pd.to_numeric(frame["statistic"], errors="coerce")
                                    > pd.to_numeric(frame["threshold"], errors="coerce"))
        return self._record("drift_stats", frame, {"run_id": run_id,
                                                   "window_start": window_start,
                                                   "window_end": window_end})

    def record_alert(self, level: Any, title: str, message: str = "",
                     data: Mapping[str, Any] | None = None, *,
                     delivered: Sequence[str] = (), failed: Sequence[str] = (),
                     ts: Any = None, run_id: str | None = None) -> None:
        """Append one alert. ``level`` is a string or an enum (its name, lower-cased);
        title, message and data are redacted (tokens, webhook paths and URL credentials
        become ``[REDACTED]``); ``delivered``/``failed`` list sink names (JSON arrays)."""
        self.record_alerts([{"level": level, "title": title, "message": message,
                             "data": data, "delivered": delivered, "failed": failed,
                             "ts": ts, "run_id": run_id}])

    def record_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> int:
        """Append many alerts in one transaction: each a mapping with the arguments of
        :meth:`record_alert` (``level`` and ``title`` required). All or none are written;
        returns the row count."""
        now = pd.Timestamp.now(tz="UTC")
        cols: dict[str, list] = {c: [] for c in ("ts", "level", "title", "message", "data",
                                                 "delivered_sinks", "failed_sinks", "run_id")}
        for i, a in enumerate(alerts):
            level = a.get("level")
            name = getattr(level, "name", level)
            if not isinstance(name, str) or not name.strip():
                raise DataError(f"{location('alerts', 'level', i)} is {level!r}; expected a "
                                "name")
            data = a.get("data")
            cols["ts"].append(pd.Timestamp(a["ts"]) if a.get("ts") is not None else now)
            cols["level"].append(name.strip().lower())
            cols["title"].append(a.get("title"))
            cols["message"].append(a.get("message", ""))
            cols["data"].append(dict(data) if data is not None else None)
            cols["delivered_sinks"].append(list(a.get("delivered", ())))
            cols["failed_sinks"].append(list(a.get("failed", ())))
            cols["run_id"].append(a.get("run_id"))
        rows = to_arrow("alerts", pd.DataFrame(cols))
        self._write([("alerts", rows)])
        return rows.num_rows

    # ----------------------------------------------------------- readers
    def _read(self, sql: str, params: Any = None, *, check: bool = False) -> pd.DataFrame:
        with self._connect(read_only=True) as con:
            if check:
                check_select(con, sql)
            # a read-only transaction, always rolled back: nothing the statement does stays
            con.execute("BEGIN TRANSACTION READ ONLY")
            try:
                rel = con.sql(sql, params=params)
                if rel is None:
                    raise DataError("query: the statement returned no result set")
                return _to_pandas(rel.to_arrow_table())
            except duckdb.Error as exc:
                raise DataError(f"query on {self.path} failed "
                                f"({type(exc).__name__}: {exc})") from None
            finally:
                con.execute("ROLLBACK")

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
              ) -> pd.DataFrame:
        """Run one read-only SQL statement with bound parameters; return a DataFrame.

        Use ``?`` or ``$1`` placeholders with a list, or ``$name`` with a dict; values are
        bound by DuckDB, never formatted into the SQL.

        Only one ``SELECT`` is accepted, judged by its parse tree: ``EXPLAIN`` (``ANALYZE``
        runs its statement), ``PRAGMA``, ``SET``, ``CALL``, ``ATTACH``, ``COPY``, DDL and
        DML are refused with ``ValueError``, and so is a ``SELECT`` holding an ``INSERT``,
        ``UPDATE`` or ``DELETE`` (in a ``WITH`` clause); use the ``record_*`` methods to
        write. The statement runs in a read-only transaction that is rolled back, with
        external access (files, network, extensions) disabled: ``read_csv``, ``read_blob``
        and the like raise. A failing statement raises :class:`DataError`.
        """
        return self._read(sql, params, check=True)

    def _select(self, table: str, order: str | None, time_col: str | None = None,
                start: Any = None, end: Any = None, **filters: Any) -> pd.DataFrame:
        where, params = [], []
        for col, value in filters.items():
            if value is None:
                continue
            if isinstance(value, list | tuple | set | pd.Index):
                values = list(value)
                where.append(f'"{col}" IN ({", ".join("?" * len(values))})'
                             if values else "FALSE")
                params += values
            else:
                where.append(f'"{col}" = ?')
                params.append(value)
        if start is not None:
            where.append(f'"{time_col}" >= ?')
            params.append(pd.Timestamp(start, tz="UTC") if pd.Timestamp(start).tz is None
                          else pd.Timestamp(start))
        if end is not None:
            where.append(f'"{time_col}" < ?')
            params.append(pd.Timestamp(end, tz="UTC") if pd.Timestamp(end).tz is None
                          else pd.Timestamp(end))
        cols = ", ".join(f'"{c}"' for c in column_names(table))
        sql = f"SELECT {cols} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if order:
            sql += f" ORDER BY {order}"
        return self._read(sql, params or None)

    def runs(self, *, kind: str | None = None, run_id: str | None = None) -> pd.DataFrame:
        """Recorded runs, oldest first."""
        return self._select("runs", "created_at, run_id", kind=kind, run_id=run_id)

    def trades(self, run_id: Any = None, symbol: Any = None, *, start: Any = None,
               end: Any = None, strategy: str | None = None) -> pd.DataFrame:
        """Trades filtered by run(s), symbol(s) and entry time in [start, end), in the
        order they were written (sorting a million rows would cost more than the read)."""
        return self._select("trades", None, "entry_time", start, end,
                            run_id=run_id, symbol=symbol, strategy=strategy)

    def signals(self, run_id: Any = None, symbol: Any = None, *, start: Any = None,
                end: Any = None, model_type: str | None = None) -> pd.DataFrame:
        """Signals filtered by run(s), symbol(s) and timestamp in [start, end), in the
        order they were written."""
        return self._select("signals", None, "timestamp", start, end,
                            run_id=run_id, symbol=symbol, model_type=model_type)

    def daily_performance(self, run_id: Any = None, portfolio: Any = None) -> pd.DataFrame:
        """Daily performance rows by run and portfolio, in date order."""
        return self._select("daily_performance", 'run_id, portfolio, "date"',
                            run_id=run_id, portfolio=portfolio)

    def run_summary(self, run_id: str) -> pd.DataFrame:
        """Per symbol of one run: trades, win rate and pnl, signals and how many were
        executed, and the worst and best day (one read-only query).

        >>> import numpy as np, alphatrade_lab as atl
        >>> close = atl.data.to_wide(atl.data.load_sample(["AAA"]), "close").iloc[:600]
        >>> pf = atl.backtest.from_signals(close, np.arange(600) % 50 == 0,
        ...                                np.arange(600) % 50 == 25)
        >>> store = atl.store.LabStore(":memory:")
        >>> summary = store.run_summary(store.record_backtest(pf, strategy="demo"))
        >>> summary[["symbol", "trades", "signals"]].to_dict("records")
        [{'symbol': 'AAA', 'trades': 12, 'signals': 0}]
        """
        return self._read(_RUN_SUMMARY_SQL, {"run": run_id})

    def model_performance(self, symbol: Any = None, model_type: Any = None, *,
                          run_id: Any = None) -> pd.DataFrame:
        """Model performance rows, in date order."""
        return self._select("model_performance", '"date", symbol, model_type',
                            symbol=symbol, model_type=model_type, run_id=run_id)

    def drift(self, run_id: Any = None, *, feature: Any = None,
              drifted: bool | None = None) -> pd.DataFrame:
        """Drift statistics by run, feature and whether they drifted."""
        return self._select("drift_stats", "window_end, feature, method",
                            run_id=run_id, feature=feature, drifted=drifted)

    def alerts(self, run_id: Any = None, *, level: Any = None, start: Any = None,
               end: Any = None) -> pd.DataFrame:
        """Alerts by run, level and time in [start, end), oldest first."""
        return self._select("alerts", "ts", "ts", start, end, run_id=run_id, level=level)

    @property
    def schema_version(self) -> int:
        """The file's schema version."""
        with self._connect(read_only=True) as con:
            return current_version(con)

    def counts(self) -> dict[str, int]:
        """Row count of every table."""
        sql = " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM {t}" for t in TABLES)
        out = self._read(sql)
        return {t: int(n) for t, n in zip(out["t"], out["n"], strict=True)}

