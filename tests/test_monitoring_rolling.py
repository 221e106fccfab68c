"""Rolling drift: windows against scipy, no lookahead, the plot, the store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alphatrade_lab as atl
from alphatrade_lab.testing import assert_no_lookahead

mon = atl.monitoring


def _frame(days=12, seed=0, change="2024-01-08"):
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=24 * days, freq="1h", tz="UTC")
    scale = np.where(ts >= pd.Timestamp(change, tz="UTC"), 3.0, 1.0)
    X = pd.DataFrame({"timestamp": ts, "x": rng.normal(size=len(ts)) * scale,
                      "y": rng.uniform(size=len(ts))})
    X.loc[X.index[30:35], "y"] = np.nan
    X.loc[X.index[200:203], "x"] = np.nan
    return X


def test_windows_equal_scipy_on_each_window():
    X = _frame()
    out = mon.rolling_drift(X, reference="5D", window="1D")
    ref_end = pd.Timestamp("2024-01-06", tz="UTC")
    assert out.attrs["reference_end"] == ref_end
    assert out["window_start"].min() == ref_end
    assert sorted(out["window_end"].unique()) == list(
        pd.date_range("2024-01-07", "2024-01-13", freq="1D", tz="UTC"))
    ref = X[X["timestamp"] < ref_end]
    for (start, feature, method), row in out.set_index(
            ["window_start", "feature", "method"]).iterrows():
        cur = X[(X["timestamp"] >= start) & (X["timestamp"] < start + pd.Timedelta("1D"))]
        a, b = ref[feature].dropna().to_numpy(), cur[feature].dropna().to_numpy()
        assert row["n_cur"] == len(b) and row["nan_cur"] == cur[feature].isna().sum()
        if method == "ks":
            res = stats.ks_2samp(a, b)
            assert abs(row["statistic"] - res.statistic) <= 1e-12
            assert abs(row["p_value"] - res.pvalue) <= 1e-6
        elif method == "wasserstein":
            assert row["statistic"] == pytest.approx(stats.wasserstein_distance(a, b)
                                                     / np.std(a), rel=1e-10)
        else:
            single = {"psi": mon.psi, "js": mon.js_distance}[method](a, b).statistic
            assert row["statistic"] == pytest.approx(single, rel=1e-12)


def test_detects_the_change_and_reference_forms_agree():
    X = _frame()
    out = mon.rolling_drift(X, reference="5D", window="1D", methods=["ks", "psi"])
    after = out[(out["feature"] == "x") & (out["method"] == "ks")
                & (out["window_start"] >= "2024-01-08")]
    assert len(after) == 5 and after["drifted"].all()  # every window after the change
    assert mon.first_drift(out, "ks", ["x"])["x"] <= pd.Timestamp("2024-01-09", tz="UTC")
    pair = mon.rolling_drift(X, reference=(None, "2024-01-06"), window="1D",
                             methods=["ks", "psi"])
    pd.testing.assert_frame_equal(out, pair, check_like=True)
    frame_ref = mon.rolling_drift(X[X["timestamp"] >= "2024-01-06"],
                                  reference=X[X["timestamp"] < "2024-01-06"], window="1D",
                                  methods=["ks", "psi"])
    cols = ["window_start", "feature", "method", "statistic", "p_value", "drifted"]
    pd.testing.assert_frame_equal(out[cols].reset_index(drop=True),
                                  frame_ref[cols].reset_index(drop=True))


def test_min_count_gives_nan_not_a_number():
    X = _frame()
    out = mon.rolling_drift(X.iloc[: 24 * 6 + 5], reference="6D", window="1D", min_count=10)
    assert out["n_cur"].max() == 5 and out["statistic"].isna().all() and not out["drifted"].any()


@pytest.mark.slow
def test_no_lookahead_on_features_of_bars(sample_bars):
    bars = sample_bars[sample_bars["symbol"].isin(["AAA", "BBB"])]
    bars = bars[bars["timestamp"] < "2024-01-21"].reset_index(drop=True)

    def func(b):
        X = atl.features.technical(atl.data.resample(b, "1h"))
        out = mon.rolling_drift(X, reference="5D", window="1D", methods=["ks", "psi"],
                                features=["ret_1", "vol_20", "hl_range"])
        return out.pivot_table(index="window_start", columns=["feature", "method"],
                               values="statistic", dropna=False)

    compared = assert_no_lookahead(func, bars, known_at=lambda ts: ts + pd.Timedelta("1D"),
                                   n_cuts=3, modes=("perturb", "truncate"))
    assert compared > 0


@pytest.mark.slow
def test_plot_and_store(tmp_path):
    X = _frame()
    store = atl.store.LabStore(tmp_path / "lab.duckdb")
    out = mon.rolling_drift(X, reference="5D", window="12h")
    run_id = store.record_run(kind="monitoring")
    assert store.record_drift(out, run_id=run_id) == int(np.isfinite(out["statistic"]).sum())
    stored = store.drift(run_id)
    assert len(stored) == int(np.isfinite(out["statistic"]).sum())
    assert set(stored["window_end"]) == set(out["window_end"])
    fig = mon.plot_rolling_drift(out, events={"change": "2024-01-08"})
    assert len(fig.axes) == 4
    fig.savefig(tmp_path / "drift.png")
