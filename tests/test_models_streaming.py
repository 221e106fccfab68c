"""The streaming scorer: parity with the vectorized path, bounded memory, bad bars."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.features import FeatureSpec
from alphatrade_lab.models import StreamingScorer, signals

ROOT = Path(__file__).resolve().parents[1]


def _bundle(bars, spec):
    X = atl.features.technical(bars, spec)
    Xa, ya = atl.models.align(X, atl.models.labels(bars, horizon=10, threshold=0.5,
                                                    vol_window=30))
    Xa, ya = Xa.iloc[::3], ya.iloc[::3]  # a third of the rows is plenty to fit
    with threadpool_limits(1):
        return atl.models.train(Xa, ya, make_pipeline(StandardScaler(), LogisticRegression()),
                                n_splits=2, progress=False)


@pytest.fixture(scope="module")
def minute_bars(sample_bars):
    """5 symbols × 11,000 minute bars = 55,000 bars."""
    return sample_bars.groupby("symbol").head(11_000).reset_index(drop=True)


@pytest.mark.parametrize("spec", [FeatureSpec(), FeatureSpec(
    return_horizons=(1, 3), vol_windows=(5, 300), ma_windows=(2, 500), rsi_window=3,
    macd_fast=5, macd_slow=40, macd_signal=7, atr_window=30, bb_window=4, bb_k=1.5,
    volume_window=3, skew_window=250)], ids=["default", "odd"])
@pytest.mark.slow
def test_streaming_equals_vectorized_over_55000_bars(minute_bars, spec):
    bars = minute_bars
    assert len(bars) >= 50_000
    bundle = _bundle(bars, spec)
    X = atl.features.technical(bars, spec)
    proba = bundle.predict_proba(X)
    # A threshold that gives signals on about 10% of the bars.
    threshold = float(np.quantile(np.maximum(proba[1], proba[-1]), 0.9))
    vec = signals(bundle, X, threshold=threshold).frame

    scorer = StreamingScorer(bundle, threshold=threshold)
    live = bars.sort_values(["timestamp", "symbol"])  # bars arrive interleaved in time
    outs = []
    pos = 0
    for size in [1] * 1500 + [7] * 300 + [2000] * 30:  # single bars, then small batches
        outs.append(scorer.update(live.iloc[pos: pos + size]))
        pos += size
    outs.append(scorer.update(live.iloc[pos:]))
    out = pd.concat(outs).loc[bars.index]

    names = spec.feature_names
    F, V = out[names].to_numpy(), X[names].to_numpy()
    assert (np.isnan(F) == np.isnan(V)).all()
    np.testing.assert_allclose(F, V, rtol=1e-9, atol=1e-9)
    P = out[bundle.classes].to_numpy()
    np.testing.assert_allclose(P, proba.to_numpy(), rtol=0, atol=1e-9)
    close_call = np.abs(np.stack([P[:, 0], P[:, -1]]) - threshold).min(axis=0) < 1e-9
    same = out["direction"].to_numpy() == vec["direction"].to_numpy()
    assert (same | close_call).all()
    assert (vec["direction"] != 0).sum() > 50  # the comparison is not vacuous
    for col in ("entry", "exit"):
        assert ((out[col].to_numpy() == vec[col].to_numpy()) | close_call).all()
    assert (out["timestamp"].to_numpy() == bars["timestamp"].to_numpy()).all()


@pytest.mark.slow
def test_update_one_equals_update(minute_bars):
    bars = minute_bars.loc[minute_bars["symbol"].isin(["AAA", "BBB"])]
    bars = bars.groupby("symbol").head(400).sort_values(["timestamp", "symbol"])
    bundle = _bundle(minute_bars.groupby("symbol").head(2000), FeatureSpec())
    a, b = StreamingScorer(bundle, 0.4), StreamingScorer(bundle, 0.4)
    batch = a.update(bars)
    for k, rec in enumerate(bars.to_dict("records")):
        one = b.update_one(**rec)
        row = batch.iloc[k]
        np.testing.assert_array_equal(one["features"],
                                      row[bundle.spec.feature_names].to_numpy(float))
        np.testing.assert_allclose(one["proba"], row[bundle.classes].to_numpy(float),
                                   rtol=0, atol=1e-12)  # BLAS: one row vs a batch
        assert one["direction"] == row["direction"] and one["entry"] == row["entry"]
    assert a.symbols == ["AAA", "BBB"]


def test_bad_bars_are_refused_and_change_nothing(minute_bars):
    bundle = _bundle(minute_bars.groupby("symbol").head(2000), FeatureSpec())
    bars = minute_bars.loc[minute_bars["symbol"] == "AAA"].head(300)
    s = StreamingScorer(bundle)
    s.update(bars.iloc[:200])
    state = s._scal.copy(), s._cring.copy()
    with pytest.raises(DataError, match="not after"):
        s.update(bars.iloc[[200, 199]])
    bad = bars.iloc[200:202].copy()
    bad.iloc[1, bad.columns.get_loc("close")] = -1.0
    with pytest.raises(DataError, match="row 1"):
        s.update(bad)
    with pytest.raises(DataError, match="missing"):
        s.update(bars.drop(columns="volume"))
    new_symbol = bars.iloc[:1].assign(symbol="ZZZ", close=np.nan)
    with pytest.raises(DataError):
        s.update(new_symbol)
    assert s.symbols == ["AAA"]
    np.testing.assert_array_equal(s._scal, state[0])
    np.testing.assert_array_equal(s._cring, state[1])
    ref = StreamingScorer(bundle)
    ref.update(bars.iloc[:200])
    pd.testing.assert_frame_equal(s.update(bars.iloc[200:]), ref.update(bars.iloc[200:]))


def test_needs_a_feature_spec(minute_bars):
    bundle = _bundle(minute_bars.groupby("symbol").head(2000), FeatureSpec())
    bundle.nan_policy = "error"
    with pytest.raises(ValueError, match="warm-up"):
        StreamingScorer(bundle)
    bundle.nan_policy = "mean"
    bundle.feature_spec = None
    with pytest.raises(DataError, match="feature spec"):
        StreamingScorer(bundle)


MEMORY_SCRIPT = textwrap.dedent("""
    import gc, numpy as np, pandas as pd, psutil
    import alphatrade_lab as atl
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    SYMBOLS = np.array(["AAA", "BBB", "CCC", "DDD", "EEE"], dtype=object)
    T0 = pd.Timestamp("2024-01-01", tz="UTC").value
    rng = np.random.default_rng(0)
    price = np.full(5, 100.0)

    def bars(start, n):
        \"\"\"The next n minute bars of 5 random-walk symbols, interleaved in time.\"\"\"
        global price
        k = np.arange(start, start + n)
        logp = np.log(price) + np.cumsum(rng.normal(0, 1e-3, (n // 5, 5)), axis=0)
        price = np.exp(logp[-1])
        close = np.exp(logp.ravel())
        return pd.DataFrame({"timestamp": pd.to_datetime(T0 + (k // 5) * 60_000_000_000,
                                                         utc=True),
                             "symbol": SYMBOLS[k % 5], "open": close, "high": close * 1.001,
                             "low": close * 0.999, "close": close,
                             "volume": rng.uniform(1, 100, n)})

    train = bars(0, 20_000).sort_values(["symbol", "timestamp"], ignore_index=True)
    X, y = atl.models.align(atl.features.technical(train),
                            atl.models.labels(train, horizon=5))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    bundle = atl.models.train(X, y, model, n_splits=2, progress=False)
    scorer = atl.models.StreamingScorer(bundle, threshold=0.4)
    del train, X, y
    proc = psutil.Process()
    batch, total, rss = 5_000, 1_000_000, []
    for start in range(20_000, 20_000 + total, batch):
        out = scorer.update(bars(start, batch))
        del out
        done = start + batch - 20_000
        if done % 100_000 == 0:
            gc.collect()
            rss.append(proc.memory_info().rss)
    print(" ".join(map(str, rss)), scorer.state_bytes)
""")


@pytest.mark.slow
def test_memory_stays_flat_over_a_million_bars():
    res = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    *rss, state = map(int, res.stdout.split())
    assert len(rss) == 10  # at bars 100,000, 200,000, ..., 1,000,000
    growth = (max(rss) - rss[0]) / 2**20
    assert growth < 10.0, f"RSS grew by {growth:.1f} MB between bar 100,000 and 1,000,000"
    assert state < 200_000  # the state itself is a few ring buffers per symbol
