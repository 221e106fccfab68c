"""Drift report of 1,000,000 reference and 1,000,000 current rows × 50 features, all methods.

Run with ``make bench`` or ``.venv/bin/python benchmarks/drift.py [n_rows] [n_features]``.
``atl.monitoring.drift_report`` (numba kernels, every reference column sorted once and
shared by PSI, KS, Wasserstein and JS, features in parallel) against the same statistics
computed with scipy/numpy in a loop over features, in the same run and on the same data:

- KS: ``scipy.stats.ks_2samp`` (statistic and p-value, ``method="auto"``),
- Wasserstein: ``scipy.stats.wasserstein_distance`` / ``np.std(ref)``,
- PSI: ``np.quantile`` edges of the reference, ``np.searchsorted`` + ``np.bincount`` counts,
- JS: ``scipy.spatial.distance.jensenshannon`` of those counts.

Half the features drift (shifted, rescaled or reshaped), half do not. Our side is warmed up
once (numba cache, thread pool) on a small frame and then timed best of 3; the peer is timed
once (it takes about a minute). The results are compared, so the speed is not bought with
different numbers.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

import alphatrade_lab as atl

TARGET_SPEEDUP = 5.0
TARGET_SECONDS = 5.0


def make_frames(n: int, f: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = {}
    cur = {}
    for k in range(f):
        name = f"f{k:02d}"
        kind = k % 4
        if kind == 0:
            ref[name] = rng.standard_normal(n)
            cur[name] = rng.standard_normal(n) + (0.3 if k % 8 == 0 else 0.0)
        elif kind == 1:
            ref[name] = rng.standard_t(5, n)
            cur[name] = rng.standard_t(5, n) * (1.5 if k % 8 == 1 else 1.0)
        elif kind == 2:
            ref[name] = rng.lognormal(0.0, 0.5, n)
            cur[name] = rng.lognormal(0.02 if k % 8 == 2 else 0.0, 0.5, n)
        else:
            ref[name] = rng.uniform(-1, 1, n)
            cur[name] = rng.uniform(-1, 1.01 if k % 8 == 3 else 1, n)
    return pd.DataFrame(ref), pd.DataFrame(cur)


def scipy_report(ref: pd.DataFrame, cur: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """The same statistics with scipy/numpy, one feature at a time."""
    rows = []
    q = np.arange(1, bins) / bins
    for col in ref.columns:
        a = ref[col].to_numpy()
        b = cur[col].to_numpy()
        edges = np.unique(np.quantile(a, q))
        ca = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1)
        cb = np.bincount(np.searchsorted(edges, b, side="right"), minlength=len(edges) + 1)
        p = np.maximum(ca / ca.sum(), 1e-4)
        r = np.maximum(cb / cb.sum(), 1e-4)
        rows.append((col, "psi", float(np.sum((r - p) * np.log(r / p))), np.nan))
        res = stats.ks_2samp(a, b)
        rows.append((col, "ks", float(res.statistic), float(res.pvalue)))
        rows.append((col, "wasserstein", stats.wasserstein_distance(a, b) / np.std(a), np.nan))
        rows.append((col, "js", float(jensenshannon(ca, cb)), np.nan))
    return pd.DataFrame(rows, columns=["feature", "method", "statistic", "p_value"])


def main(n: int = 1_000_000, f: int = 50) -> None:
    print(f"building {n:,} reference and {n:,} current rows × {f} features ...", flush=True)
    ref, cur = make_frames(n, f)
    small_ref, small_cur = make_frames(2000, 4, seed=1)
    t0 = time.perf_counter()
    atl.monitoring.drift_report(small_ref, small_cur)
    print(f"warm-up (imports, numba cache) {time.perf_counter() - t0:.2f} s")

    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        ours = atl.monitoring.drift_report(ref, cur)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"drift_report: {best:.2f} s (best of 3: {', '.join(f'{t:.2f}' for t in times)})",
          flush=True)

    t0 = time.perf_counter()
    peer = scipy_report(ref, cur)
    peer_time = time.perf_counter() - t0
    print(f"scipy loop:   {peer_time:.2f} s")

    merged = ours.merge(peer, on=["feature", "method"], suffixes=("", "_scipy"))
    assert len(merged) == len(peer) == len(ours) == 4 * f
    stat_err = float(np.max(np.abs(merged["statistic"] - merged["statistic_scipy"])))
    p_err = float(np.nanmax(np.abs(merged["p_value"] - merged["p_value_scipy"])))
    print(f"max |statistic difference| {stat_err:.2e}, max |p-value difference| {p_err:.2e}")
    print(f"drifted features by method: "
          f"{ours.groupby('method', sort=False)['drifted'].sum().to_dict()}")
    speedup = peer_time / best
    print(f"speed-up {speedup:.1f}x (target >= {TARGET_SPEEDUP:.0f}x), "
          f"time {best:.2f} s (target < {TARGET_SECONDS:.0f} s)")
    ok = (speedup >= TARGET_SPEEDUP and best < TARGET_SECONDS and stat_err < 1e-9
          and p_err < 1e-6)
    if not ok:
        sys.exit("drift benchmark missed its target")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
