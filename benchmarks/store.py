"""Lab store timings: store a backtest of 1,000,000 trades; write 1,000,000 trades, read them
back by run and by symbol.

Run with ``make bench`` or ``.venv/bin/python benchmarks/store.py``. The write is one
``LabStore.record_trades`` call (validation, Arrow conversion, one transaction, close and
checkpoint of the file), target < 3 s. The peer is a bare DuckDB ``INSERT ... SELECT`` of
the same rows from a registered Arrow table into an empty file, i.e. what the store's
validation and bookkeeping cost on top of DuckDB itself.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

import alphatrade_lab as atl

N, RUNS, SYMBOLS = 1_000_000, 10, 20


def best_of(fn, repeat: int = 3) -> tuple[float, float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), out


def make_trades(run_ids: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    entry = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.integers(0, 365 * 24 * 60, N)), unit="min")
    entry_px = rng.uniform(10, 500, N)
    exit_px = entry_px * (1 + rng.normal(0, 0.02, N))
    qty = rng.uniform(0.1, 10, N)
    side = np.where(rng.random(N) < 0.7, "long", "short")
    sign = np.where(side == "long", 1.0, -1.0)
    pnl = sign * (exit_px - entry_px) * qty
    return pd.DataFrame({
        "run_id": np.repeat(np.asarray(run_ids, dtype=object), N // len(run_ids)),
        "symbol": np.array([f"S{i:02d}" for i in range(SYMBOLS)], dtype=object)[
            rng.integers(0, SYMBOLS, N)],
        "side": side, "quantity": qty, "entry_time": entry,
        "exit_time": entry + pd.to_timedelta(rng.integers(1, 600, N), unit="min"),
        "entry_price": entry_px, "exit_price": exit_px, "pnl": pnl,
        "pnl_pct": pnl / (entry_px * qty), "fees": entry_px * qty * 0.002, "status": "closed",
        "strategy": "bench", "confidence": rng.uniform(0, 1, N),
    })


def backtest_with_a_million_trades() -> atl.backtest.Portfolio:
    """10 symbols x 200,000 minute bars, in and out every other bar: 1,000,000 trades."""
    n, k = 200_000, 10
    rng = np.random.default_rng(0)
    idx = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, (n, k)), axis=0)),
                         index=idx, columns=[f"S{j}" for j in range(k)])
    entries = np.zeros((n, k), dtype=bool)
    entries[0::2] = True
    # tiny fees: real ones would eat the cash long before the millionth trade
    return atl.backtest.from_signals(close, entries, ~entries, fees=1e-6)


def record_backtest_timings(tmp: str) -> None:
    frames = atl.backtest.portfolio_frames(backtest_with_a_million_trades())
    n_trades = len(frames["trades"])
    conv, total, floor = [], [], []
    for k in range(3):  # a fresh Portfolio each time: nothing of the conversion is cached
        pf = backtest_with_a_million_trades()
        t0 = time.perf_counter()
        atl.backtest.portfolio_frames(pf)
        conv.append(time.perf_counter() - t0)
        pf = backtest_with_a_million_trades()
        store = atl.store.LabStore(Path(tmp) / f"bt{k}.duckdb")
        t0 = time.perf_counter()
        store.record_backtest(pf, strategy="bench")
        total.append(time.perf_counter() - t0)
        store = atl.store.LabStore(Path(tmp) / f"tr{k}.duckdb")
        run = store.record_run("bench")
        t0 = time.perf_counter()
        store.record_trades(frames["trades"], run_id=run, strategy="bench")
        floor.append(time.perf_counter() - t0)
    print(f"record_backtest of a portfolio with {n_trades:,} trades (run, trades, "
          f"{len(frames['daily_performance']):,} daily rows, one transaction): best "
          f"{min(total):.2f} s, median {statistics.median(total):.2f} s (target < 1.5 s)")
    print(f"  of which Portfolio -> frames: best {min(conv):.2f} s, median "
          f"{statistics.median(conv):.2f} s")
    print(f"  floor: record_trades of the same trade rows: best {min(floor):.2f} s "
          f"(record_backtest/record_trades {min(total) / min(floor):.2f}x)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        record_backtest_timings(tmp)
        times = []
        for k in range(3):  # a fresh file each time: the write always starts empty
            store = atl.store.LabStore(Path(tmp) / f"lab{k}.duckdb")
            run_ids = [store.record_run("bench", {"k": k, "i": i}) for i in range(RUNS)]
            trades = make_trades(run_ids)
            t0 = time.perf_counter()
            store.record_trades(trades)
            times.append(time.perf_counter() - t0)
        write = min(times)
        print(f"record_trades of {N:,} trades ({len(trades.columns)} columns, one transaction): "
              f"best {write:.2f} s, median {statistics.median(times):.2f} s (target < 3 s)")

        peer_times = []
        for k in range(3):
            con = duckdb.connect(str(Path(tmp) / f"peer{k}.duckdb"))
            con.execute(atl.store.create_table_sql("trades"))
            arrow = pa.Table.from_pandas(trades, preserve_index=False)
            t0 = time.perf_counter()
            con.register("incoming", arrow)
            cols = ", ".join(arrow.column_names)
            con.execute(f"INSERT INTO trades ({cols}) SELECT {cols} FROM incoming")
            con.close()
            peer_times.append(time.perf_counter() - t0)
        print(f"peer: bare DuckDB insert of the same Arrow table + close: "
              f"best {min(peer_times):.2f} s (store/peer {write / min(peer_times):.1f}x)")

        size = (Path(tmp) / "lab0.duckdb").stat().st_size / 2**20
        print(f"file size with {N:,} trades: {size:.0f} MiB")

        store = atl.store.LabStore(Path(tmp) / "lab0.duckdb", read_only=True)
        run = store.runs()["run_id"].iloc[3]
        best, med, got = best_of(lambda: store.trades(run_id=run))
        print(f"trades(run_id=...) -> {len(got):,} rows: best {best:.3f} s, median {med:.3f} s")
        best, med, got = best_of(lambda: store.trades(symbol="S07"))
        print(f"trades(symbol='S07') -> {len(got):,} rows: best {best:.3f} s, "
              f"median {med:.3f} s")
        best, med, got = best_of(lambda: store.trades())
        print(f"trades() all -> {len(got):,} rows: best {best:.3f} s, median {med:.3f} s")
        best, med, got = best_of(lambda: store.query(
            "SELECT symbol, count(*) AS n, sum(pnl) AS pnl FROM trades WHERE run_id = ? "
            "GROUP BY symbol", [run]))
        print(f"query: per-symbol pnl of one run ({len(got)} rows): best {best:.3f} s")


if __name__ == "__main__":
    main()
