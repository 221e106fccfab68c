"""handle_nan: each strategy against pandas or a hand loop, per symbol, past rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.features import NAN_STRATEGIES, handle_nan


@pytest.fixture(scope="module")
def X(sample_bars):
    """Features of two symbols with NaNs punched in at random places (plus warm-up NaNs)."""
    bars = sample_bars.loc[sample_bars["symbol"].isin(["BBB", "DDD"])]
    bars = bars.groupby("symbol").head(3000).reset_index(drop=True)
    X = atl.features.technical(bars, return_horizons=(1, 30), ma_windows=(20,))
    rng = np.random.default_rng(7)
    holes = rng.random((len(X), X.shape[1] - 2)) < 0.05
    values = X.iloc[:, 2:].mask(holes)
    return pd.concat([X.iloc[:, :2], values], axis=1)


FEATURES = ["ret_1", "ret_30", "vol_20", "rsi_14", "skew_60"]


def test_forward_fill_matches_pandas_groupby_ffill(X):
    out = handle_nan(X, "forward_fill")
    ref = X.groupby("symbol")[X.columns[2:].tolist()].ffill()
    pd.testing.assert_frame_equal(out.iloc[:, 2:], ref)
    report = out.attrs["nan_report"]
    for col in FEATURES:
        assert report["filled"][col] == X[col].isna().sum() - ref[col].isna().sum()
        assert report["remaining_nan"][col] == ref[col].isna().sum()
    assert report["dropped_rows"] == 0


def test_forward_fill_never_fills_from_later_rows_or_other_symbols():
    X = pd.DataFrame({"timestamp": pd.date_range("2024", periods=6, freq="1min", tz="UTC"),
                      "symbol": ["A", "A", "A", "B", "B", "B"],
                      "f": [np.nan, 2.0, np.nan, np.nan, np.nan, 5.0]})
    out = handle_nan(X, "forward_fill")
    np.testing.assert_array_equal(out["f"], [np.nan, 2.0, 2.0, np.nan, np.nan, 5.0])
    dropped = handle_nan(X, "forward_fill", leading="drop")
    assert dropped.index.tolist() == [1, 2, 5]
    assert dropped.attrs["nan_report"]["dropped_rows"] == 3
    assert dropped.attrs["nan_report"]["remaining_nan"] == {"f": 0}


def test_mean_without_given_means_is_an_expanding_mean_of_the_past(X):
    out = handle_nan(X, "mean")
    for col in FEATURES:
        expected = X[col].to_numpy().copy()
        for _, rows in X.groupby("symbol").indices.items():
            total, count = 0.0, 0
            for i in rows:  # hand loop: mean of earlier non-NaN values of the symbol
                v = X[col].iat[i]
                if np.isnan(v):
                    expected[i] = total / count if count else np.nan
                else:
                    total, count = total + v, count + 1
        np.testing.assert_allclose(out[col], expected, rtol=1e-12, atol=0)


def test_mean_with_training_means(X):
    train = X.iloc[:1000]
    means = train.iloc[:, 2:].mean()
    out = handle_nan(X, "mean", means=means)
    for col in FEATURES:
        pd.testing.assert_series_equal(out[col], X[col].fillna(means[col]))
    assert out.attrs["nan_report"]["remaining_nan"][col] == 0
    with pytest.raises(ValueError, match="'means'.*'vol_20'"):
        handle_nan(X, "mean", means=means.drop("vol_20"))


def test_zero_and_drop(X):
    zero = handle_nan(X, "zero")
    pd.testing.assert_frame_equal(zero.iloc[:, 2:], X.iloc[:, 2:].fillna(0.0))
    assert zero.attrs["nan_report"]["filled"]["rsi_14"] == X["rsi_14"].isna().sum()
    dropped = handle_nan(X, "drop")
    pd.testing.assert_frame_equal(dropped, X.dropna())
    assert dropped.attrs["nan_report"]["dropped_rows"] == len(X) - len(X.dropna())


def test_columns_argument_limits_what_is_touched(X):
    out = handle_nan(X, "zero", columns=["rsi_14"])
    assert not out["rsi_14"].isna().any()
    pd.testing.assert_series_equal(out["vol_20"], X["vol_20"])
    assert list(out.attrs["nan_report"]["filled"]) == ["rsi_14"]


def test_interleaved_symbols_are_filled_per_symbol():
    X = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:00",
                                                   "2024-01-01 00:01", "2024-01-01 00:01"],
                                                  utc=True),
                      "symbol": ["A", "B", "A", "B"], "f": [1.0, 7.0, np.nan, np.nan]})
    assert handle_nan(X, "forward_fill")["f"].tolist() == [1.0, 7.0, 1.0, 7.0]
    assert handle_nan(X, "mean")["f"].tolist() == [1.0, 7.0, 1.0, 7.0]


def test_input_is_not_modified(X):
    before = X.copy()
    for strategy in NAN_STRATEGIES:
        handle_nan(X, strategy)
    pd.testing.assert_frame_equal(X, before)
    assert "nan_report" not in X.attrs


def test_bad_arguments():
    X = pd.DataFrame({"symbol": ["A"], "f": [np.nan]})
    with pytest.raises(ValueError, match="'strategy'"):
        handle_nan(X, "median")
    with pytest.raises(ValueError, match="'leading'"):
        handle_nan(X, "zero", leading="bfill")
    with pytest.raises(DataError, match="column 'g'"):
        handle_nan(X, "zero", columns=["g"])
    with pytest.raises(DataError, match="DataFrame"):
        handle_nan(X["f"], "zero")
    backwards = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-02", "2024-01-01"], utc=True),
                              "symbol": ["A", "A"], "f": [1.0, np.nan]})
    with pytest.raises(DataError, match="'timestamp', row 1"):
        handle_nan(backwards, "forward_fill")


def test_symbol_index_level_is_used_for_grouping(X):
    indexed = X.set_index(["symbol", "timestamp"])
    out = handle_nan(indexed, "forward_fill")
    ref = handle_nan(X, "forward_fill").set_index(["symbol", "timestamp"])
    pd.testing.assert_frame_equal(out, ref)
