"""Time alphatrade_lab's from_signals against vectorbt's on the same random inputs.

Warm timings: each call is run once (compilation, caches), then the best of 3
runs is kept. Cold timings: the first call in a fresh Python process, with the
numba caches already on disk, measured in a subprocess (imports excluded and
reported separately).

Run from the repository root: ``python benchmarks/backtest_vs_vectorbt.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphatrade_lab.backtest import from_signals  # noqa: E402

COSTS = {"fees": 0.001, "fixed_fees": 0.0, "slippage": 0.0005}
CASES = [(1, 1_000_000), (100, 100_000)]

_COLD = """
import json, sys, time
import numpy as np, pandas as pd
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
{imp}
t1 = time.perf_counter()
rng = np.random.default_rng(0)
n, k = 10_000, 4
idx = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, k)), axis=0)), index=idx)
entries = pd.DataFrame(rng.random((n, k)) < 0.01, index=idx)
exits = pd.DataFrame(rng.random((n, k)) < 0.01, index=idx)
t2 = time.perf_counter()
{call}
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "first_call": t3 - t2}}))
"""

OURS_COLD = dict(imp="from alphatrade_lab.backtest import from_signals",
                 call="pf = from_signals(close, entries, exits, fees=0.001); pf.equity")
VBT_COLD = dict(imp="import vectorbt as vbt",
                call="pf = vbt.Portfolio.from_signals(close, entries, exits, fees=0.001, "
                     "freq='1min'); pf.value()")


def make_inputs(k: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC")
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.001, (n, k)), axis=0)),
                         index=idx)
    entries = pd.DataFrame(rng.random((n, k)) < 0.01, index=idx)
    exits = pd.DataFrame(rng.random((n, k)) < 0.01, index=idx)
    return close, entries, exits


def best_of(fn, repeat: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cold(spec: dict) -> dict:
    code = _COLD.format(root=str(ROOT), **spec)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # warm disk
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import vectorbt as vbt

    rows = []
    for k, n in CASES:
        close, entries, exits = make_inputs(k, n)
        ours = best_of(lambda c=close, e=entries, x=exits:
                       from_signals(c, e, x, direction="both", **COSTS))
        summary = best_of(lambda c=close, e=entries, x=exits:
                          from_signals(c, e, x, direction="both", record="summary", **COSTS))
        theirs = best_of(lambda c=close, e=entries, x=exits:
                         vbt.Portfolio.from_signals(c, e, x, direction="both", freq="1min",
                                                    **COSTS))
        # Same answer, or the timing means nothing.
        pf = from_signals(close, entries, exits, direction="both", **COSTS)
        vpf = vbt.Portfolio.from_signals(close, entries, exits, direction="both", freq="1min",
                                         **COSTS)
        err = float(np.max(np.abs(pf.equity.to_numpy() / vpf.value().to_numpy() - 1)))
        rows.append({"case": f"{k} col x {n:,} bars", "ours full [s]": ours,
                     "ours summary [s]": summary, "vectorbt [s]": theirs,
                     "speedup full": theirs / ours, "speedup summary": theirs / summary,
                     "max rel equity diff": err})
    table = pd.DataFrame(rows).set_index("case")
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print("Warm (best of 3 after one warm-up run), direction='both', fees + slippage:")
        print(table.to_string())
    ours_cold, vbt_cold = cold(OURS_COLD), cold(VBT_COLD)
    cold_table = pd.DataFrame([
        {"library": "alphatrade_lab", "import [s]": ours_cold["import"],
         "first call [s]": ours_cold["first_call"]},
        {"library": "vectorbt", "import [s]": vbt_cold["import"],
         "first call [s]": vbt_cold["first_call"]},
    ]).set_index("library")
    with pd.option_context("display.float_format", "{:.3f}".format):
        print("\nFresh process, numba cache on disk (4 columns x 10,000 bars):")
        print(cold_table.to_string())
    ok_speed = (table["speedup full"] >= 5).all()
    ok_cold = ours_cold["first_call"] < 1.0
    print(f"\ntarget >= 5x faster (full): {'met' if ok_speed else 'NOT met'}; "
          f"first call < 1 s: {'met' if ok_cold else 'NOT met'}")


if __name__ == "__main__":
    main()
