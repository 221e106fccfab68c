"""Data layer timings: load_sample() warm, and load + validate of a 10-million-row Parquet file.

Run with ``make bench`` or ``.venv/bin/python benchmarks/data_load.py``. The peer is plain
``pandas.read_parquet`` of the same file in the same run, so the ratio shows what validation
costs on top of reading.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

import alphatrade_lab as atl


def best_of(fn, repeat: int = 3) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    atl.data.load_sample()  # warm: imports, numba cache, OS file cache
    best, median = best_of(atl.data.load_sample, 5)
    print(f"load_sample() warm: best {best:.3f} s, median {median:.3f} s (target < 1 s)")

    sample = atl.data.load_sample()
    copies = []
    for k in range(4):  # 4 × 2.63M rows, renamed so (symbol, timestamp) stays unique
        copies.append(sample.assign(symbol=f"S{k}_" + sample["symbol"]))
    big = pd.concat(copies, ignore_index=True).head(10_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars_10m.parquet"
        big.to_parquet(path, index=False)
        del big, copies
        size = path.stat().st_size / 2**20
        ours, _ = best_of(lambda: atl.data.load(path))
        peer, _ = best_of(lambda: pd.read_parquet(path))
    print(f"10,000,000-row Parquet ({size:.0f} MiB): atl.data.load (read + validate) {ours:.2f} s "
          f"(target < 10 s); pandas.read_parquet alone {peer:.2f} s; ratio {ours / peer:.2f}x")


if __name__ == "__main__":
    main()
