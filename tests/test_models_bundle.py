"""Bundles: round trip, tampering, legacy files, version warnings, alignment by name."""

from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.models import (
    BundleIntegrityError,
    FeatureMismatchWarning,
    LegacyBundleWarning,
    ModelBundle,
    UntrustedBundleError,
    VersionMismatchWarning,
    load_bundle,
    save_bundle,
)


@pytest.fixture(scope="module")
def data(sample_bars):
    hourly = atl.data.resample(sample_bars.loc[sample_bars["symbol"].isin(["AAA", "EEE"])],
                               "1h").groupby("symbol").head(2500)
    X = atl.features.technical(hourly)
    y = atl.models.labels(hourly, horizon=4, threshold=0.4, vol_window=24)
    return atl.models.align(X, y)


@pytest.fixture(scope="module")
def bundle(data):
    X, y = data
    est = HistGradientBoostingClassifier(max_iter=15, max_leaf_nodes=8, random_state=0)
    return atl.models.train(X, y, est, n_splits=2, embargo="6h", progress=False)


def _rewrite(path, out, meta_edit=None, model_bytes=None):
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("bundle.json"))
        model = zf.read("model.skops")
    if meta_edit:
        meta_edit(meta)
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("bundle.json", json.dumps(meta))
        zf.writestr("model.skops", model if model_bytes is None else model_bytes)
    return out


def test_round_trip_keeps_everything(bundle, data, tmp_path):
    X, _ = data
    path = save_bundle(bundle, tmp_path / "m.atlb")
    assert zipfile.is_zipfile(path)
    side = (tmp_path / "m.atlb.sha256").read_text().split()
    import hashlib

    assert side[0] == hashlib.sha256(path.read_bytes()).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same versions, nothing to warn about
        b = load_bundle(path)
    assert b.feature_names == bundle.feature_names
    np.testing.assert_array_equal(b.means, bundle.means)
    np.testing.assert_array_equal(b.stds, bundle.stds)
    assert b.classes == bundle.classes
    assert b.feature_spec == bundle.feature_spec == X.attrs["feature_spec"]
    assert b.label_spec == bundle.label_spec
    assert b.fingerprint == bundle.fingerprint
    assert b.versions["scikit-learn"] == sklearn.__version__
    assert b.versions["numpy"] == np.__version__
    assert pd.Timestamp(b.created).tzinfo is not None
    assert b.metrics["folds"][0]["accuracy"] == bundle.metrics["folds"][0]["accuracy"]
    assert b.metrics_frame().shape == bundle.metrics_frame().shape
    np.testing.assert_array_equal(b.predict_proba(X).to_numpy(),
                                  bundle.predict_proba(X).to_numpy())
    assert atl.features.FeatureSpec.from_dict(b.feature_spec) == b.spec


def test_flipped_byte_is_refused(bundle, tmp_path):
    path = save_bundle(bundle, tmp_path / "m.atlb")
    bad = _rewrite(path, tmp_path / "bad.atlb",
                   model_bytes=sio.dumps(LogisticRegression(C=3.0)))  # swapped model
    with pytest.raises(BundleIntegrityError, match="SHA-256"):
        load_bundle(bad)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.atlb").write_bytes(bytes(data))
    with pytest.raises(DataError, match="flip.atlb"):  # BundleIntegrityError is one too
        load_bundle(tmp_path / "flip.atlb")
    with pytest.raises(BundleIntegrityError, match="expected"):
        load_bundle(path, sha256="0" * 64)
    # A file edited after export no longer matches the sidecar written next to it.
    _rewrite(path, tmp_path / "edited.atlb", meta_edit=lambda m: m.update(max_missing=0.9))
    (tmp_path / "edited.atlb").replace(path)
    with pytest.raises(BundleIntegrityError, match="sidecar"):
        load_bundle(path)


def test_malicious_model_is_refused_even_with_a_matching_hash(bundle, tmp_path):
    """An attacker who edits the file can also edit its recorded hash: the trusted-type
    list is what stops code from running."""
    import hashlib

    evil = make_pipeline(FunctionTransformer(os.system), LogisticRegression())
    payload = sio.dumps(evil)
    path = save_bundle(bundle, tmp_path / "m.atlb")
    bad = _rewrite(path, tmp_path / "evil.atlb", model_bytes=payload, meta_edit=lambda m:
                   m.update(model_sha256=hashlib.sha256(payload).hexdigest()))
    with pytest.raises(UntrustedBundleError, match="system"):
        load_bundle(bad)


def test_sklearn_version_mismatch_warns_with_both_versions(bundle, tmp_path):
    path = save_bundle(bundle, tmp_path / "m.atlb")
    old = _rewrite(path, tmp_path / "old.atlb",
                   meta_edit=lambda m: m["versions"].update({"scikit-learn": "1.0.2"}))
    with pytest.warns(VersionMismatchWarning, match="1.0.2") as rec:
        b = load_bundle(old)
    assert sklearn.__version__ in str(rec[0].message)
    assert b.feature_names == bundle.feature_names


def test_newer_format_is_refused(bundle, tmp_path):
    path = save_bundle(bundle, tmp_path / "m.atlb")
    new = _rewrite(path, tmp_path / "new.atlb", meta_edit=lambda m: m.update(format_version=99))
    with pytest.raises(DataError, match="newer"):
        load_bundle(new)


@pytest.fixture()
def legacy_model(data):
    X, y = data
    names = list(X.columns[2:])
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(
        X[names].to_numpy(), y["label"].to_numpy()), names


@pytest.mark.parametrize("layout", ["dict", "bare", "bare_pickle"])
def test_legacy_files_need_explicit_trust(legacy_model, data, tmp_path, layout):
    model, names = legacy_model
    X, _ = data
    path = tmp_path / "old.joblib"
    if layout == "dict":
        joblib.dump({"model": model, "feature_names": names}, path)
    elif layout == "bare":
        joblib.dump(model, path)
    else:
        path.write_bytes(pickle.dumps(model))
    with pytest.raises(UntrustedBundleError, match="allow_pickle"):
        load_bundle(path)
    with pytest.warns(LegacyBundleWarning):
        b = load_bundle(path, allow_pickle=True,
                        feature_names=None if layout == "dict" else names)
    assert isinstance(b, ModelBundle)            # not the dict the old loader returned
    assert b.model is not None and hasattr(b.model, "predict_proba")
    assert b.feature_names == names
    expected = model.predict_proba(X[names].to_numpy())
    np.testing.assert_allclose(b.predict_proba(X[names[::-1]]).to_numpy(), expected)


def test_legacy_file_with_a_matching_sha256(legacy_model, tmp_path):
    import hashlib

    model, names = legacy_model
    path = tmp_path / "old.pkl"
    joblib.dump({"model": model, "feature_names": names}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(UntrustedBundleError, match="does not match"):
        load_bundle(path, sha256="ab" * 32)
    with pytest.warns(LegacyBundleWarning):
        assert load_bundle(path, sha256=digest).feature_names == names
    # A sidecar proves nothing (whoever writes the file writes its sidecar): still refused.
    (tmp_path / "old.pkl.sha256").write_text(f"{digest}  old.pkl\n")
    with pytest.raises(UntrustedBundleError, match="sidecar"):
        load_bundle(path)
    with pytest.warns(LegacyBundleWarning):  # with an opt-in it is checked as well
        assert load_bundle(path, allow_pickle=True).feature_names == names


def test_legacy_pickle_from_another_sklearn_warns(legacy_model, tmp_path):
    model, names = legacy_model
    raw = pickle.dumps({"model": model, "feature_names": names})
    v = sklearn.__version__.encode()
    fake = b"0." + b"9" * (len(v) - 2)           # same length keeps the pickle valid
    path = tmp_path / "old.pkl"
    path.write_bytes(raw.replace(v, fake))
    with pytest.warns(VersionMismatchWarning) as rec, pytest.warns(LegacyBundleWarning):
        load_bundle(path, allow_pickle=True)
    msg = " ".join(str(r.message) for r in rec if r.category is VersionMismatchWarning)
    assert fake.decode() in msg and sklearn.__version__ in msg


# ----------------------------------------------------------------------- alignment
def test_shuffled_columns_give_identical_predictions(bundle, data):
    X, _ = data
    cols = list(X.columns)
    rng = np.random.default_rng(3)
    shuffled = X[[cols[i] for i in rng.permutation(len(cols))]]
    p1 = bundle.predict_proba(X)
    p2 = bundle.predict_proba(shuffled)
    np.testing.assert_array_equal(p1.to_numpy(), p2.to_numpy())
    # What the old positional loader did (take the first k columns as they come)
    # scrambles the features and changes the predictions:
    feats = shuffled.drop(columns=["timestamp", "symbol"])
    positional = bundle.model.predict_proba(feats.to_numpy()[:, : bundle.n_features])
    assert not np.allclose(positional, p1.to_numpy())


def test_missing_features_are_filled_with_training_means(bundle, data):
    X, _ = data
    drop = bundle.feature_names[:2]
    with pytest.warns(FeatureMismatchWarning, match="missing") as rec:
        p = bundle.predict_proba(X.drop(columns=drop))
    assert len([r for r in rec if "missing" in str(r.message)]) == 1
    assert all(d in str(rec[0].message) for d in drop)
    filled = X.copy()
    for d in drop:
        filled[d] = bundle.means[bundle.feature_names.index(d)]
    np.testing.assert_array_equal(p.to_numpy(), bundle.predict_proba(filled).to_numpy())


def test_too_many_missing_features_is_an_error(bundle, data):
    X, _ = data
    k = len(bundle.feature_names)
    n_ok = int(0.2 * k)
    with pytest.warns(FeatureMismatchWarning):
        bundle.predict_proba(X.drop(columns=bundle.feature_names[:n_ok]))
    with pytest.raises(DataError, match="max_missing"):
        bundle.predict_proba(X.drop(columns=bundle.feature_names[: n_ok + 1]))
    strict = ModelBundle(**{**bundle.__dict__, "max_missing": 0.0})
    with pytest.raises(DataError, match="missing"):
        strict.predict_proba(X.drop(columns=bundle.feature_names[:1]))


def test_extra_columns_are_dropped_with_a_warning(bundle, data):
    X, _ = data
    extra = X.assign(noise=1.0, other=2)
    with pytest.warns(FeatureMismatchWarning, match="noise"):
        p = bundle.predict_proba(extra)
    np.testing.assert_array_equal(p.to_numpy(), bundle.predict_proba(X).to_numpy())


def test_nan_policies(data):
    X, y = data
    names = list(X.columns[2:])
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[names].to_numpy(),
                                                                      y["label"])
    b = ModelBundle(model, names, X[names].mean(), X[names].std(), [-1, 0, 1])
    holes = X.copy()
    holes.iloc[::7, 5] = np.nan
    filled = holes.copy()
    filled.iloc[::7, 5] = b.means[3]
    np.testing.assert_array_equal(b.predict_proba(holes).to_numpy(),
                                  b.predict_proba(filled).to_numpy())
    zero = ModelBundle(**{**b.__dict__, "nan_policy": "zero"})
    filled.iloc[::7, 5] = 0.0
    np.testing.assert_array_equal(zero.predict_proba(holes).to_numpy(),
                                  zero.predict_proba(filled).to_numpy())
    strict = ModelBundle(**{**b.__dict__, "nan_policy": "error"})
    with pytest.raises(DataError, match=names[3]):
        strict.predict_proba(holes)


@pytest.mark.slow
def test_array_inputs_must_have_the_training_width(bundle, data):
    X, _ = data
    A = X[bundle.feature_names].to_numpy()
    np.testing.assert_array_equal(bundle.predict_proba(A).to_numpy(),
                                  bundle.predict_proba(X).to_numpy())
    with pytest.raises(DataError, match="shape"):
        bundle.predict_proba(A[:, :-1])


def test_bare_skops_file_loads_without_pickle(legacy_model, tmp_path):
    model, names = legacy_model
    sio.dump(model, tmp_path / "m.skops")
    with pytest.warns(LegacyBundleWarning):
        b = load_bundle(tmp_path / "m.skops", feature_names=names)
    assert b.feature_names == names
