"""The live engine's own speed: per-bar work, replay throughput and memory (issue 18).

Run with ``.venv/bin/python benchmarks/live_engine.py`` (``--bars 1000000`` for the full
replay; the default is 200,000 bars). An exported model (scaler + logistic regression on
15-minute features) trades 5 symbols of 1-minute bars on the paper broker, with the lab
store (a DuckDB file) recording orders, fills, equity, positions and signals in batches.

Printed (each figure as the min / median of ``--repeats`` runs, the configurations and
the peer interleaved; bars a second from the min / median time):
1. the engine's work per timestamp (5 bars: strategy update, risk check, paper fills,
   records handed to the store writer), p50/p99/max from the engine's own timer, with and
   without pre-trade limits;
2. replay throughput in bars a second, end to end (feed, engine, store writes up to the
   last one; not reading the result back), against a peer measured in the same run: the
   same bars scored by the model's streaming scorer alone, one ``update_one`` call a bar
   (the engine's strategy scores a timestamp's 5 bars in one ``update_arrays`` call, which
   costs less than 5 single ones: the engine can beat this peer);
3. RSS growth from the first 10% of the replay to its end (the store holds the rows; the
   engine keeps only its state).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd
import psutil

import alphatrade_lab as atl
from alphatrade_lab.live import Engine, ModelStrategy, PaperBroker, ReplayFeed


def sample_bars(n_bars: int) -> pd.DataFrame:
    """``n_bars`` 1-minute bars of 5 symbols: the sample year, repeated with shifted times
    when more are asked for."""
    base = atl.data.load_sample()
    per_symbol = -(-n_bars // 5)
    reps = -(-per_symbol // base.groupby("symbol").size().min())
    span = base["timestamp"].max() - base["timestamp"].min() + pd.Timedelta("1min")
    parts = [base.assign(timestamp=base["timestamp"] + k * span) for k in range(reps)]
    bars = pd.concat(parts).sort_values(["symbol", "timestamp"])
    return bars.groupby("symbol").head(per_symbol).reset_index(drop=True)


def export_model(path: str) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    b15 = atl.data.resample(atl.data.load_sample(), "15min")
    X, y = atl.models.align(atl.features.technical(b15), atl.models.labels(b15))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    atl.models.save_bundle(atl.models.train(X, y, model, n_splits=2, progress=False), path)


class RSSFeed:
    """The replay, sampling the process's RSS at 10% and at the end."""

    def __init__(self, feed: ReplayFeed):
        self.feed, self.n = feed, len(feed)
        self.bar_length = feed.bar_length
        self.rss: list[float] = []

    def __iter__(self):
        proc = psutil.Process(os.getpid())
        mark = self.n // 10
        for i, bar in enumerate(self.feed):
            if i == mark:
                self.rss.append(proc.memory_info().rss / 2**20)
            yield bar
        self.rss.append(proc.memory_info().rss / 2**20)


def run(bars: pd.DataFrame, bundle_path: str, store_dir: str, risk: dict | None,
        name: str) -> tuple[float, dict, list[float], int]:
    store = atl.store.LabStore(os.path.join(store_dir, f"{name}.duckdb"))
    feed = RSSFeed(ReplayFeed(bars))
    engine = Engine(feed, ModelStrategy(bundle_path, threshold=0.4),
                    PaperBroker(100.0, fees=0.001), store=store, risk=risk, run_id=name)
    result = engine.run()
    return engine.seconds, result.latency(), feed.rss, len(result.fills)


def scorer_floor(bars: pd.DataFrame, bundle_path: str) -> float:
    """Seconds for the streaming scorer alone over the same bars, bar by bar."""
    scorer = atl.models.StreamingScorer(atl.models.load_bundle(bundle_path), 0.4)
    cols = [bars[c].to_numpy() for c in ("timestamp", "symbol", "high", "low", "close",
                                         "volume")]
    order = np.lexsort((bars["symbol"].to_numpy(), bars["timestamp"].to_numpy()))
    t0 = time.perf_counter()
    for i in order:
        scorer.update_one(cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i],
                          cols[5][i])
    return time.perf_counter() - t0


def _spread(values: list[float], fmt: str) -> str:
    """``min / median`` of a repeated measure."""
    return f"{format(min(values), fmt)} / {format(float(np.median(values)), fmt)}"


def _rates(n: int, seconds: list[float]) -> str:
    """Bars a second from the min / median time."""
    return f"{n / min(seconds):,.0f} / {n / float(np.median(seconds)):,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each configuration and of the peer, interleaved")
    args = parser.parse_args()
    configs = ((None, "no-limits"),
               ({"position_size": 1.0, "gross_exposure": 1.5, "daily_loss": 0.05}, "limits"))
    with tempfile.TemporaryDirectory() as d:
        bundle = os.path.join(d, "model.atlb")
        export_model(bundle)
        bars = sample_bars(args.bars)
        warm = bars.groupby("symbol").head(2000)
        run(warm, bundle, d, None, "warm-up")  # numba caches, imports
        load = os.getloadavg()
        print(f"{len(bars):,} bars, 5 symbols, 1-minute bars, paper broker, DuckDB store; "
              f"{args.repeats} repeats (min / median); load average {load[0]:.2f} "
              f"{load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
        seen: dict[str, dict[str, list[float]]] = {n: {} for _, n in configs}
        floors = []
        for k in range(args.repeats):
            for risk, name in configs:
                elapsed, lat, rss, fills = run(bars, bundle, d, risk, f"{name}-{k}")
                m = seen[name]
                for key, v in (("p50", lat["p50"]), ("p99", lat["p99"]), ("max", lat["max"]),
                               ("seconds", elapsed),
                               ("rss", rss[-1] - rss[0]), ("fills", fills)):
                    m.setdefault(key, []).append(v)
            floors.append(scorer_floor(bars, bundle))
        for _, name in configs:
            m = seen[name]
            ratio = [e / f for e, f in zip(m["seconds"], floors, strict=True)]
            print(f"  {name:<10} per timestamp (5 bars), us: p50 {_spread(m['p50'], '.1f')}  "
                  f"p99 {_spread(m['p99'], '.1f')}  max {_spread(m['max'], '.0f')}")
            print(f"  {'':<10} replay {_rates(len(bars), m['seconds'])} bars/s "
                  f"({int(m['fills'][0]):,} fills); {_spread(ratio, '.2f')}x the peer's "
                  f"time in the same repeat; RSS +{_spread(m['rss'], '.1f')} MB from 10% to "
                  "the end")
        print(f"  peer: the streaming scorer alone, bar by bar: {_rates(len(bars), floors)} "
              "bars/s")


if __name__ == "__main__":
    main()
