"""Benchmark: ``GET /api/runs/{id}/equity`` on a 1,000,000-row run, DuckDB and PostgreSQL.

Downsampled (min and max per time bucket, 2000 points a portfolio) and full (every row),
through the ASGI app (no network), on the DuckDB store and on the PostgreSQL store (a
``LocalPostgres`` started for the run, or ``--pg-url``) holding the same rows, against
reading the run's equity with pandas (``store.equity(run_id)``) and downsampling it there.
Each repeat measures every case once, in turn (the peers share the machine's load); the
table gives the min and median of ``--repeat`` and the ratios of the minima.

    .venv/bin/python benchmarks/service_rest.py [--rows 1000000] [--portfolios 2] [--file]
        [--repeat 5] [--pg-url postgresql://...] [--no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from alphatrade_lab.service import create_app
from alphatrade_lab.store import LabStore


def populate(store: LabStore, rows: int, portfolios: int, run_id: str = "big") -> None:
    """``rows`` equity rows of a random walk, split over ``portfolios`` portfolios."""
    rng = np.random.default_rng(0)
    per = rows // portfolios
    frames = []
    for p in range(portfolios):
        t = pd.date_range("2020-01-01", periods=per, freq="1min", tz="UTC")
        eq = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, per)))
        frames.append(pd.DataFrame({"run_id": run_id, "timestamp": t, "portfolio": f"P{p}",
                                    "equity": eq, "cash": np.nan}))
    store.record_run("paper", run_id=run_id)
    store.record_live(run_id, equity=pd.concat(frames, ignore_index=True))


def timed(cases: dict[str, Any], repeat: int) -> dict[str, list[float]]:
    """Seconds of each case, ``repeat`` times, the cases interleaved."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def pandas_downsample(store: LabStore, run_id: str, points: int) -> pd.DataFrame:
    """The same min/max-per-bucket downsampling over the whole frame in pandas."""
    eq = store.equity(run_id)
    out = []
    for _, part in eq.groupby("portfolio"):
        t = part["timestamp"].astype("int64").to_numpy()
        width = max(t.max() - t.min(), 1)
        bucket = np.minimum((t - t.min()) * (points // 2) // width, points // 2 - 1)
        g = part.assign(bucket=bucket).groupby("bucket")["equity"]
        out.append(part.loc[np.union1d(g.idxmin(), g.idxmax())])
    return pd.concat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--portfolios", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--file", action="store_true", help="a DuckDB file, not :memory:")
    parser.add_argument("--pg-url", help="a PostgreSQL database for the store (default: a "
                        "LocalPostgres for this run)")
    parser.add_argument("--no-pg", action="store_true", help="DuckDB only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        stores = {"duckdb": LabStore(Path(tmp) / "lab.duckdb" if args.file else ":memory:")}
        if not args.no_pg:
            url = args.pg_url
            if url is None:
                from alphatrade_lab.testing import LocalPostgres

                url = stack.enter_context(LocalPostgres()).create_database("bench")
            stores["postgres"] = LabStore(url)
        cases: dict[str, Any] = {}
        for name, store in stores.items():
            t0 = time.perf_counter()
            populate(store, args.rows, args.portfolios)
            print(f"{name} store {store.path}: {args.rows:,} equity rows in "
                  f"{args.portfolios} portfolios written in {time.perf_counter() - t0:.1f} s")
            app = create_app(store)

            def call(url: str, app: Any = app) -> httpx.Response:
                async def get() -> httpx.Response:
                    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                 base_url="http://bench") as client:
                        r = await client.get(url)
                        r.raise_for_status()
                        return r
                return asyncio.run(get())

            down = call("/api/runs/big/equity").json()
            full = call("/api/runs/big/equity?full=true")
            print(f"  downsampled: {sum(len(s['equity']) for s in down['series'])} rows out; "
                  f"full: {sum(len(s['equity']) for s in full.json()['series']):,} rows, "
                  f"{len(full.content) / 1e6:.0f} MB")
            cases[f"{name}: GET /equity (downsampled)"] = partial(call, "/api/runs/big/equity")
            cases[f"{name}: GET /equity?full=true"] = partial(call,
                                                              "/api/runs/big/equity?full=true")
            cases[f"{name}: pandas store.equity(run) read"] = partial(store.equity, "big")
            cases[f"{name}: pandas read + same downsampling"] = partial(
                pandas_downsample, store, "big", 2000)
        times = timed(cases, args.repeat)
        print(f"\n{'case':52s} {'min ms':>9s} {'median ms':>10s}   ({args.repeat} repeats)")
        for name, ts in times.items():
            print(f"{name:52s} {min(ts) * 1e3:9.1f} {np.median(ts) * 1e3:10.1f}")
        best = {name: min(ts) for name, ts in times.items()}
        for name in stores:
            down, full = best[f"{name}: GET /equity (downsampled)"], \
                best[f"{name}: GET /equity?full=true"]
            print(f"{name}: pandas read / downsampled endpoint "
                  f"{best[f'{name}: pandas store.equity(run) read'] / down:.1f}x, pandas "
                  f"read+downsample / endpoint "
                  f"{best[f'{name}: pandas read + same downsampling'] / down:.1f}x, "
                  f"full / downsampled {full / down:.1f}x")
        if "postgres" in stores:
            ratios = [best[f"postgres: {case}"] / best[f"duckdb: {case}"]
                      for case in ("GET /equity (downsampled)", "GET /equity?full=true")]
            print(f"postgres / duckdb (min): downsampled {ratios[0]:.1f}x, "
                  f"full {ratios[1]:.1f}x")
        for store in stores.values():
            store.close()


if __name__ == "__main__":
    main()
