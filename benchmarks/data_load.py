"""Data layer timings: load_sample() warm, and load + validate of a 10-million-row Parquet file.

Run with ``make bench`` or ``.venv/bin/python benchmarks/data_load.py``. The peer is plain
``pandas.read_parquet`` of the same file in the same run, so the ratio shows what validation
costs on top of reading; both are warmed up, run the same number of times (min and median
printed) and checked to return the same bars.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

import alphatrade_lab as atl


def best_of(fn, repeat: int = 3) -> tuple[float, float]:
    fn()  # warm-up: imports, numba cache, OS file cache
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
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
        ours, ours_med = best_of(lambda: atl.data.load(path))
        peer, peer_med = best_of(lambda: pd.read_parquet(path))
        mine, theirs = atl.data.load(path), pd.read_parquet(path)
    # The same bars: load sorts by symbol and time and types the columns; compare values.
    theirs = theirs.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
    mine = mine.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine[list(theirs.columns)], theirs, check_dtype=False)
    print(f"10,000,000-row Parquet ({size:.0f} MiB), same bars on both sides: atl.data.load "
          f"(read + validate) min {ours:.2f} s, median {ours_med:.2f} s (target < 10 s); "
          f"pandas.read_parquet alone min {peer:.2f} s, median {peer_med:.2f} s; ratio "
          f"{ours / peer:.2f}x (min), {ours_med / peer_med:.2f}x (median)")


if __name__ == "__main__":
    main()
