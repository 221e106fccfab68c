"""Benchmark: ``GET /api/runs/{id}/equity`` on a 1,000,000-row run.

Downsampled (DuckDB: min and max per time bucket, 2000 points a portfolio) and full
(every row), through the ASGI app (no network), against reading the run's equity with
pandas (``store.equity(run_id)``) and downsampling it there. Prints each time (best of
``--repeat``) and the ratios.

    .venv/bin/python benchmarks/service_rest.py [--rows 1000000] [--portfolios 2] [--file]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
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


def best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


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
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lab.duckdb" if args.file else ":memory:"
        store = LabStore(path)
        t0 = time.perf_counter()
        populate(store, args.rows, args.portfolios)
        print(f"store {path}: {args.rows:,} equity rows in {args.portfolios} portfolios "
              f"written in {time.perf_counter() - t0:.1f} s")
        app = create_app(store)

        async def get(url: str) -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://bench") as client:
                r = await client.get(url)
                r.raise_for_status()
                return r

        def call(url: str) -> httpx.Response:
            return asyncio.run(get(url))

        down = call("/api/runs/big/equity").json()
        n_down = sum(len(s["equity"]) for s in down["series"])
        full = call("/api/runs/big/equity?full=true")
        n_full = sum(len(s["equity"]) for s in full.json()["series"])
        t_down = best(lambda: call("/api/runs/big/equity"), args.repeat)
        t_full = best(lambda: call("/api/runs/big/equity?full=true"), args.repeat)
        t_pd = best(lambda: store.equity("big"), args.repeat)
        t_pd_down = best(lambda: pandas_downsample(store, "big", 2000), args.repeat)
        print(f"GET /equity (downsampled, {n_down} rows out): {t_down * 1e3:8.1f} ms")
        print(f"GET /equity?full=true ({n_full:,} rows, {len(full.content) / 1e6:.0f} MB): "
              f"{t_full * 1e3:8.1f} ms")
        print(f"pandas store.equity(run) read only:        {t_pd * 1e3:8.1f} ms")
        print(f"pandas read + same downsampling:           {t_pd_down * 1e3:8.1f} ms")
        print(f"ratios: pandas read / downsampled endpoint {t_pd / t_down:.1f}x, "
              f"pandas read+downsample / endpoint {t_pd_down / t_down:.1f}x, "
              f"full / downsampled {t_full / t_down:.1f}x")
        store.close()


if __name__ == "__main__":
    main()
