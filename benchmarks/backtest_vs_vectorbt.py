"""Time alphatrade_lab's from_signals against vectorbt's on the same random inputs.

Warm timings: each side runs once (compilation, caches), then 5 timed runs; min and
median are printed for both, and the equity curves are checked equal. The fair,
engine-to-engine comparison uses a timezone-naive index: with a timezone-aware one,
vectorbt (1.x on pandas 3) spends most of its time turning the index into an object
array, which says nothing about its simulation; that case is reported second.

Fresh process: ``import alphatrade_lab`` (or ``vectorbt``) plus the first
``from_signals`` on 1,000 bars, with the numba cache on disk (warm) and with an empty
one (cold: everything compiles), and what the imports cost that no library can avoid
(numpy, pandas, numba).

Run from the repository root: ``python benchmarks/backtest_vs_vectorbt.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphatrade_lab.backtest import from_signals  # noqa: E402

COSTS = {"fees": 0.001, "fixed_fees": 0.0, "slippage": 0.0005}
CASES = [(1, 1_000_000), (100, 100_000)]

_FRESH = """
import json, time
t0 = time.perf_counter()
import numpy as np, pandas as pd
{imp}
t1 = time.perf_counter()
rng = np.random.default_rng(0)
n = 1_000
idx = pd.date_range("2024-01-01", periods=n, freq="1min")
close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), index=idx)
entries = pd.Series(rng.random(n) < 0.02, index=idx)
exits = pd.Series(rng.random(n) < 0.02, index=idx)
t2 = time.perf_counter()
{call}
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "first_call": t3 - t2, "total": t3 - t0}}))
"""

FRESH = {
    "alphatrade_lab": dict(imp="import alphatrade_lab as atl",
                           call="pf = atl.backtest.from_signals(close, entries, exits, "
                                "fees=0.001); pf.equity"),
    "vectorbt": dict(imp="import vectorbt as vbt",
                     call="pf = vbt.Portfolio.from_signals(close, entries, exits, fees=0.001, "
                          "freq='1min'); pf.value()"),
    "numpy + pandas + numba only": dict(imp="import numba", call="pass"),
}


def make_inputs(k: int, n: int, tz: str | None, seed: int = 0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2020-01-01", periods=n, freq="1min", tz=tz)
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.001, (n, k)), axis=0)),
                         index=idx)
    entries = pd.DataFrame(rng.random((n, k)) < 0.01, index=idx)
    exits = pd.DataFrame(rng.random((n, k)) < 0.01, index=idx)
    return close, entries, exits


def timed(fn, repeat: int = 5) -> tuple[float, float]:
    """(min, median) of ``repeat`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def fresh(spec: dict, cache_dir: str | None) -> dict:
    """One fresh interpreter: the warm case runs once first to fill the disk cache."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    code = _FRESH.format(**spec)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env=env, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def warm_table(vbt) -> pd.DataFrame:
    rows = []
    for tz, repeat in ((None, 5), ("UTC", 3)):  # vectorbt takes ~20 s a run with a tz
        for k, n in CASES:
            close, entries, exits = make_inputs(k, n, tz)
            ours = timed(lambda c=close, e=entries, x=exits:
                         from_signals(c, e, x, direction="both", **COSTS), repeat)
            summary = timed(lambda c=close, e=entries, x=exits:
                            from_signals(c, e, x, direction="both", record="summary", **COSTS),
                            repeat)
            theirs = timed(lambda c=close, e=entries, x=exits:
                           vbt.Portfolio.from_signals(c, e, x, direction="both", freq="1min",
                                                      **COSTS), repeat)
            # Same answer, or the timing means nothing.
            pf = from_signals(close, entries, exits, direction="both", **COSTS)
            vpf = vbt.Portfolio.from_signals(close, entries, exits, direction="both",
                                             freq="1min", **COSTS)
            err = float(np.max(np.abs(pf.equity.to_numpy() / vpf.value().to_numpy() - 1)))
            rows.append({"index": "tz-aware (UTC)" if tz else "tz-naive (fair)",
                         "case": f"{k} col x {n:,} bars",
                         "ours min [s]": ours[0], "ours median [s]": ours[1],
                         "ours summary min [s]": summary[0],
                         "vectorbt min [s]": theirs[0], "vectorbt median [s]": theirs[1],
                         "ratio (min)": theirs[0] / ours[0],
                         "ratio (median)": theirs[1] / ours[1], "max rel equity diff": err})
    return pd.DataFrame(rows).set_index(["index", "case"])


def main() -> None:
    import vectorbt as vbt

    table = warm_table(vbt)
    with pd.option_context("display.width", 250, "display.float_format", "{:.4g}".format):
        print("Warm (min and median of 5 runs, 3 with a tz, after a warm-up run, both sides), "
              "direction='both', fees + slippage:")
        print(table.to_string())
    rows = []
    with tempfile.TemporaryDirectory() as empty:
        for name, spec in FRESH.items():
            fresh(spec, None)  # fills the on-disk cache
            warm = fresh(spec, None)
            cold = fresh(spec, tempfile.mkdtemp(dir=empty))
            rows.append({"library": name, "import [s]": warm["import"],
                         "first call, warm cache [s]": warm["first_call"],
                         "total, warm cache [s]": warm["total"],
                         "total, cold cache [s]": cold["total"]})
    fresh_table = pd.DataFrame(rows).set_index("library")
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print("\nFresh process: import + first from_signals on 1,000 bars:")
        print(fresh_table.to_string())
    fair = table.xs("tz-naive (fair)", level="index")
    warm_total = fresh_table.loc["alphatrade_lab", "total, warm cache [s]"]
    print(f"\nfair warm ratio (min) {fair['ratio (min)'].min():.1f}x to "
          f"{fair['ratio (min)'].max():.1f}x; fresh process with a warm cache "
          f"{warm_total:.2f} s (goal < 1 s: {'met' if warm_total < 1.0 else 'NOT met'}), "
          f"vectorbt {fresh_table.loc['vectorbt', 'total, warm cache [s]']:.2f} s")


if __name__ == "__main__":
    main()
