"""Compiled estimators: the numba probabilities equal scikit-learn's on real-shaped data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from threadpoolctl import threadpool_limits

import alphatrade_lab as atl
from alphatrade_lab.models import StreamingScorer
from alphatrade_lab.models.compiled import compile_estimator

ESTIMATORS = {
    "scaler+logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
    "logistic": lambda: LogisticRegression(max_iter=2000),
    "forest": lambda: RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0),
    "extra_trees": lambda: ExtraTreesClassifier(n_estimators=20, max_depth=8, random_state=0),
    "gradient_boosting": lambda: GradientBoostingClassifier(n_estimators=20, max_depth=3,
                                                             random_state=0),
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=30,
                                                                     random_state=0),
}


@pytest.fixture(scope="module")
def hourly(sample_bars):
    """The whole sample as hourly bars (5 symbols), its features and labels."""
    bars = atl.data.resample(sample_bars, "1h")
    X = atl.features.technical(bars)
    y = atl.models.labels(bars, horizon=4, threshold=0.5, vol_window=24)
    return bars, X, y


def _train(hourly, name, binary=False):
    _, X, y = hourly
    Xa, ya = atl.models.align(X, y)
    Xa, ya = Xa.iloc[:6000], ya.iloc[:6000]
    if binary:
        ya = ya.assign(label=np.where(ya["label"] > 0, 1, -1).astype(float))
    with threadpool_limits(1):
        return atl.models.train(Xa, ya, ESTIMATORS[name](), n_splits=2, progress=False)


def _features(hourly, bundle):
    """Every row of the sample's features with a full warm-up, in training column order."""
    X = hourly[1].dropna()
    return np.ascontiguousarray(X[bundle.feature_names].to_numpy(np.float64))


@pytest.mark.slow
@pytest.mark.parametrize("binary", [False, True], ids=["3 classes", "2 classes"])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_compiled_equals_sklearn(hourly, name, binary):
    bundle = _train(hourly, name, binary)
    cm = compile_estimator(bundle.model)
    assert cm is not None and cm.classes == ([-1, 1] if binary else [-1, 0, 1])
    A = _features(hourly, bundle)
    assert len(A) > 40_000
    np.testing.assert_allclose(cm.predict_proba(A), bundle.model.predict_proba(A),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(cm.predict_proba(A[7]), bundle.model.predict_proba(A[7:8])[0],
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["forest", "extra_trees", "hist_gradient_boosting"])
def test_nan_goes_where_sklearn_sends_it(hourly, name):
    """Fitted on features with missing values (so splits learn where NaN goes) and
    scored on rows with NaN in up to half of the columns."""
    X, y = atl.models.align(*hourly[1:])
    X = X.drop(columns=["timestamp", "symbol"])
    keep = y["label"].notna().to_numpy()
    A = np.ascontiguousarray(X.to_numpy(np.float64)[keep][:8000])
    rng = np.random.default_rng(0)
    A[rng.random(A.shape) < 0.1] = np.nan  # the warm-up rows have NaN already
    est = ESTIMATORS[name]()
    with threadpool_limits(1):
        est.fit(A, y["label"].to_numpy()[keep][:8000])
    cm = compile_estimator(est)
    assert cm is not None and cm.allow_nan
    B = np.ascontiguousarray(X.to_numpy(np.float64)[-5000:])
    B[rng.random(B.shape) < rng.random((len(B), 1)) * 0.5] = np.nan
    assert np.isnan(B).any(axis=1).mean() > 0.8
    np.testing.assert_allclose(cm.predict_proba(B), est.predict_proba(B), rtol=0, atol=1e-12)


def test_unsupported_estimators_are_not_compiled():
    X = np.random.default_rng(0).normal(size=(100, 3))
    y = (X[:, 0] > 0).astype(int)
    for est in (KNeighborsClassifier(), make_pipeline(MinMaxScaler(), LogisticRegression()),
                GradientBoostingClassifier(loss="exponential", n_estimators=3),
                GradientBoostingClassifier(init=LogisticRegression(), n_estimators=3)):
        assert compile_estimator(est.fit(X, y)) is None, est
    assert compile_estimator(LogisticRegression()) is None  # not fitted


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scaler+logistic", "forest", "hist_gradient_boosting"])
def test_scorer_compiled_equals_fallback(hourly, name):
    bars = hourly[0].groupby("symbol").head(400)
    bundle = _train(hourly, name)
    live = bars.sort_values(["timestamp", "symbol"])
    fast, slow = StreamingScorer(bundle, 0.4), StreamingScorer(bundle, 0.4, compiled=False)
    assert fast.compiled_model is not None and slow.compiled_model is None
    a, b = fast.update(live.iloc[:1500]), slow.update(live.iloc[:1500])
    pd.testing.assert_frame_equal(a.drop(columns=bundle.classes),
                                  b.drop(columns=bundle.classes))
    np.testing.assert_allclose(a[bundle.classes], b[bundle.classes], rtol=0, atol=1e-12)
    for rec in live.iloc[1500:].to_dict("records"):
        one, ref = fast.update_one(**rec), slow.update_one(**rec)
        np.testing.assert_array_equal(one["features"], ref["features"])
        np.testing.assert_allclose(one["proba"], ref["proba"], rtol=0, atol=1e-12)
        assert {k: one[k] for k in ("direction", "entry", "exit")} == \
            {k: ref[k] for k in ("direction", "entry", "exit")}
        assert one["confidence"] == pytest.approx(ref["confidence"], abs=1e-12)


def test_scorer_nan_inputs_with_passthrough(hourly):
    """With nan_policy 'passthrough' the warm-up bars reach the model with NaN features:
    a forest takes them compiled (as scikit-learn would), a logistic regression refuses
    them through scikit-learn's own error."""
    bars = hourly[0].groupby("symbol").head(60).sort_values(["timestamp", "symbol"])
    forest, linear = _train(hourly, "forest"), _train(hourly, "scaler+logistic")
    forest.nan_policy = linear.nan_policy = "passthrough"
    fast, slow = StreamingScorer(forest), StreamingScorer(forest, compiled=False)
    a, b = fast.update(bars), slow.update(bars)
    assert a[forest.feature_names].isna().any(axis=1).mean() > 0.5
    np.testing.assert_allclose(a[forest.classes], b[forest.classes], rtol=0, atol=1e-12)
    assert StreamingScorer(linear).compiled_model is not None
    for scorer in (StreamingScorer(linear), StreamingScorer(linear, compiled=False)):
        with pytest.raises(ValueError, match="NaN"):
            scorer.update(bars.iloc[:5])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scaler+logistic", "forest", "hist_gradient_boosting"])
def test_loaded_bundle_is_compiled(hourly, tmp_path, name):
    """What load_bundle returns compiles (from its fitted arrays) to the same numbers."""
    bundle = _train(hourly, name)
    loaded = atl.models.load_bundle(atl.models.save_bundle(bundle, tmp_path / "m.atlb"))
    cm = StreamingScorer(loaded).compiled_model
    assert cm is not None
    A = _features(hourly, bundle)[:5000]
    np.testing.assert_allclose(cm.predict_proba(A), bundle.model.predict_proba(A),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("corrupt", ["cycle", "child_outside", "feature_outside"])
def test_malformed_trees_from_a_model_file_are_refused(corrupt):
    from alphatrade_lab.errors import UntrustedBundleError

    X = np.random.default_rng(0).normal(size=(300, 3))
    est = RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0).fit(
        X, (X[:, 0] > 0).astype(int))
    assert compile_estimator(est) is not None
    tree = est.estimators_[1].tree_  # node arrays are views of the tree's own buffer
    split = int(np.flatnonzero(tree.children_left >= 0)[0])
    if corrupt == "cycle":
        tree.children_left[split] = split  # itself: a walk would never end
    elif corrupt == "child_outside":
        tree.children_right[split] = tree.node_count + 5
    else:
        tree.feature[split] = 7
    with pytest.raises(UntrustedBundleError, match=r"tree node \d+ is malformed"):
        compile_estimator(est)
