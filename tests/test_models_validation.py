"""Purged walk-forward splits by construction, and train()'s metrics against sklearn.metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, precision_score, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.models import classification_metrics, purged_splits, train


def _intervals_overlap(a0, a1, b0, b1):
    return (a0 <= b1) & (b0 <= a1)


def _random_events(seed, n=400):
    """Panel-like events: several rows share a start time; label lengths vary."""
    rng = np.random.default_rng(seed)
    t0 = np.sort(rng.integers(0, 300, n))
    t1 = t0 + rng.integers(0, 15, n)
    return t0, t1


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("embargo", [0, 7])
def test_walk_forward_purge_and_embargo_by_construction(seed, embargo):
    t0, t1 = _random_events(seed)
    folds = purged_splits(t0, t1, n_splits=4, embargo=embargo)
    assert len(folds) == 4
    covered = np.concatenate([f.test for f in folds])
    assert len(np.unique(covered)) == len(covered)  # test folds are disjoint
    for f in folds:
        lo, hi = t0[f.test].min(), t1[f.test].max()
        # Brute force: no training interval overlaps any test interval.
        ov = _intervals_overlap(t0[f.train][:, None], t1[f.train][:, None],
                                t0[f.test][None, :], t1[f.test][None, :])
        assert not ov.any()
        assert (t0[f.train] < lo).all()              # walk-forward: the past only
        assert (t1[f.train] < lo - embargo).all()    # embargo gap before the test window
        # Nothing more than necessary was removed.
        before = np.flatnonzero(t0 < lo)
        needed = before[t1[before] >= lo - embargo]
        assert set(f.train) == set(before) - set(needed)
        assert f.purged + f.embargoed == len(needed)
        assert f.test_end == hi


@pytest.mark.parametrize("seed", range(3))
def test_kfold_purge_and_embargo_by_construction(seed):
    t0, t1 = _random_events(seed)
    emb = 9
    for f in purged_splits(t0, t1, n_splits=5, embargo=emb, mode="kfold"):
        lo, hi = t0[f.test].min(), t1[f.test].max()
        ov = _intervals_overlap(t0[f.train][:, None], t1[f.train][:, None],
                                t0[f.test][None, :], t1[f.test][None, :])
        assert not ov.any()
        after = t0[f.train] > hi
        assert (t0[f.train][after] > hi + emb).all()  # embargo after the test window
        others = np.setdiff1d(np.arange(len(t0)), f.test)
        keep = others[~(_intervals_overlap(t0[others], t1[others], lo, hi)
                        | ((t0[others] > hi) & (t0[others] <= hi + emb)))]
        assert set(f.train) == set(keep)


def test_splits_with_timestamps_keep_symbols_together():
    ts = pd.date_range("2024-01-01", periods=100, freq="h", tz="UTC")
    t0 = pd.Series(np.repeat(ts, 3))                     # three symbols per bar
    t1 = t0 + pd.Timedelta(hours=4)
    folds = purged_splits(t0, t1, n_splits=3, embargo="2h")
    for f in folds:
        test_times = set(t0.iloc[f.test])
        assert not test_times & set(t0.iloc[f.train])
        assert (t1.iloc[f.train] < f.test_start - pd.Timedelta("2h")).all()
        assert len(f.test) % 3 == 0


def test_bad_split_arguments():
    with pytest.raises(DataError, match="t1 is before t0"):
        purged_splits([0, 1, 2], [0, 0, 2], n_splits=1)
    with pytest.raises(DataError, match="distinct times"):
        purged_splits([0, 1], n_splits=3)
    with pytest.raises(ValueError, match="mode"):
        purged_splits(np.arange(10), mode="random")


def test_classification_metrics_against_sklearn():
    rng = np.random.default_rng(0)
    classes = [-1, 0, 1]
    y = rng.choice(classes, 500)
    p = rng.dirichlet([1, 1, 1], 500)
    p[:5] = [0.0, 1.0, 0.0]  # extreme probabilities exercise the clipping
    m = classification_metrics(y, p, classes)
    pred = np.asarray(classes)[p.argmax(axis=1)]
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    prec = precision_score(y, pred, labels=classes, average=None, zero_division=np.nan)
    rec = recall_score(y, pred, labels=classes, average=None, zero_division=np.nan)
    for c, pc, rc in zip(classes, prec, rec, strict=True):
        assert m[f"precision_{c}"] == pytest.approx(pc)
        assert m[f"recall_{c}"] == pytest.approx(rc)
    assert m["log_loss"] == pytest.approx(log_loss(y, y_proba=p, labels=classes), rel=1e-12)


@pytest.fixture(scope="module")
def dataset(sample_bars):
    sel = sample_bars["symbol"].isin(["AAA", "BBB", "CCC"])
    hourly = atl.data.resample(sample_bars.loc[sel], "1h").groupby("symbol").head(3000)
    y = atl.models.labels(hourly, horizon=6, threshold=0.4, vol_window=24)
    return atl.models.align(atl.features.technical(hourly), y)


@pytest.mark.slow
def test_train_reports_out_of_sample_metrics_like_sklearn(dataset, capsys):
    X, y = dataset
    est = make_pipeline(StandardScaler(), LogisticRegression(C=0.5))
    with threadpool_limits(1):
        bundle = train(X, y, est, n_splits=4, embargo="12h", progress=True)
    assert "walk-forward folds" in capsys.readouterr().err  # the tqdm bar
    names = list(X.columns[2:])
    assert bundle.feature_names == names
    assert bundle.classes == [-1, 0, 1]
    A = X[names].to_numpy()
    yv = y["label"].to_numpy()
    folds = purged_splits(X["timestamp"], y["t1"], n_splits=4, embargo="12h")
    rows = bundle.metrics["folds"]
    assert len(rows) == 4
    for f, row in zip(folds, rows, strict=True):
        model = clone(est).fit(A[f.train], yv[f.train])
        p = model.predict_proba(A[f.test])
        pred = model.classes_[p.argmax(axis=1)]
        assert row["n_train"] == len(f.train) and row["n_test"] == len(f.test)
        assert row["purged"] > 0
        assert row["accuracy"] == pytest.approx(accuracy_score(yv[f.test], pred))
        assert row["log_loss"] == pytest.approx(log_loss(yv[f.test], y_proba=p,
                                                         labels=model.classes_))
        prec = precision_score(yv[f.test], pred, labels=[-1, 0, 1], average=None,
                               zero_division=np.nan)
        rec = recall_score(yv[f.test], pred, labels=[-1, 0, 1], average=None)
        np.testing.assert_allclose([row[f"precision_{c}"] for c in (-1, 0, 1)], prec)
        np.testing.assert_allclose([row[f"recall_{c}"] for c in (-1, 0, 1)], rec)
        # The training rows' labels end before the test block (minus the embargo).
        assert pd.Timestamp(row["test_start"]) - y["t1"].iloc[f.train].max() > \
            pd.Timedelta("12h")
    # The final model is fit on every row; means and stds are the training statistics.
    final = clone(est).fit(A, yv)
    np.testing.assert_allclose(bundle.model.predict_proba(A), final.predict_proba(A))
    np.testing.assert_allclose(bundle.means, A.mean(axis=0))
    np.testing.assert_allclose(bundle.stds, X[names].std().to_numpy())
    assert bundle.feature_spec == X.attrs["feature_spec"]
    assert bundle.label_spec == y.attrs["label_spec"]
    assert len(bundle.fingerprint) == 64


def test_fingerprint_changes_with_the_data(dataset):
    X, y = dataset
    X, y = X.iloc[:3000], y.iloc[:3000]
    est = DecisionTreeClassifier(max_depth=3, random_state=0)
    with threadpool_limits(1):
        a = train(X, y, est, n_splits=2, progress=False)
        X2 = X.copy()
        X2.iloc[10, 3] += 1e-6
        b = train(X2, y, est, n_splits=2, progress=False)
    assert a.fingerprint != b.fingerprint


def test_train_rejects_bad_input(dataset):
    X, y = dataset
    with pytest.raises(DataError, match="rows"):
        train(X, y.iloc[:-1], LogisticRegression(), progress=False)
    with pytest.raises(TypeError, match="predict_proba"):
        train(X, y, object(), progress=False)
