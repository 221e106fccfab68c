"""MA-crossover sweeps: alphatrade_lab's fused kernel against vectorbt, in one process.

Run with ``make bench`` or ``.venv/bin/python benchmarks/sweep_vs_vectorbt.py [--quick]``.
For each case both libraries sweep every fast < slow pair of simple moving averages on the
same synthetic close (fees 0.001, long only, fills at the close) and report total return,
Sharpe, max drawdown and trade count. vectorbt: ``MA.run_combs`` + ``ma_crossed_above`` /
``ma_crossed_below`` + ``Portfolio.from_signals``. Both are warmed up first (numba
compilation); both then run ``--repeat`` times and the min and median of each are printed
(the speed-up is quoted on both); results are checked equal. Peak
memory is the process's resident set size sampled every 2 ms during a run, less the size
before it (numba's allocations are invisible to tracemalloc, so RSS is the fair measure for
both).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import threading
import time

import numpy as np
import pandas as pd
import psutil

import alphatrade_lab as atl


class PeakRSS:
    """Peak resident memory above the starting level while the block runs."""

    def __enter__(self):
        gc.collect()
        self._proc = psutil.Process()
        self.base = self._proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
        self.mb = (self.peak - self.base) / 2**20


def synthetic_close(n_bars: int, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2020-01-01", periods=n_bars, freq="1h", tz="UTC")
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_bars))), index=index,
                     name="close")


def run_ours(close: pd.Series, windows: range) -> pd.DataFrame:
    return atl.backtest.sweep_ma_cross(close, fast=windows, slow=windows, fees=0.001,
                                       progress=False,
                                       metrics=("total_return", "sharpe", "max_drawdown",
                                                "trade_count"))


def run_vectorbt(close: pd.Series, windows: range) -> pd.DataFrame:
    import vectorbt as vbt

    fast, slow = vbt.MA.run_combs(close, window=list(windows), r=2, short_names=["fast", "slow"])
    entries = fast.ma_crossed_above(slow)
    exits = fast.ma_crossed_below(slow)
    pf = vbt.Portfolio.from_signals(close, entries, exits, fees=0.001, freq="1h")
    out = pd.DataFrame({"total_return": pf.total_return(), "sharpe": pf.sharpe_ratio(),
                        "max_drawdown": pf.max_drawdown(), "trade_count": pf.trades.count()})
    out.index = out.index.set_names(["fast", "slow"])
    return out


def measure(fn, close, windows, repeat):
    """(min time, median time, peak memory, result) of ``repeat`` runs."""
    times, peak, result = [], 0.0, None
    for _ in range(repeat):
        result = None
        gc.collect()
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            result = fn(close, windows)
            times.append(time.perf_counter() - t0)
        peak = max(peak, mem.mb)
    return min(times), statistics.median(times), peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases only (a smoke run)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed runs of each library (after a warm-up)")
    args = parser.parse_args()
    cases = [(10_000, range(2, 102)), (100_000, range(2, 47))]
    if args.quick:
        cases = [(2_000, range(2, 22))]

    warm = synthetic_close(500, seed=1)
    run_ours(warm, range(2, 6))
    run_vectorbt(warm, range(2, 6))

    rows = []
    for n_bars, windows in cases:
        close = synthetic_close(n_bars)
        t_ours, med_ours, m_ours, ours = measure(run_ours, close, windows, args.repeat)
        t_vbt, med_vbt, m_vbt, theirs = measure(run_vectorbt, close, windows, args.repeat)
        joined = ours.join(theirs.add_suffix("_vbt"), how="inner")
        diff = float(np.nanmax(np.abs(joined["total_return"] - joined["total_return_vbt"])))
        dd_diff = float(np.nanmax(np.abs(joined["max_drawdown"] - joined["max_drawdown_vbt"])))
        trades_equal = bool((joined["trade_count"] == joined["trade_count_vbt"]).all())
        pairs = len(ours)
        rows.append({
            "case": f"{n_bars:,} bars x {pairs:,} pairs",
            "ours min [s]": round(t_ours, 3),
            "ours median [s]": round(med_ours, 3),
            "vectorbt min [s]": round(t_vbt, 2),
            "vectorbt median [s]": round(med_vbt, 2),
            "speed-up (min)": round(t_vbt / t_ours, 1),
            "speed-up (median)": round(med_vbt / med_ours, 1),
            "ours peak [MB]": round(m_ours, 1),
            "vectorbt peak [MB]": round(m_vbt, 0),
            "memory ratio": round(m_vbt / max(m_ours, 1.0), 1),
            "bar-combos/s (ours)": f"{n_bars * pairs / t_ours:.2e}",
            "max |total return diff|": f"{diff:.1e}",
            "max |max drawdown diff|": f"{dd_diff:.1e}",
            "trade counts equal": trades_equal and len(joined) == pairs,
        })
    table = pd.DataFrame(rows).set_index("case")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.T.to_string())
    print("\ntargets: speed-up >= 100x, memory ratio >= 20x, >= 3e8 bar-combos/s")


if __name__ == "__main__":
    main()
