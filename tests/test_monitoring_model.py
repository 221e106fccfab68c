"""ModelMonitor against sklearn, O(1) updates, bounded memory, drift checks, the store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

import alphatrade_lab as atl

mon = atl.monitoring


def _stream(n, seed=0, classes=(-1, 0, 1), acc=0.6):
    rng = np.random.default_rng(seed)
    actual = rng.choice(classes, size=n)
    pred = np.where(rng.random(n) < acc, actual, rng.choice(classes, size=n))
    conf = rng.uniform(0.4, 0.9, size=n)
    ts = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    return pred, actual, conf, ts


@pytest.mark.parametrize("classes", [(-1, 0, 1), ("down", "up"), (0, 1, 2, 3)])
def test_metrics_equal_sklearn(classes):
    pred, actual, conf, ts = _stream(1500, classes=classes)
    m = mon.ModelMonitor(window_size=1000)
    for p, t in zip(pred, ts, strict=True):
        m.add_prediction("AAA", p, None, np.nan, t)
    for a, t in zip(actual, ts, strict=True):
        m.update_actual("AAA", t, a)  # the oldest 500 are gone: False, no error
    m2 = mon.ModelMonitor(window_size=1000)
    for p, a, c, t in zip(pred, actual, conf, ts, strict=True):
        m2.add_prediction("AAA", p, a, c, t)
    got = m2.calculate_metrics("AAA")
    p, a, c = pred[-1000:], actual[-1000:], conf[-1000:]
    labels = sorted(set(p) | set(a))
    assert got["n"] == 1000 and got["pending"] == 0
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(a, p))
    prec = metrics.precision_score(a, p, labels=labels, average=None, zero_division=0)
    rec = metrics.recall_score(a, p, labels=labels, average=None, zero_division=0)
    assert list(got["precision"]) == labels
    np.testing.assert_allclose(list(got["precision"].values()), prec)
    np.testing.assert_allclose(list(got["recall"].values()), rec)
    assert got["avg_confidence"] == pytest.approx(c.mean())
    dist = pd.Series(p).value_counts(normalize=True)
    assert got["prediction_distribution"] == pytest.approx(dist.to_dict())
    # update path equals direct recording (accuracy/precision; confidence was NaN there)
    m_up = m.calculate_metrics("AAA")
    assert m_up["accuracy"] == got["accuracy"] and m_up["precision"] == got["precision"]


def test_none_below_min_samples_and_pending():
    m = mon.ModelMonitor(window_size=500)
    pred, actual, conf, ts = _stream(150)
    for i in range(150):
        m.add_prediction("A", pred[i], actual[i] if i < 99 else None, conf[i], ts[i])
    assert m.calculate_metrics("A") is None
    assert m.update_actual("A", ts[120], actual[120])
    assert not m.update_actual("A", ts[0] - pd.Timedelta("1h"), 1)
    assert not m.update_actual("ZZZ", ts[0], 1)
    got = m.calculate_metrics("A")
    assert got["n"] == 100 and got["pending"] == 50


def test_memory_is_bounded_by_the_window():
    m = mon.ModelMonitor(window_size=50, min_samples=10)
    for i in range(20_000):
        m.add_prediction("A", i % 3, None, 0.5, timestamp=i)
        if i % 2:
            m.update_actual("A", i - 1, (i - 1) % 3)
    sizes = m.sizes("A")
    assert sizes == {"buffer": 50, "filled": 50, "keys": 50, "slots": 50}
    assert len(m._labels) == 3
    assert m.calculate_metrics("A")["n"] == 25


def test_update_actual_is_a_lookup_not_a_scan():
    import timeit

    small, big = mon.ModelMonitor(window_size=100), mon.ModelMonitor(window_size=100_000)
    for m, n in ((small, 100), (big, 100_000)):
        for i in range(n):
            m.add_prediction("A", 1, None, 0.5, timestamp=i)
    t_small = min(timeit.repeat(lambda: small.update_actual("A", 50, 1), number=2000, repeat=3))
    t_big = min(timeit.repeat(lambda: big.update_actual("A", 50, 1), number=2000, repeat=3))
    assert t_big < 5 * t_small + 1e-3


def test_check_drift_messages():
    m = mon.ModelMonitor(window_size=200, drift_threshold=0.10)
    rng = np.random.default_rng(1)
    for i in range(200):
        m.add_prediction("A", 1, int(rng.random() < 0.7), 0.6, timestamp=i)
    assert not m.check_drift("A") and "no baseline" in m.check_drift("A").message
    base = m.set_baseline("A")
    assert not m.check_drift("A").drifted
    for i in range(200, 400):
        m.add_prediction("A", 1, int(rng.random() < 0.45), 0.62, timestamp=i)
    check = m.check_drift("A")
    assert check.drifted and check.reasons == ("accuracy",)
    assert check.accuracy_drop == pytest.approx(base["accuracy"]
                                                - m.calculate_metrics("A")["accuracy"])
    assert "accuracy dropped by" in check.message and f"{check.accuracy_drop:.3f}" in check.message
    m2 = mon.ModelMonitor(window_size=100)
    for i in range(100):
        m2.add_prediction("B", 0, 0, 0.55, timestamp=i)
    m2.set_baseline("B")
    for i in range(100, 200):
        m2.add_prediction("B", 0, 0, 0.75, timestamp=i)
    check = m2.check_drift("B")
    assert check.reasons == ("confidence",) and "+0.200" in check.message


def _frame(n=3000, seed=3):
    pred, actual, conf, ts = _stream(n, seed=seed)
    df = pd.DataFrame({"symbol": np.where(np.arange(n) % 3 == 0, "A", "B"), "timestamp": ts,
                       "prediction": pred, "actual": actual, "confidence": conf})
    df.loc[df.index[-40:], "actual"] = None
    return df


def test_from_frame_equals_row_by_row():
    df = _frame()
    fast = mon.ModelMonitor.from_frame(df, window_size=700)
    slow = mon.ModelMonitor(window_size=700)
    for r in df.itertuples():
        slow.add_prediction(r.symbol, r.prediction, r.actual, r.confidence, r.timestamp)
    for s in ("A", "B"):
        assert fast.calculate_metrics(s) == slow.calculate_metrics(s)
    t = df["timestamp"].iloc[-1]
    assert fast.update_actual(df["symbol"].iloc[-1], t, 1)


def test_timeline_equals_monitor_checks():
    df = _frame(1200)
    df = df[df["symbol"] == "A"].reset_index(drop=True)
    df["actual"] = df["actual"].fillna(0)
    df.loc[250:, "confidence"] = 0.95
    tl = mon.model_timeline(df, window_size=150, baseline=200, min_samples=100)
    m = mon.ModelMonitor(window_size=150, min_samples=100)
    for i, r in enumerate(df.itertuples()):
        m.add_prediction("A", r.prediction, r.actual, r.confidence, r.timestamp)
        got = m.calculate_metrics("A")
        if got is None:
            assert np.isnan(tl["accuracy"].iloc[i])
            continue
        assert tl["accuracy"].iloc[i] == pytest.approx(got["accuracy"])
        assert tl["avg_confidence"].iloc[i] == pytest.approx(got["avg_confidence"])
        if i == 199:
            m.set_baseline("A")
        if i >= 200:
            assert bool(tl["drifted"].iloc[i]) == m.check_drift("A").drifted


def test_performance_rows_go_to_the_store():
    df = _frame()
    store = atl.store.LabStore(":memory:")
    rows = mon.model_performance_frame(df, "logreg")
    assert store.record_model_performance(rows) == len(rows)
    done = df.dropna(subset=["actual"])
    assert rows["predictions_count"].sum() == len(done)
    assert rows["correct_predictions"].sum() == int((done["prediction"] == done["actual"]).sum())
    m = mon.ModelMonitor.from_frame(df, window_size=500, model_type="logreg")
    assert store.record_model_performance(m.performance_frame()) > 0
    stored = store.model_performance(model_type="logreg")
    assert len(stored) == len(rows) + len(m.performance_frame())
