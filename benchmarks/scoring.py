"""Scoring speed: the streaming scorer's per-bar latency and the vectorized path's throughput.

Run with ``make bench`` or ``.venv/bin/python benchmarks/scoring.py``. A logistic regression
(standardised inputs) is trained on the default technical features of the first 20,000
minute bars of each sample symbol. Then:

- **vectorized**: ``technical`` + ``bundle.predict_proba`` + ``signals`` over the whole
  sample (5 symbols × 1 year of minute bars), best of 3 after a warm-up;
- **streaming, one bar**: ``StreamingScorer.update_one`` on 20,000 bars arriving
  interleaved in time (after 5,000 warm-up bars), median and 99th percentile latency;
- **streaming, batches**: ``StreamingScorer.update`` with 1,000-bar batches.

Most of the single-bar latency is scikit-learn's own per-call overhead in
``predict_proba``; the feature update itself is a few microseconds of numba.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import alphatrade_lab as atl


def main() -> None:
    bars = atl.data.load_sample()
    head = bars.groupby("symbol").head(20_000).reset_index(drop=True)
    X, y = atl.models.align(atl.features.technical(head),
                            atl.models.labels(head, horizon=15, threshold=0.5, vol_window=60))
    with threadpool_limits(1):
        bundle = atl.models.train(X, y, make_pipeline(StandardScaler(),
                                                      LogisticRegression(max_iter=1000)),
                                  n_splits=2, progress=False)

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
    print(f"vectorized: {len(bars):,} bars (features + predict_proba + signals) in "
          f"{best:.2f} s = {len(bars) / best / 1e6:.2f} M bars/s")

    live = bars.groupby("symbol").head(25_000).sort_values(["timestamp", "symbol"])
    records = live.to_dict("records")
    scorer = atl.models.StreamingScorer(bundle, threshold=0.4)
    with threadpool_limits(1):
        for rec in records[:5_000]:
            scorer.update_one(**rec)
        lat = np.empty(20_000)
        for k, rec in enumerate(records[5_000:25_000]):
            t0 = time.perf_counter()
            scorer.update_one(**rec)
            lat[k] = time.perf_counter() - t0
        row = np.zeros((1, len(bundle.feature_names)))
        skl = np.empty(2_000)
        for k in range(len(skl)):
            t0 = time.perf_counter()
            bundle.model.predict_proba(row)
            skl[k] = time.perf_counter() - t0
        print(f"streaming, one bar at a time: median {np.median(lat) * 1e6:.0f} µs, "
              f"p99 {np.percentile(lat, 99) * 1e6:.0f} µs per bar (20,000 bars); of which "
              f"sklearn predict_proba on one row: median {np.median(skl) * 1e6:.0f} µs")
        rest = live.iloc[25_000:]
        t0 = time.perf_counter()
        for start in range(0, len(rest), 1_000):
            scorer.update(rest.iloc[start: start + 1_000])
        dt = time.perf_counter() - t0
    print(f"streaming, 1,000-bar batches: {len(rest):,} bars in {dt:.2f} s = "
          f"{len(rest) / dt:,.0f} bars/s; state {scorer.state_bytes / 1024:.1f} KiB for "
          f"{len(scorer.symbols)} symbols")


if __name__ == "__main__":
    main()
