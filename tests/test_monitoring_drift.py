"""Drift statistics against scipy (independent references), NaN accounting, the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError

mon = atl.monitoring

SIZES = [(1, 1), (7, 3), (40, 40), (300, 500), (2000, 2000), (9000, 12000), (20000, 30000)]


def _pair(n1, n2, seed, shift=0.0, ties=False):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n1), rng.normal(shift, 1.2, size=n2)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    return a, b


def _numpy_counts(ref, cur, bins):
    edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
    k = len(edges) + 1
    return (np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k),
            np.bincount(np.searchsorted(edges, cur, side="right"), minlength=k))


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize(("n1", "n2"), SIZES)
def test_ks_matches_scipy(n1, n2, ties):
    a, b = _pair(n1, n2, n1 + n2, shift=0.05, ties=ties)
    ours, ref = mon.ks(a, b), stats.ks_2samp(a, b)
    assert abs(ours.statistic - ref.statistic) <= 1e-12
    assert abs(ours.p_value - ref.pvalue) <= 1e-6


@pytest.mark.parametrize("shift", [0.0, 0.004, 0.008, 0.015, 0.05])
def test_ks_pvalue_large_samples_matches_scipy(shift):
    # n d^2 between 2.2 and 370 takes scipy's slow exact Smirnov branch: ours is a kernel
    a, b = _pair(150_000, 120_000, 3, shift=shift)
    b = b / 1.2
    ours, ref = mon.ks(a, b), stats.ks_2samp(a, b)
    assert abs(ours.statistic - ref.statistic) <= 1e-12
    assert abs(ours.p_value - ref.pvalue) <= 1e-6


@pytest.mark.parametrize(("n", "d"), [(141, 0.2), (5000, 0.03), (60000, 0.01), (500_000, 0.003),
                                      (500_000, 0.0025), (1000, 0.6), (300, 0.005)])
@pytest.mark.slow
def test_kstwo_sf_matches_scipy(n, d):
    from alphatrade_lab.monitoring.drift import _kstwo_sf

    assert abs(_kstwo_sf(d, n) - stats.kstwo.sf(d, n)) <= 1e-9


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize(("n1", "n2"), SIZES)
def test_wasserstein_matches_scipy(n1, n2, ties):
    a, b = _pair(n1, n2, n1 * 7 + n2, shift=0.3, ties=ties)
    expected = stats.wasserstein_distance(a, b)
    assert mon.wasserstein(a, b).statistic == pytest.approx(expected, rel=1e-10, abs=1e-12)
    if n1 > 1 and np.std(a) > 0:
        assert mon.wasserstein(a, b, normalized=True).statistic == pytest.approx(
            expected / np.std(a), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("bins", [2, 5, 10, 20])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize(("n1", "n2"), [(7, 3), (300, 500), (20000, 30000)])
def test_js_and_psi_match_numpy_bins_and_scipy(n1, n2, ties, bins):
    a, b = _pair(n1, n2, n1 + 3 * n2, shift=0.4, ties=ties)
    ca, cb = _numpy_counts(a, b, bins)
    assert mon.js_distance(a, b, bins=bins).statistic == pytest.approx(
        jensenshannon(ca, cb), rel=1e-10, abs=1e-12)
    assert mon.js_distance(a, b, bins=bins, base=2).statistic == pytest.approx(
        jensenshannon(ca, cb, base=2), rel=1e-10, abs=1e-12)
    p = np.maximum(ca / ca.sum(), 1e-4)
    q = np.maximum(cb / cb.sum(), 1e-4)
    assert mon.psi(a, b, bins=bins).statistic == pytest.approx(
        float(np.sum((q - p) * np.log(q / p))), rel=1e-10, abs=1e-12)


def test_psi_rule_of_thumb_and_empty_bins():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=20000)
    assert mon.psi(ref, rng.normal(size=20000)).statistic < 0.01
    far = mon.psi(ref, rng.normal(10.0, 1.0, size=1000))  # all in the top bin
    assert np.isfinite(far.statistic) and far.statistic > 2


@pytest.mark.parametrize("seed", range(4))
def test_chi_square_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.choice([-1, 0, 1], size=400, p=[0.3, 0.4, 0.3])
    b = rng.choice([-1, 0, 1, 2], size=250, p=[0.2, 0.4, 0.3, 0.1] if seed % 2 else
                   [0.3, 0.4, 0.3, 0.0])
    table = pd.crosstab(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b]).to_numpy()
    ref = stats.chi2_contingency(table, correction=False)
    ours = mon.chi_square(a, b)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_chi_square_labels_and_missing():
    res = mon.chi_square(["up", "down", None, "up"], pd.Series(["up", np.nan, "down"]))
    assert (res.n_ref, res.n_cur, res.nan_ref, res.nan_cur) == (3, 2, 1, 1)


def test_nans_are_counted_not_mixed_in():
    a, b = _pair(500, 400, 11, shift=0.2)
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[::10] = np.nan
    b_nan[:7] = np.nan
    for fn, ref in ((mon.ks, lambda x, y: stats.ks_2samp(x, y).statistic),
                    (mon.wasserstein, stats.wasserstein_distance)):
        res = fn(a_nan, b_nan)
        assert (res.n_ref, res.nan_ref, res.n_cur, res.nan_cur) == (450, 50, 393, 7)
        assert res.statistic == pytest.approx(ref(a_nan[~np.isnan(a_nan)], b[7:]), rel=1e-10)
    empty = mon.psi(np.full(5, np.nan), b)
    assert np.isnan(empty.statistic) and empty.nan_ref == 5 and empty.n_ref == 0


def test_infinite_values_raise():
    with pytest.raises(DataError, match="row 2"):
        mon.ks([1.0, 2.0, np.inf], [1.0, 2.0])


def _frames(n_ref=3000, n_cur=2000, seed=0):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"a": rng.normal(size=n_ref), "b": rng.exponential(size=n_ref),
                        "c": rng.uniform(size=n_ref), "cls": rng.choice(list("xyz"), n_ref)})
    cur = pd.DataFrame({"a": rng.normal(size=n_cur), "b": rng.exponential(2.0, size=n_cur),
                        "c": rng.uniform(size=n_cur), "cls": rng.choice(list("xxyz"), n_cur)})
    ref.loc[::50, "c"] = np.nan
    return ref, cur


def test_drift_report_matches_single_functions_and_scipy():
    ref, cur = _frames()
    rep = mon.drift_report(ref, cur, bins=8)
    assert list(rep.columns[:6]) == ["feature", "method", "statistic", "p_value", "threshold",
                                     "drifted"]
    assert rep["feature"].tolist() == ["a"] * 4 + ["b"] * 4 + ["c"] * 4 + ["cls"]
    for f in "abc":
        r = ref[f].dropna().to_numpy()
        c = cur[f].dropna().to_numpy()
        row = rep[rep["feature"] == f].set_index("method")
        ks = stats.ks_2samp(r, c)
        assert abs(row.loc["ks", "statistic"] - ks.statistic) <= 1e-12
        assert abs(row.loc["ks", "p_value"] - ks.pvalue) <= 1e-6
        assert row.loc["wasserstein", "statistic"] == pytest.approx(
            stats.wasserstein_distance(r, c) / np.std(r), rel=1e-10)
        ca, cb = _numpy_counts(r, c, 8)
        assert row.loc["js", "statistic"] == pytest.approx(jensenshannon(ca, cb), rel=1e-10)
        assert row.loc["psi", "statistic"] == pytest.approx(mon.psi(r, c, bins=8).statistic,
                                                             rel=1e-12)
    assert rep.set_index(["feature", "method"]).loc[("c", "psi"), "nan_ref"] == 60
    drifted = rep[rep["method"].isin(["psi", "chi2"])].set_index("feature")["drifted"]
    assert drifted.to_dict() == {"a": False, "b": True, "c": False, "cls": True}
    chi = rep[rep["method"] == "chi2"].iloc[0]
    table = pd.crosstab(np.r_[np.zeros(len(ref)), np.ones(len(cur))],
                        np.r_[ref["cls"], cur["cls"]]).to_numpy()
    assert chi["p_value"] == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)


def test_drift_report_thresholds_and_methods():
    ref, cur = _frames()
    rep = mon.drift_report(ref[["a", "b"]], cur[["a", "b"]], methods=["psi", "ks"],
                           thresholds={"psi": 100.0, "ks": 1e-300})
    assert set(rep["method"]) == {"psi", "ks"} and not rep["drifted"].any()
    defaults = mon.drift_report(ref[["a"]], cur[["a"]])
    assert defaults.set_index("method")["threshold"].to_dict() == {
        "psi": 0.2, "ks": 0.05, "wasserstein": 0.1, "js": 0.1}
    with pytest.raises(ValueError, match="methods"):
        mon.drift_report(ref, cur, methods=["nope"])
    with pytest.raises(DataError, match="missing feature"):
        mon.drift_report(ref, cur.drop(columns="a"))


def test_drift_report_threaded_sort_equals_serial():
    rng = np.random.default_rng(5)
    ref = pd.DataFrame(rng.normal(size=(60_000, 3)), columns=list("xyz"))
    cur = pd.DataFrame(rng.normal(0.01, 1.0, size=(60_000, 3)), columns=list("xyz"))
    pd.testing.assert_frame_equal(mon.drift_report(ref, cur, threads=2),
                                  mon.drift_report(ref, cur, threads=1))


def test_drift_report_goes_to_the_store():
    ref, cur = _frames()
    ts = pd.date_range("2024-03-01", periods=len(cur), freq="1min", tz="UTC")
    cur = cur.assign(timestamp=ts)
    store = atl.store.LabStore(":memory:")
    rep = mon.drift_report(ref, cur)
    run_id = store.record_run(kind="monitoring")
    store.record_drift(rep, run_id=run_id, window_start=ts.min(), window_end=ts.max())
    stored = store.drift(run_id)
    assert len(stored) == len(rep)
    assert stored["window_end"].max() == ts.max()
    merged = stored.merge(rep, on=["feature", "method"], suffixes=("", "_rep"))
    assert (merged["drifted"] == merged["drifted_rep"]).all()
    np.testing.assert_allclose(merged["statistic"], merged["statistic_rep"])
    assert store.runs(kind="monitoring")["run_id"].tolist() == [run_id]
