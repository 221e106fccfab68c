"""The leakage harness over every public feature function (both modes: perturb and truncate)."""

from __future__ import annotations

import numpy as np
import pytest

from alphatrade_lab.features import (
    NAN_STRATEGIES,
    FeatureSpec,
    handle_nan,
    multi_timeframe,
    technical,
)
from alphatrade_lab.testing import assert_no_lookahead


@pytest.fixture(scope="module")
def bars(sample_bars):
    """All five symbols, 3,000 minute bars each."""
    return sample_bars.groupby("symbol").head(3000).reset_index(drop=True)


@pytest.fixture(scope="module")
def long_bars(sample_bars):
    """Two symbols, 70 days: daily trends exist after day 50, inside the harness's cut range."""
    sel = sample_bars["symbol"].isin(["BBB", "EEE"])
    return sample_bars.loc[sel].groupby("symbol").head(70 * 1440).reset_index(drop=True)


SPECS = {
    "default": FeatureSpec(),
    "short": FeatureSpec(return_horizons=(1, 2), vol_windows=(2, 5), ma_windows=(3,),
                         rsi_window=2, macd_fast=2, macd_slow=3, macd_signal=2, atr_window=2,
                         bb_window=2, volume_window=3, skew_window=3),
    "long": FeatureSpec(return_horizons=(240,), vol_windows=(500,), ma_windows=(1000,),
                        rsi_window=100, macd_fast=50, macd_slow=300, macd_signal=50,
                        atr_window=300, bb_window=400, volume_window=700, skew_window=900),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", SPECS)
def test_technical(bars, name):
    spec = SPECS[name]
    X = technical(bars, spec)
    assert X[spec.feature_names].notna().all(axis=1).mean() > 0.5  # not vacuous
    assert assert_no_lookahead(lambda b: technical(b, spec), bars, n_cuts=4, seed=1) > 0


def test_technical_with_keyword_windows(bars):
    assert assert_no_lookahead(lambda b: technical(b, rsi_window=5, ma_windows=(7, 70)), bars,
                               n_cuts=3, seed=2) > 0


@pytest.mark.slow
@pytest.mark.parametrize("strategy", NAN_STRATEGIES)
@pytest.mark.parametrize("leading", ["keep", "drop"])
def test_handle_nan(bars, strategy, leading):
    def punched(b):
        """Features with holes that depend only on each row's own timestamp."""
        X = technical(b, return_horizons=(1, 5), vol_windows=(20,), ma_windows=(30,))
        minute = X["timestamp"].dt.minute.to_numpy()
        for k, col in enumerate(["ret_5", "vol_20", "rsi_14"]):
            X.loc[(minute + 7 * k) % 29 == 0, col] = np.nan
        return handle_nan(X, strategy, leading=leading)

    assert len(punched(bars)) > 0.8 * len(bars)
    assert assert_no_lookahead(punched, bars, n_cuts=3, seed=3) > 0


def test_handle_nan_with_training_means(bars):
    X = technical(bars)
    means = X.iloc[:, 2:].mean()
    assert assert_no_lookahead(lambda b: handle_nan(technical(b), "mean", means=means), bars,
                               n_cuts=3) > 0


@pytest.mark.slow
def test_multi_timeframe_default(long_bars):
    M = multi_timeframe(long_bars)
    assert M["trend_1D"].notna().any()  # the daily trend is inside the checked range
    assert assert_no_lookahead(multi_timeframe, long_bars, n_cuts=3, seed=4) > 0


def test_multi_timeframe_non_default(bars):
    def short(b):
        return multi_timeframe(b, ["5min", "30min", "2h"], fast=3, slow=6, momentum_window=4)

    assert short(bars)["all_tf_bullish"].any()
    assert assert_no_lookahead(short, bars, n_cuts=4, seed=5) > 0


def test_harness_catches_means_taken_from_the_whole_sample(bars):
    """Negative control: filling with means of the data being filled leaks the future."""
    def leaky(b):
        X = technical(b)
        return handle_nan(X, "mean", means=X.iloc[:, 2:].mean())

    with pytest.raises(AssertionError, match="lookahead"):
        assert_no_lookahead(leaky, bars, n_cuts=2, modes=("perturb",))
