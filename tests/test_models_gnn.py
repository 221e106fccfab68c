"""The GCN estimator: it learns a signal planted in the graph, is deterministic under a
seed, round-trips through its plain-array file, and refuses bad input by name."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from alphatrade_lab.errors import DataError
from alphatrade_lab.models.gnn import GCNClassifier, normalized_adjacency

N = 6


def planted(n_times: int, seed: int):
    """Six symbols on a ring, one feature each; a symbol goes up when the sum of its own
    and its neighbours' feature is positive: the signal is mostly in the neighbours."""
    rng = np.random.default_rng(seed)
    ring = np.roll(np.eye(N), 1, axis=1) + np.roll(np.eye(N), -1, axis=1)
    X = rng.normal(size=(n_times, N, 1))
    y = (X[:, :, 0] @ (ring + np.eye(N)) > 0).astype(float)
    return X, y, ring


@pytest.fixture(scope="module")
def fitted():
    X, y, ring = planted(300, 0)
    return GCNClassifier(epochs=150, seed=3).fit(X, y, ring)


def test_learns_the_planted_signal_out_of_sample(fitted):
    X, y, ring = planted(300, 1)
    acc = (fitted.predict(X, ring) == y).mean()
    own = LogisticRegression().fit(planted(300, 0)[0].reshape(-1, 1),
                                   planted(300, 0)[1].ravel())
    acc_own = own.score(X.reshape(-1, 1), y.ravel())
    assert acc > 0.8 > acc_own + 0.1, (acc, acc_own)
    assert fitted.loss_curve_[-1] < fitted.loss_curve_[0]


def test_sklearn_contract(fitted):
    assert fitted.get_params()["seed"] == 3
    fresh = clone(fitted)
    assert not hasattr(fresh, "weights_")
    X, y, ring = planted(50, 2)
    assert fresh.fit(X, y, ring) is fresh
    assert fitted.classes_.tolist() == [0, 1] and fitted.n_features_in_ == 1
    p = fitted.predict_proba(X, ring)
    assert p.shape == (50, N, 2)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    assert (fitted.predict(X, ring) == p.argmax(axis=-1)).all()


def test_same_seed_same_model_other_seed_other_model():
    X, y, ring = planted(100, 4)
    a = GCNClassifier(epochs=30, seed=7, dropout=0.2).fit(X, y, ring)
    b = GCNClassifier(epochs=30, seed=7, dropout=0.2).fit(X, y, ring)
    c = GCNClassifier(epochs=30, seed=8, dropout=0.2).fit(X, y, ring)
    for k in a.weights_:
        np.testing.assert_array_equal(a.weights_[k], b.weights_[k])
    assert not np.array_equal(a.weights_["W1"], c.weights_["W1"])


def test_graph_per_time_and_missing_labels():
    X, y, ring = planted(80, 5)
    graphs = np.broadcast_to(ring, (80, N, N)).copy()
    graphs[10] = np.nan                      # a time without a graph: self loops only
    y[::7, 2] = np.nan                       # missing labels are not trained on
    model = GCNClassifier(epochs=20).fit(X, y, graphs)
    assert model.predict_proba(X, graphs).shape == (80, N, 2)


def test_normalized_adjacency_is_symmetric_normalisation():
    a = np.array([[0, 2.0, 0], [2.0, 0, -1.0], [0, -1.0, 0]])
    got = normalized_adjacency(a)
    m = np.abs(a) + np.eye(3)
    d = np.diag(1 / np.sqrt(m.sum(axis=1)))
    np.testing.assert_allclose(got, d @ m @ d)


def test_save_and_load_plain_arrays(fitted, tmp_path):
    path = fitted.save(tmp_path / "gcn.zip")
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["meta.json", "model.npz"]
    back = GCNClassifier.load(path)
    X, _, ring = planted(40, 6)
    np.testing.assert_array_equal(back.predict_proba(X, ring), fitted.predict_proba(X, ring))
    assert back.get_params() == fitted.get_params()


def test_load_refuses_other_files(fitted, tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.zip: not a readable GCN model file"):
        GCNClassifier.load(junk)
    extra = tmp_path / "extra.zip"
    with zipfile.ZipFile(extra, "w") as z:
        z.writestr("meta.json", "{}")
        z.writestr("model.npz", b"")
        z.writestr("payload.pkl", b"")
    with pytest.raises(DataError, match="not a GCN model file"):
        GCNClassifier.load(extra)
    objects = tmp_path / "objects.zip"
    with zipfile.ZipFile(objects, "w") as z:
        z.writestr("meta.json", '{"format": "alphatrade-lab-gcn", "version": 1}')
        with z.open("model.npz", "w") as f:
            np.savez(f, W1=np.array([object()], dtype=object))
    with pytest.raises(DataError, match="objects.zip: not a readable GCN model file"):
        GCNClassifier.load(objects)


@pytest.mark.parametrize(("make", "message"), [
    (lambda X, y, a: (X[:, :1], y[:, :1], a[:1, :1]), "at least 2 symbols, X has 1"),
    (lambda X, y, a: (X[:, :, 0], y, a), r"X must be \[T, N, F\]"),
    (lambda X, y, a: (np.where(np.arange(6) == 4, np.nan, X[..., 0])[..., None], y, a),
     "X is not finite at time 0, symbol 4, feature 0"),
    (lambda X, y, a: (X, y[:, :3], a), r"y must be \[T, N\]"),
    (lambda X, y, a: (X, y * 2 - 1, a), "y must be 0 or 1"),
    (lambda X, y, a: (X, y, a[:3, :3]), "adjacency shape"),
    (lambda X, y, a: (X, np.full_like(y, np.nan), a), "no label"),
])
def test_bad_input(make, message):
    X, y, a = make(*planted(20, 7))
    with pytest.raises(DataError, match=message):
        GCNClassifier(epochs=1).fit(X, y, a)


def test_bad_parameters_and_unfitted():
    X, y, ring = planted(20, 8)
    with pytest.raises(ValueError, match="hidden must be a whole number >= 1"):
        GCNClassifier(hidden=0).fit(X, y, ring)
    with pytest.raises(ValueError, match="call fit"):
        GCNClassifier().predict(X, ring)
    model = GCNClassifier(epochs=2).fit(X, y, ring)
    with pytest.raises(DataError, match="X has 2 features, the model was fitted on 1"):
        model.predict(np.concatenate([X, X], axis=2), ring)
