"""A lab store that keeps a run trading while its database is down: writes go to disk.

:class:`SpoolingStore` stands between the engine and a :class:`~alphatrade_lab.store.LabStore`
(a PostgreSQL server, or a DuckDB file another process holds). While the database answers,
every write goes straight through. When it cannot be reached
(:class:`~alphatrade_lab.errors.StoreUnavailableError`, or
:class:`~alphatrade_lab.errors.StoreLockedError` for a file), the write is kept in the
spool folder instead, an alert is sent, and the engine goes on; a background thread tries
the database every ``retry`` seconds and, once it answers, writes the spooled batches in
order, deletes each one after its transaction committed, and sends a second alert. Later
writes join the spool until it is empty, so batches always reach the store in the order the
engine made them.

Nothing is lost or written twice: a batch is on disk (written to a temporary folder, then
renamed) before the call returns; each batch carries a sequence number that the store keeps
in the run's state (key ``"_spool"``), and a batch whose number the store already holds is
skipped (the write that seemed to fail had committed before the connection dropped). The
spool survives the process: a run restarted with the same folder writes what the last
process could not.

Started while the database is down, a run can go on only if everything about it is in the
spool (it was created while the database was down) or, with ``new_runs_when_down=True``
(paper trading), if it is taken as a new run; should the database turn out to hold that
run already when it returns, the spool is kept as it is and an alert says so (the two are
never merged). Reading a run whose batches still wait in the spool first waits up to
``catch_up`` seconds for them, then raises :class:`StoreUnavailableError`.

>>> import tempfile, pandas as pd
>>> from alphatrade_lab.store import LabStore
>>> spool = SpoolingStore(LabStore(":memory:"), tempfile.mkdtemp())
>>> run = spool.record_run("paper", run_id="demo")
>>> t = pd.Timestamp("2024-01-02", tz="UTC")
>>> _ = spool.record_live(run, equity=pd.DataFrame(
...     {"timestamp": [t], "portfolio": "total", "equity": [100.0]}), state={"bars": 1})
>>> spool.live_state(run)["bars"], spool.pending, spool.degraded
(1, 0, False)
>>> spool.close()
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from alphatrade_lab.errors import DataError, StoreLockedError, StoreUnavailableError
from alphatrade_lab.redact import redact

__all__ = ["SpoolingStore"]

_UNAVAILABLE = (StoreUnavailableError, StoreLockedError)
_FRAMES = ("orders", "fills", "equity", "positions", "signals", "events")
_SEQ = "_spool"


def _write_entry(folder: Path, name: str, meta: dict[str, Any],
                 frames: Mapping[str, pd.DataFrame]) -> None:
    """Write one spool entry atomically: a temporary folder, fsynced, then renamed."""
    tmp = folder / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for key, frame in frames.items():
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with pa.OSFile(str(tmp / f"{key}.arrow"), "wb") as sink, \
                pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    (tmp / "meta.json").write_text(json.dumps(meta))
    for path in tmp.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, folder / name)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_entry(path: Path) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    meta = json.loads((path / "meta.json").read_text())
    frames = {}
    for key in _FRAMES:
        file = path / f"{key}.arrow"
        if file.exists():
            with pa.memory_map(str(file)) as source:
                frames[key] = pa.ipc.open_file(source).read_all().to_pandas()
    return meta, frames


class SpoolingStore:
    """The engine's store, buffered on disk while the database cannot be reached.

    Parameters
    ----------
    store
        A :class:`~alphatrade_lab.store.LabStore`, or a callable that opens one (called
        again until it succeeds when the database is down at start), or a store location
        (a DuckDB path or a ``postgresql://`` URL) to open with ``LabStore(store)``.
    spool_dir
        The folder of spooled batches (created; keep one folder per store).
    alerts
        An alert dispatcher (``submit(level, title, message, data)``), told when the store
        goes down and when it has caught up. None: no alerts.
    retry
        Seconds between attempts to reach the database while it is down.
    catch_up
        Seconds a read of a run with spooled batches waits for them to be written.
    new_runs_when_down
        Take a run the spool does not know as new while the database is down (paper
        trading); False: refuse with :class:`StoreUnavailableError`.

    Only the store methods the live engine uses are offered: ``record_run``,
    ``record_live``, ``runs``, ``live_state`` and the readers of a run's rows.
    """

    def __init__(self, store: Any, spool_dir: str | Path, *, alerts: Any = None,
                 retry: float = 2.0, catch_up: float = 30.0,
                 new_runs_when_down: bool = False):
        if isinstance(store, str | Path):
            location = store

            def store() -> Any:
                from alphatrade_lab.store import LabStore

                return LabStore(location)
        self._open: Callable[[], Any] | None = store if callable(store) else None
        self._store: Any = None if callable(store) else store
        self.dir = Path(spool_dir).resolve()  # the process may change its folder later
        self.dir.mkdir(parents=True, exist_ok=True)
        self.alerts, self.retry, self.catch_up = alerts, float(retry), float(catch_up)
        self.new_runs_when_down = new_runs_when_down
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._drained = threading.Condition(self._lock)
        self.error: BaseException | None = None  # why the spool stopped draining, if it did
        self.outages = 0
        for done in self.dir.glob(".*.done"):  # written, then the process stopped
            shutil.rmtree(done, ignore_errors=True)
        entries = self._entries()
        self._seq = max((int(p.name) for p in entries), default=0)
        self._degraded = bool(entries)
        self._new_runs: set[str] = {m["run_id"] for m in map(self._meta, entries)
                                    if m["kind"] == "run"}
        if self._store is None:
            self._try_open()
        if self._degraded and self._store is not None:
            self._drain()  # what an earlier process spooled, before anything is read
        self._thread = threading.Thread(target=self._loop, name="store-spool", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = "degraded" if self._degraded else "ok"
        return f"SpoolingStore({redact(repr(self._store))}, {str(self.dir)!r}, {state})"

    # ------------------------------------------------------------------ state
    @property
    def degraded(self) -> bool:
        """True while writes go to the spool instead of the database."""
        return self._degraded

    @property
    def pending(self) -> int:
        """Batches waiting in the spool."""
        return len(self._entries())

    def _entries(self) -> list[Path]:
        return sorted((p for p in self.dir.iterdir() if p.name.isdigit()),
                      key=lambda p: int(p.name))

    @staticmethod
    def _meta(path: Path) -> dict[str, Any]:
        return json.loads((path / "meta.json").read_text())

    def _alert(self, level: str, title: str, message: str) -> None:
        if self.alerts is not None:
            self.alerts.submit(level, title, message, {"spool": str(self.dir)})

    def _try_open(self) -> bool:
        try:
            assert self._open is not None
            self._store = self._open()
            return True
        except _UNAVAILABLE as exc:
            self._down(exc)
            return False

    def _down(self, exc: BaseException) -> None:
        if not self._degraded:
            self._degraded = True
            self.outages += 1
            self._alert("warning", "Lab store unavailable",
                        f"{exc}; writes are kept in {self.dir} until it is back")

    # ----------------------------------------------------------------- writes
    def _spool(self, kind: str, run_id: str, args: dict[str, Any],
               frames: Mapping[str, pd.DataFrame] | None = None) -> None:
        self._seq += 1  # record_live numbered its state with this
        _write_entry(self.dir, f"{self._seq:012d}",
                     {"kind": kind, "run_id": run_id, "seq": self._seq, "args": args},
                     frames or {})
        self._wake.set()

    def record_run(self, kind: str = "manual", params: Mapping[str, Any] | None = None, *,
                   run_id: str | None = None, **options: Any) -> str:
        """:meth:`LabStore.record_run`, spooled while the database is down (``run_id`` is
        then required: the run's rows name it before the store has it)."""
        with self._lock:
            if not self._degraded:
                try:
                    return self._store.record_run(kind, params, run_id=run_id, **options)
                except _UNAVAILABLE as exc:
                    self._down(exc)
            if run_id is None:
                raise StoreUnavailableError("record_run: the store is down; give the run "
                                            "a run_id to start it anyway")
            from alphatrade_lab.store.live import encode_state

            args = {"kind": kind, "params": encode_state(dict(params or {})), **options}
            self._spool("run", run_id, args)
            self._new_runs.add(run_id)
            return run_id

    def record_live(self, run_id: str, *, state: Mapping[str, Any] | None = None,
                    last_bar_time: Any = None, **frames: pd.DataFrame | None) -> dict[str, int]:
        """:meth:`LabStore.record_live`, or the batch spooled (the counts are then 0)."""
        state = None if state is None else {**state}
        with self._lock:
            seq = self._seq + 1
            if state is not None:
                state[_SEQ] = seq
            if not self._degraded:
                try:
                    out = self._store.record_live(run_id, state=state,
                                                  last_bar_time=last_bar_time, **frames)
                    self._seq = seq
                    return out
                except _UNAVAILABLE as exc:
                    self._down(exc)
            from alphatrade_lab.store.live import encode_state

            last = None if last_bar_time is None else pd.Timestamp(last_bar_time).isoformat()
            args = {"state": None if state is None else encode_state(state),
                    "last_bar_time": last}
            self._spool("live", run_id, args,
                        {k: v for k, v in frames.items() if v is not None and len(v)})
            return {k: 0 for k in _FRAMES}

    # ------------------------------------------------------------- catching up
    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.retry)
            self._wake.clear()
            if self._closed.is_set() or not self._degraded or self.error is not None:
                continue
            if self._store is None and not self._try_open():
                continue
            self._drain()

    def _drain(self) -> None:
        """Write the spooled batches in order; mark the store healthy once none is left."""
        from alphatrade_lab.store.live import decode_state

        written = 0
        done: dict[str, int] = {}  # the sequence number the store holds, per run
        while True:
            with self._lock:
                entries = self._entries()
                if not entries:
                    if self._degraded:
                        self._degraded = False
                        self._alert("info", "Lab store back",
                                    f"wrote the {written} batch(es) kept in {self.dir}")
                    self._drained.notify_all()
                    return
            for path in entries:
                meta, frames = _read_entry(path)
                run, args = meta["run_id"], meta["args"]
                try:
                    if meta["kind"] == "run":
                        if len(self._store.runs(run_id=run)):
                            self.error = StoreUnavailableError(
                                f"run {run!r} was started while the store was down, but "
                                f"the store holds a run of that id: its spooled batches "
                                f"stay in {self.dir}, not merged")
                            self._alert("critical", "Spooled run conflicts with the store",
                                        str(self.error))
                            return
                        self._store.record_run(args.pop("kind"), decode_state(
                            args.pop("params")), run_id=run, **args)
                    else:
                        if run not in done:
                            held = self._store.live_state(run) or {}
                            done[run] = int(held.get(_SEQ, 0) or 0)
                        if meta["seq"] > done[run]:
                            state = args["state"]
                            self._store.record_live(
                                run, state=None if state is None else decode_state(state),
                                last_bar_time=args["last_bar_time"], **frames)
                            done[run] = meta["seq"]
                except _UNAVAILABLE:
                    return  # still down: the next attempt starts from this batch
                except DataError as exc:  # a batch the store refuses: kept, reported
                    self.error = exc
                    self._alert("critical", "Spooled batch refused by the store",
                                f"{path}: {exc}")
                    return
                with self._lock:  # readers list and read entries under the lock
                    gone = path.with_name(f".{path.name}.done")
                    os.replace(path, gone)  # one atomic step: never a half-deleted entry
                    if meta["kind"] == "run":
                        self._new_runs.discard(run)
                shutil.rmtree(gone)
                written += 1

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the spool is empty (True) or ``timeout`` seconds passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._lock:
            while self._entries() and self.error is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._drained.wait(min(left, self.retry) if left is not None else self.retry)
                self._wake.set()
            return not self._entries()

    def close(self, timeout: float | None = None) -> None:
        """Try to write what is spooled (up to ``timeout`` seconds; None: ``catch_up``),
        then stop the background thread. What is still spooled stays on disk."""
        if self._degraded and self.error is None:
            self.wait(self.catch_up if timeout is None else timeout)
        self._closed.set()
        self._wake.set()
        self._thread.join()

    # ------------------------------------------------------------------ reads
    def _spooled(self, run_id: str) -> bool:
        with self._lock:
            return any(self._meta(p)["run_id"] == run_id for p in self._entries())

    def _reader(self, run_id: Any) -> Any:
        """The store, once no batch of ``run_id`` waits in the spool."""
        if isinstance(run_id, str) and self._spooled(run_id):
            self.wait(self.catch_up)
            if self._spooled(run_id):
                raise StoreUnavailableError(
                    f"run {run_id!r} has batches in {self.dir} that the store has not taken "
                    f"yet (it is down); they are written when it is back")
        if self._store is None:
            raise StoreUnavailableError(f"the lab store cannot be reached; writes are kept "
                                        f"in {self.dir}")
        return self._store

    def runs(self, *, run_id: str | None = None, **filters: Any) -> pd.DataFrame:
        """:meth:`LabStore.runs`; while the database is down, a run created in the spool is
        listed (one row: ``run_id``, ``kind``), and one the spool does not know is absent
        with ``new_runs_when_down``, else refused."""
        if self._degraded and run_id is not None:
            if run_id in self._new_runs:
                return pd.DataFrame({"run_id": [run_id], "kind": ["spooled"]})
            if self.new_runs_when_down and not self._spooled(run_id):
                return pd.DataFrame({"run_id": pd.Series([], dtype=object)})
            raise StoreUnavailableError(
                f"cannot look up run {run_id!r}: the lab store is down and its rows are "
                f"there, not in {self.dir}")
        return self._reader(run_id).runs(run_id=run_id, **filters)

    def live_state(self, run_id: str) -> dict[str, Any] | None:
        """:meth:`LabStore.live_state`; while the database is down, the last spooled state
        of a run created in the spool (None if it has none yet)."""
        if self._degraded:
            if run_id in self._new_runs:
                return self._spooled_state(run_id)
            if not self.new_runs_when_down or self._spooled(run_id):
                raise StoreUnavailableError(
                    f"cannot resume run {run_id!r}: the lab store is down and the run's "
                    f"state is there, not in {self.dir}")
            return None
        return self._reader(run_id).live_state(run_id)

    def _spooled_state(self, run_id: str) -> dict[str, Any] | None:
        from alphatrade_lab.store.live import decode_state

        with self._lock:
            for path in reversed(self._entries()):
                meta = self._meta(path)
                if (meta["run_id"] == run_id and meta["kind"] == "live"
                        and meta["args"]["state"]):
                    state = decode_state(meta["args"]["state"], str(path))
                    last = meta["args"]["last_bar_time"]
                    state["last_bar_time"] = None if last is None else pd.Timestamp(last)
                    return state
        return None

    def fills(self, run_id: Any = None, **filters: Any) -> pd.DataFrame:
        """:meth:`LabStore.fills`; while the database is down, a spool-created run's
        spooled fills."""
        if self._degraded and run_id in self._new_runs:
            with self._lock:
                parts = [f["fills"] for p in self._entries()
                         if self._meta(p)["run_id"] == run_id
                         for f in [_read_entry(p)[1]] if "fills" in f]
            return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        return self._reader(run_id).fills(run_id, **filters)

    def orders(self, run_id: Any = None, **filters: Any) -> pd.DataFrame:
        """:meth:`LabStore.orders` once the run's spooled batches are written."""
        return self._reader(run_id).orders(run_id, **filters)

    def equity(self, run_id: Any = None, **filters: Any) -> pd.DataFrame:
        """:meth:`LabStore.equity` once the run's spooled batches are written."""
        return self._reader(run_id).equity(run_id, **filters)

    def signals(self, run_id: Any = None, **filters: Any) -> pd.DataFrame:
        """:meth:`LabStore.signals` once the run's spooled batches are written."""
        return self._reader(run_id).signals(run_id, **filters)

    def feed_events(self, run_id: Any = None, **filters: Any) -> pd.DataFrame:
        """:meth:`LabStore.feed_events` once the run's spooled batches are written."""
        return self._reader(run_id).feed_events(run_id, **filters)
