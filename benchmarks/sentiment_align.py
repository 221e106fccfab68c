"""Aligning news to bars: 1,000,000 articles onto the sample's minute bars (issue 21).

Run with ``.venv/bin/python benchmarks/sentiment_align.py``. The articles (random times
over the sample year, one to three of its symbols each, random scores) become usable one
minute after publication. Ours: :func:`alphatrade_lab.sentiment.news_features`, all four
features. Peer: pandas doing the part it can do in a few calls, the assignment of each
(article, symbol) to its bar with ``merge_asof(direction="forward")`` per symbol and the
per-bar count and mean with ``groupby`` (no decayed score, no surprise). Both sides are
warmed up and run the same number of times, alternately; the counts and means are checked
equal first. Goal: under 2 s.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd

import alphatrade_lab as atl
from alphatrade_lab.sentiment.align import news_features

N_ARTICLES, REPEATS = 1_000_000, 5
LATENCY = pd.Timedelta("1min")


def articles(bars: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t0, t1 = bars["timestamp"].min(), bars["timestamp"].max()
    pub = t0 + pd.to_timedelta(rng.integers(0, (t1 - t0).value, n), unit="ns")
    pool = np.array(sorted(bars["symbol"].unique()))
    k = rng.integers(1, 4, n)
    symbols = [list(rng.choice(pool, size=j, replace=False)) for j in k]
    return pd.DataFrame({"published_at": pub, "symbols": symbols,
                         "score": rng.uniform(-1, 1, n)})


def pandas_peer(bars: pd.DataFrame, news: pd.DataFrame) -> pd.DataFrame:
    step = atl.data.bar_length(bars)
    rows = news.explode("symbols").rename(columns={"symbols": "symbol"})
    rows["usable"] = rows["published_at"] + LATENCY
    rows = rows.sort_values("usable")
    closes = bars.assign(close_time=bars["timestamp"] + step)[["symbol", "close_time"]]
    out = []
    for sym, g in closes.groupby("symbol", sort=False):
        mine = rows[rows["symbol"] == sym]
        hit = pd.merge_asof(mine, g[["close_time"]].sort_values("close_time"), left_on="usable",
                            right_on="close_time", direction="forward")
        out.append(hit.dropna(subset=["close_time"]).groupby(["symbol", "close_time"])[
            "score"].agg(["count", "mean"]))
    agg = pd.concat(out)
    keys = pd.MultiIndex.from_arrays([bars["symbol"], bars["timestamp"] + step])
    return agg.reindex(keys).reset_index(drop=True)


def main() -> None:
    bars = atl.data.load_sample()
    news = articles(bars, N_ARTICLES)
    print(f"{len(bars):,} bars of {bars['symbol'].nunique()} symbols, {len(news):,} articles "
          f"({news['symbols'].str.len().sum():,} article-symbol pairs)")
    ours = news_features(bars, news)
    peer = pandas_peer(bars, news)
    np.testing.assert_array_equal(ours["news_count"].to_numpy(),
                                  peer["count"].fillna(0).to_numpy())
    np.testing.assert_allclose(ours["news_score"].to_numpy(), peer["mean"].to_numpy(),
                               rtol=1e-12, equal_nan=True)
    times: dict[str, list[float]] = {"ours (4 features)": [], "pandas (count, mean)": []}
    for _ in range(REPEATS):
        for name, fn in (("ours (4 features)", lambda: news_features(bars, news)),
                         ("pandas (count, mean)", lambda: pandas_peer(bars, news))):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        print(f"{name:22s} min {min(ts):.3f} s  median {statistics.median(ts):.3f} s")
    a, b = times.values()
    print(f"ratio pandas / ours: min {min(b) / min(a):.1f}x, median "
          f"{statistics.median(b) / statistics.median(a):.1f}x")


if __name__ == "__main__":
    main()
