"""The live engine's tables in the lab store: orders, fills, equity, positions, feed
events and the resume state, written together by :meth:`LabStore.record_live`.

The paper/live engine flushes what it did every few bars with one
:meth:`~LiveTables.record_live` call: every table's rows and the engine's state go in
**one transaction** (all or nothing, like ``record_frames``), so a run killed at any point
restarts from a ``live_state`` row that matches the rows before it. An order is one row
(primary key ``(run_id, client_order_id)``): a later row of the same order, in the same
call or a later one, replaces the earlier one completely (columns it lacks become NULL).
``live_state`` holds one row per run, replaced on each write.

The state is JSON. JSON has no NaN or infinity, so non-finite floats are stored as the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` and read back as floats (a string
that is exactly one of those reads back as a float too). A state read from a file is
parsed with :func:`json.loads`, never evaluated.

>>> import pandas as pd
>>> from alphatrade_lab.store import LabStore
>>> store = LabStore(":memory:")
>>> run = store.record_run("paper", run_id="p1")
>>> t = pd.Timestamp("2024-01-02 09:30", tz="UTC")
>>> order = pd.DataFrame({"client_order_id": ["atl-1"], "symbol": "AAA", "side": "buy",
...                       "qty": 2.0, "status": "new", "bar_time": t})
>>> store.record_live("p1", orders=order, state={"cash": 100.0, "avg": float("nan")},
...                   last_bar_time=t)["orders"]
1
>>> filled = order.assign(status="filled", filled_qty=2.0, filled_avg_price=10.5)
>>> store.record_live("p1", orders=filled)["orders"]
1
>>> store.orders("p1")[["status", "filled_qty"]].to_dict("records")
[{'status': 'filled', 'filled_qty': 2.0}]
>>> store.live_state("p1")
{'cash': 100.0, 'avg': nan, 'last_bar_time': Timestamp('2024-01-02 09:30:00+0000', tz='UTC')}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from alphatrade_lab.errors import DataError, StoreError, location
from alphatrade_lab.redact import Redactor
from alphatrade_lab.store.validate import to_arrow

__all__ = ["LIVE_TABLES", "LiveTables", "decode_state", "encode_state"]

#: record_live's frame arguments and the tables they go to, in the order they are written.
LIVE_TABLES: tuple[tuple[str, str], ...] = (
    ("orders", "orders"), ("fills", "fills"), ("equity", "equity"),
    ("positions", "positions"), ("signals", "signals"), ("events", "feed_events"))

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Orders are replaced by deleting the batch's keys and inserting (one path for new and
# updated orders; PostgreSQL runs it too). IN lists are bound in chunks of this many ids.
_ID_CHUNK = 500
# One statement for a new and an existing state row (DuckDB and PostgreSQL both run it): a
# missing last_bar_time or state keeps the previous one (pass {} to clear the state).
_STATE_UPSERT = ("INSERT INTO live_state VALUES (?, ?, ?, CAST(? AS {json})) "
                 "ON CONFLICT (run_id) DO UPDATE SET updated_at = EXCLUDED.updated_at, "
                 "last_bar_time = coalesce(EXCLUDED.last_bar_time, live_state.last_bar_time), "
                 "state = coalesce(EXCLUDED.state, live_state.state)")


def _plain(value: Any, path: str) -> Any:
    """``value`` as JSON-able Python (non-finite floats as strings); DataError naming the
    path of a value that has no JSON form."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isfinite(v):
            return v
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str | int | float | bool) and k is not None:
                raise DataError(f"{location('live_state', 'state')}: key {k!r} at {path} is "
                                f"a {type(k).__name__}; JSON keys are text")
            out[k if isinstance(k, str) else json.dumps(k)] = _plain(v, f"{path}[{k!r}]")
        return out
    if isinstance(value, list | tuple | np.ndarray):
        items = value.tolist() if isinstance(value, np.ndarray) else value
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(items)]
    if isinstance(value, pd.Timestamp | datetime | date):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, Enum):
        return _plain(value.value, path)
    raise DataError(f"{location('live_state', 'state')}: {path} is a {type(value).__name__}, "
                    "which has no JSON form (use numbers, text, lists and dicts)")


def encode_state(state: Mapping[str, Any]) -> str:
    """The JSON text stored for ``state``: credentials redacted, non-finite floats as
    ``"NaN"``/``"Infinity"``/``"-Infinity"``, timestamps as ISO text.

    >>> encode_state({"cash": 1.5, "marks": {"AAA": float("inf")}, "n": 2})
    '{"cash": 1.5, "marks": {"AAA": "Infinity"}, "n": 2}'
    """
    if not isinstance(state, Mapping):
        raise DataError(f"{location('live_state', 'state')} is a {type(state).__name__}; "
                        "expected a dict")
    try:
        return json.dumps(Redactor()(_plain(state, "state")), allow_nan=False)
    except RecursionError:
        raise DataError(f"{location('live_state', 'state')} is nested too deeply") from None


def _restore(value: Any) -> Any:
    if isinstance(value, str):
        return _NONFINITE.get(value, value)
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def decode_state(text: str | None, where: str = "live_state") -> dict[str, Any]:
    """Parse stored state text (from a file: untrusted) with :func:`json.loads`, turning
    the non-finite markers back into floats; an empty state is ``{}``.

    >>> decode_state('{"avg": "NaN", "marks": [1.0, "-Infinity"]}')
    {'avg': nan, 'marks': [1.0, -inf]}
    """
    if text is None:
        return {}
    try:
        value = _restore(json.loads(text))
    except (ValueError, TypeError, RecursionError) as exc:
        raise StoreError(f"{where}: the stored state is not valid JSON "
                         f"({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise StoreError(f"{where}: the stored state is a JSON {type(value).__name__}, "
                         "not an object")
    return value


def _utc(value: Any, what: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{location('live_state', what)} is {value!r}; expected a timestamp "
                        f"({exc})") from None
    if pd.isna(t):
        return None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _own_rows(table: str, frame: Any, run_id: str) -> pa.Table:
    """``frame`` validated as ``table`` rows of ``run_id`` (filled in; a frame's own
    ``run_id`` column must hold that id)."""
    if isinstance(frame, pd.DataFrame) and "run_id" in frame.columns:
        bad = (frame["run_id"].astype(object) != run_id).to_numpy(dtype=bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{location(table, 'run_id', i, label=frame.index[i])} is "
                            f"{frame['run_id'].iloc[i]!r}; record_live writes run {run_id!r} "
                            "only (leave the column out)")
    return to_arrow(table, frame, {"run_id": run_id})


def _last_of_each_order(rows: pa.Table) -> pa.Table:
    """The last row of each ``client_order_id`` (a later row replaces an earlier one)."""
    ids = rows.column("client_order_id").to_pandas()
    dup = ids.duplicated(keep="last").to_numpy()
    return rows.filter(pa.array(~dup)) if dup.any() else rows


class LiveTables:
    """:class:`~alphatrade_lab.store.LabStore`'s live-trading writer and readers (a mixin:
    it uses the store's transaction and read helpers)."""

    if TYPE_CHECKING:
        path: str | Path
        _json_type: str

        def _transaction(self) -> AbstractContextManager[Any]: ...

        def _append(self, con: Any, table: str, rows: pa.Table) -> None: ...

        def _read(self, sql: str, params: Any = None, *, check: bool = False
                  ) -> pd.DataFrame: ...

        def _select(self, table: str, order: str | None, time_col: str | None = None,
                    start: Any = None, end: Any = None, **filters: Any) -> pd.DataFrame: ...

    def _insert_live(self, con: Any, table: str, rows: pa.Table) -> int:
        """Insert Arrow rows of ``table``; ``orders`` rows first delete the stored rows of
        the same orders (names come from the schema, values are bound)."""
        if rows.num_rows == 0:
            return 0
        if table == "orders":
            run_id = rows.column("run_id")[0].as_py()
            ids = rows.column("client_order_id").to_pylist()
            for i in range(0, len(ids), _ID_CHUNK):
                part = ids[i:i + _ID_CHUNK]
                con.execute("DELETE FROM orders WHERE run_id = ? AND client_order_id IN "
                            f"({', '.join('?' * len(part))})", [run_id, *part])
        self._append(con, table, rows)
        return rows.num_rows

    def _write_state(self, con: Any, run_id: str, updated_at: pd.Timestamp,
                     last_bar_time: pd.Timestamp | None, text: str | None) -> int:
        """Upsert the run's ``live_state`` row (NULL last_bar_time/state keep the old)."""
        # microseconds, as every stored time (to_pydatetime warns on dropped nanoseconds)
        when = updated_at.floor("us").to_pydatetime()
        last = None if last_bar_time is None else last_bar_time.floor("us").to_pydatetime()
        con.execute(_STATE_UPSERT.format(json=self._json_type), [run_id, when, last, text])
        return 1

    def record_live(self, run_id: str, *, orders: pd.DataFrame | None = None,
                    fills: pd.DataFrame | None = None, equity: pd.DataFrame | None = None,
                    positions: pd.DataFrame | None = None,
                    signals: pd.DataFrame | None = None, events: pd.DataFrame | None = None,
                    state: Mapping[str, Any] | None = None, last_bar_time: Any = None,
                    updated_at: Any = None) -> dict[str, int]:
        """Write one flush of a paper/live run: all rows and the state in ONE transaction.

        Parameters
        ----------
        run_id
            A run already recorded (``record_run("paper" | "live", run_id=...)``); its id
            is filled into every row (a frame's own ``run_id`` column must hold it).
        orders, fills, equity, positions, signals, events
            Frames with the columns of the ``orders``, ``fills``, ``equity``,
            ``positions``, ``signals`` and ``feed_events`` tables (None or empty: none).
            Orders are upserted on ``(run_id, client_order_id)``: the last row of an
            order, in this frame or a later call, replaces the earlier one.
        state
            A JSON-able dict (numpy numbers, arrays and timestamps are converted;
            credentials are redacted): the run's ``live_state`` row is replaced. None
            keeps the stored one.
        last_bar_time
            The last bar processed (UTC; naive is read as UTC). Defaults to
            ``state["last_bar_time"]`` when that is present; None keeps the stored one.
        updated_at
            The row's write time (default now).

        Returns
        -------
        dict
            Rows written per table: ``orders`` (after collapsing repeats of an order),
            ``fills``, ``equity``, ``positions``, ``signals``, ``feed_events`` and
            ``live_state`` (0 or 1).

        Raises
        ------
        DataError
            A bad row (naming the table, column and row), a state with no JSON form, or
            a ``run_id`` not in ``runs``. Nothing of the call is written.

        Examples
        --------
        >>> import pandas as pd
        >>> from alphatrade_lab.store import LabStore
        >>> store = LabStore(":memory:")
        >>> run = store.record_run("paper")
        >>> t = pd.Timestamp("2024-01-02", tz="UTC")
        >>> n = store.record_live(run, equity=pd.DataFrame(
        ...     {"timestamp": [t], "portfolio": "total", "equity": [100.0]}), state={})
        >>> n["equity"], n["live_state"], n["fills"]
        (1, 1, 0)
        """
        if not isinstance(run_id, str) or not run_id:
            raise DataError(f"record_live: run_id must be a non-empty string, got {run_id!r}")
        given = {"orders": orders, "fills": fills, "equity": equity, "positions": positions,
                 "signals": signals, "events": events}
        batches: list[tuple[str, pa.Table]] = []
        for arg, table in LIVE_TABLES:
            frame = given[arg]
            if frame is None:
                continue
            rows = _own_rows(table, frame, run_id)
            if rows.num_rows:
                if table == "orders":
                    rows = _last_of_each_order(rows)
                batches.append((table, rows))
        if last_bar_time is None and isinstance(state, Mapping):
            last_bar_time = state.get("last_bar_time")
        write_state = state is not None or last_bar_time is not None
        text = encode_state(state) if state is not None else None
        last = _utc(last_bar_time, "last_bar_time")
        now = _utc(updated_at, "updated_at") or pd.Timestamp.now(tz="UTC")
        out = {table: 0 for _, table in LIVE_TABLES} | {"live_state": 0}
        with self._transaction() as con:
            if not con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchall():
                raise DataError(f"record_live: run_id {run_id!r} is not in runs; record the "
                                "run first (LabStore.record_run('paper', run_id=...))")
            for table, rows in batches:
                out[table] += self._insert_live(con, table, rows)
            if write_state:
                out["live_state"] = self._write_state(con, run_id, now, last, text)
        return out

    def record_reconciliation(self, run_id: str, differences: pd.DataFrame) -> int:
        """Store a run's reconciliation (:func:`alphatrade_lab.live.reconcile`), replacing
        its earlier rows in one transaction. Returns the rows written."""
        rows = _own_rows("reconciliation", differences, run_id)
        with self._transaction() as con:
            if not con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchall():
                raise DataError(f"record_reconciliation: run_id {run_id!r} is not in runs")
            con.execute("DELETE FROM reconciliation WHERE run_id = ?", [run_id])
            if rows.num_rows:
                self._insert_live(con, "reconciliation", rows)
        return rows.num_rows

    def reconciliation(self, run_id: Any = None, *, kind: Any = None) -> pd.DataFrame:
        """A run's stored reconciliation differences (see :meth:`record_reconciliation`)."""
        return self._select("reconciliation", None, run_id=run_id, kind=kind)

    # ----------------------------------------------------------- readers
    def orders(self, run_id: Any = None, *, status: Any = None,
               symbol: Any = None) -> pd.DataFrame:
        """Orders (their latest row) by run(s), status(es) and symbol(s), in the order
        they were first written."""
        return self._select("orders", None, run_id=run_id, status=status, symbol=symbol)

    def fills(self, run_id: Any = None, *, symbol: Any = None, start: Any = None,
              end: Any = None) -> pd.DataFrame:
        """Fills by run(s), symbol(s) and timestamp in [start, end), in written order."""
        return self._select("fills", None, "timestamp", start, end, run_id=run_id,
                            symbol=symbol)

    def equity(self, run_id: Any = None, *, portfolio: Any = None, start: Any = None,
               end: Any = None) -> pd.DataFrame:
        """Equity per bar (its open time) and portfolio, in written order."""
        return self._select("equity", None, "timestamp", start, end, run_id=run_id,
                            portfolio=portfolio)

    def positions(self, run_id: Any = None, *, symbol: Any = None, start: Any = None,
                  end: Any = None) -> pd.DataFrame:
        """Position snapshots by run(s), symbol(s) and timestamp, in written order."""
        return self._select("positions", None, "timestamp", start, end, run_id=run_id,
                            symbol=symbol)

    def feed_events(self, run_id: Any = None, kind: Any = None, *,
                    symbol: Any = None) -> pd.DataFrame:
        """Feed events (``duplicate``, ``gap``, ``rejected``, ...) by run(s), kind(s) and
        symbol(s), in written order."""
        return self._select("feed_events", None, run_id=run_id, kind=kind, symbol=symbol)

    def live_state(self, run_id: str) -> dict[str, Any] | None:
        """The run's stored state dict with ``last_bar_time`` (a UTC ``pd.Timestamp``,
        or None) set in it; None when the run has no ``live_state`` row."""
        got = self._read("SELECT last_bar_time, state FROM live_state WHERE run_id = ?",
                         [run_id])
        if not len(got):
            return None
        raw = got["state"].iloc[0]
        state = decode_state(None if pd.isna(raw) else str(raw),
                             f"{self.path}, live_state of {run_id!r}")
        t = got["last_bar_time"].iloc[0]
        state["last_bar_time"] = None if pd.isna(t) else pd.Timestamp(t).tz_convert("UTC")
        return state
