"""The PostgreSQL lab store: a backtest of 1,000,000 trades through ``record_backtest``
against the floor, a bare ``COPY`` of the same trade rows.

Run with ``.venv/bin/python benchmarks/store_postgres.py`` (``make bench`` runs it too). The
server is a :class:`~alphatrade_lab.testing.LocalPostgres` started for the run (durability
off: ``fsync``, ``synchronous_commit`` and ``full_page_writes``), or the one in
``ATL_TEST_POSTGRES_URL`` (a role that may create databases). Each repeat writes into a
fresh database created by the store (tables and indexes, no rows).

- ``record_backtest``: Portfolio -> frames, validation, the run row, 1,000,000 trades and
  the daily rows through ``COPY`` (CSV written by Arrow), one transaction.
- floor: the same trade rows, already validated and rendered as the store's CSV, sent with
  one bare ``COPY trades ... FROM STDIN`` in one transaction into the same (indexed)
  table: what PostgreSQL itself takes. Also a ``COPY`` into the table without its indexes,
  to show what the three indexes cost.

Every figure is min and median of the same number of repeats.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import time
import uuid
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

import alphatrade_lab as atl
from alphatrade_lab.store.validate import to_arrow
from alphatrade_lab.testing import LocalPostgres

REPEATS = 3
_spec = importlib.util.spec_from_file_location("store_bench", Path(__file__).with_name(
    "store.py"))
assert _spec is not None and _spec.loader is not None
store_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(store_bench)


def fresh_database(admin: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin)
    return (f"postgresql://{info['user']}:{info['password']}@{info.get('host', '127.0.0.1')}:"
            f"{info.get('port', 5432)}/{name}")


def csv_bytes(rows: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(rows, sink, pacsv.WriteOptions(include_header=False))
    return sink.getvalue().to_pybytes()


def bare_copy(url: str, rows: pa.Table, data: bytes, drop_indexes: bool) -> float:
    atl.store.LabStore(url).close()  # the store's tables and indexes, empty
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("INSERT INTO runs (run_id, created_at, kind) VALUES ('bench', now(), 'x')")
        if drop_indexes:
            for (name,) in con.execute("SELECT indexname FROM pg_indexes WHERE tablename = "
                                       "'trades'").fetchall():
                con.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        cols = ", ".join(f'"{c}"' for c in rows.column_names)
        t0 = time.perf_counter()
        with con.transaction(), con.cursor().copy(
                f"COPY trades ({cols}) FROM STDIN (FORMAT csv)") as copy:
            for i in range(0, len(data), 1 << 20):
                copy.write(data[i:i + (1 << 20)])
        took = time.perf_counter() - t0
        assert con.execute("SELECT count(*) FROM trades").fetchone()[0] == rows.num_rows
    return took


def line(label: str, times: list[float], extra: str = "") -> None:
    print(f"{label}: min {min(times):.2f} s, median {statistics.median(times):.2f} s "
          f"({len(times)} runs){extra}")


def main(admin: str) -> None:
    frames = atl.backtest.portfolio_frames(store_bench.backtest_with_a_million_trades())
    trades = to_arrow("trades", frames["trades"], {"run_id": "bench", "strategy": "bench"})
    data = csv_bytes(trades)
    print(f"{trades.num_rows:,} trades ({trades.num_columns} columns, {len(data) / 2**20:.0f} "
          f"MiB of CSV), {len(frames['daily_performance']):,} daily rows")
    total, conv, floor, no_index = [], [], [], []
    for _ in range(REPEATS):
        pf = store_bench.backtest_with_a_million_trades()  # fresh: nothing cached
        t0 = time.perf_counter()
        atl.backtest.portfolio_frames(pf)
        conv.append(time.perf_counter() - t0)
        pf = store_bench.backtest_with_a_million_trades()
        store = atl.store.LabStore(fresh_database(admin))
        t0 = time.perf_counter()
        run = store.record_backtest(pf, strategy="bench")
        total.append(time.perf_counter() - t0)
        assert store.counts()["trades"] == trades.num_rows and store.runs()["run_id"][0] == run
        store.close()
        floor.append(bare_copy(fresh_database(admin), trades, data, drop_indexes=False))
        no_index.append(bare_copy(fresh_database(admin), trades, data, drop_indexes=True))
    line("record_backtest on PostgreSQL (run, trades, daily rows; one transaction)", total,
         f"; record_backtest/floor {min(total) / min(floor):.2f}x min, "
         f"{statistics.median(total) / statistics.median(floor):.2f}x median")
    line("  of which Portfolio -> frames", conv)
    line("floor: bare COPY of the same trade rows into the indexed table", floor)
    line("  bare COPY into the table without its indexes", no_index)


if __name__ == "__main__":
    if os.environ.get("ATL_TEST_POSTGRES_URL"):
        main(os.environ["ATL_TEST_POSTGRES_URL"])
    else:
        with LocalPostgres() as server:
            main(server.url)
