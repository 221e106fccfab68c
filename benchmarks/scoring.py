"""Scoring speed: the streaming scorer's per-bar latency and memory, compiled vs scikit-learn.

Run with ``make bench`` or ``.venv/bin/python benchmarks/scoring.py``. Two models are trained
on the default technical features of the first 20,000 minute bars of each sample symbol: a
logistic regression after a StandardScaler and a 100-tree random forest (max_depth 12).
For each model, after the same warm-up of 5,000 bars (4,000 as one batch, then 1,000 with
``update_one``):

- **compiled**: ``StreamingScorer.update_one`` (numba evaluation of the model) on
  1,000,000 sample bars arriving interleaved in time (plain Python values, timestamps as
  int ns): median and 99th percentile of each bar's whole path (features, alignment,
  probabilities, signal) and the growth of the process RSS (psutil) over the million bars;
- **scikit-learn**: the same scorer with ``compiled=False`` (``predict_proba`` per bar) on
  the first 100,000 of those bars for the logistic regression and the first 10,000 for
  the forest (at about 0.3 ms and 3 ms a bar, a million bars would take 5 minutes and an
  hour); its probabilities and directions are checked equal to the compiled run's on
  those bars (probabilities to 1e-12).

Then the vectorized path (``technical`` + ``predict_proba`` + ``signals`` over the whole
sample, best of 3 after a warm-up) and ``update`` with 1,000-bar batches over the rest of
the sample, for the logistic regression.
"""

from __future__ import annotations

import gc
import time

import numpy as np
import psutil
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import alphatrade_lab as atl

WARMUP, BARS, CHUNK = 5_000, 1_000_000, 20_000


def rows(columns, start, stop):
    """Bars ``start:stop`` as tuples of plain Python values (timestamps as int ns), made a
    chunk at a time so that the inputs do not weigh on the RSS being measured."""
    return zip(*(col[start:stop].tolist() for col in columns), strict=True)


def run(scorer, live, columns, n_bars, keep):
    """Warm up (``update`` on the first WARMUP - 1,000 bars, ``update_one`` on the next
    1,000), then time update_one on the next ``n_bars``.
    Returns the latencies (s), the RSS (bytes) after warm-up and after each 100,000 bars,
    and the probabilities and directions of the first ``keep`` timed bars."""
    proc = psutil.Process()
    scorer.update(live.iloc[:WARMUP - 1_000])
    for bar in rows(columns, WARMUP - 1_000, WARMUP):
        scorer.update_one(*bar)
    # Filled now, so that their pages are resident before the first RSS reading.
    lat = np.full(n_bars, np.nan)
    proba = np.full((keep, len(scorer.bundle.classes)), np.nan)
    direction = np.full(keep, 0, dtype=np.int64)
    gc.collect()
    rss = [proc.memory_info().rss]
    for start in range(0, n_bars, CHUNK):
        chunk = rows(columns, WARMUP + start, WARMUP + min(start + CHUNK, n_bars))
        for k, bar in enumerate(chunk, start):
            t0 = time.perf_counter()
            out = scorer.update_one(*bar)
            lat[k] = time.perf_counter() - t0
            if k < keep:
                proba[k], direction[k] = out["proba"], out["direction"]
        if (start + CHUNK) % 100_000 == 0:
            gc.collect()
            rss.append(proc.memory_info().rss)
    return lat, rss, proba, direction


def us(lat, q):
    return f"{np.percentile(lat, q) * 1e6:.1f} µs"


def compare(name, bundle, live, columns):
    n_skl = 100_000 if name.startswith("logistic") else 10_000
    fast = atl.models.StreamingScorer(bundle, threshold=0.4)
    assert fast.compiled_model is not None
    lat_c, rss, p_c, d_c = run(fast, live, columns, BARS, n_skl)
    lat_s, _, p_s, d_s = run(atl.models.StreamingScorer(bundle, threshold=0.4, compiled=False),
                             live, columns, n_skl, n_skl)
    err = np.abs(p_c - p_s).max()
    assert err <= 1e-12 and (d_c == d_s).all(), (err, (d_c != d_s).sum())
    growth = (max(rss) - rss[0]) / 2**20
    print(f"{name}:\n"
          f"  compiled:     p50 {us(lat_c, 50)}, p99 {us(lat_c, 99)} a bar over {BARS:,} bars; "
          f"RSS growth {growth:.1f} MB ({rss[0] / 2**20:.0f} MB after warm-up, max "
          f"{max(rss) / 2**20:.0f} MB)\n"
          f"  scikit-learn: p50 {us(lat_s, 50)}, p99 {us(lat_s, 99)} a bar over {n_skl:,} bars\n"
          f"  ratio (p50):  {np.median(lat_s) / np.median(lat_c):.1f}x; probabilities equal "
          f"to {err:.1e} and directions identical on {n_skl:,} bars")
    return fast


def main() -> None:
    bars = atl.data.load_sample()
    head = bars.groupby("symbol").head(20_000).reset_index(drop=True)
    X, y = atl.models.align(atl.features.technical(head),
                            atl.models.labels(head, horizon=15, threshold=0.5, vol_window=60))
    models = {
        "logistic regression (StandardScaler + LogisticRegression)":
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "random forest (100 trees, max_depth 12)":
            RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0),
    }
    with threadpool_limits(1):
        bundles = {name: atl.models.train(X, y, est, n_splits=2, progress=False)
                   for name, est in models.items()}
        live = bars.sort_values(["timestamp", "symbol"], ignore_index=True)
        columns = [live["timestamp"].array.asi8, live["symbol"].to_numpy(object),
                   *(live[c].to_numpy() for c in ("high", "low", "close", "volume"))]
        del head, X, y
        scorers = {name: compare(name, b, live, columns) for name, b in bundles.items()}

    bundle = next(iter(bundles.values()))

    def vectorized():
        F = atl.features.technical(bars, bundle.spec)
        return atl.models.signals(bundle, F, threshold=0.4)

    vectorized()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        vectorized()
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"vectorized (logistic regression): {len(bars):,} bars (features + predict_proba + "
          f"signals) in {best:.2f} s = {len(bars) / best / 1e6:.2f} M bars/s")

    scorer = next(iter(scorers.values()))
    rest = live.iloc[WARMUP + BARS:]
    t0 = time.perf_counter()
    for start in range(0, len(rest), 1_000):
        scorer.update(rest.iloc[start: start + 1_000])
    dt = time.perf_counter() - t0
    print(f"streaming, 1,000-bar batches (logistic regression, compiled): {len(rest):,} bars "
          f"in {dt:.2f} s = {len(rest) / dt:,.0f} bars/s; scorer state "
          f"{scorer.state_bytes / 1024:.1f} KiB for {len(scorer.symbols)} symbols")


if __name__ == "__main__":
    main()
