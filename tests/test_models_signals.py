"""ML signals: the decision rule by hand, the wide views, the backtest, no lookahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import alphatrade_lab as atl
from alphatrade_lab.models import signals
from alphatrade_lab.testing import assert_no_lookahead


@pytest.fixture(scope="module")
def setup(sample_bars):
    hourly = atl.data.resample(sample_bars, "1h").groupby("symbol").head(1500) \
        .reset_index(drop=True)
    X = atl.features.technical(hourly)
    Xa, ya = atl.models.align(X, atl.models.labels(hourly, horizon=4, threshold=0.3,
                                                    vol_window=24))
    bundle = atl.models.train(Xa, ya, make_pipeline(StandardScaler(), LogisticRegression()),
                              n_splits=2, progress=False)
    return hourly, X, bundle


@pytest.mark.slow
@pytest.mark.parametrize("threshold", [0.34, 0.4, 0.5])
def test_rule_matches_a_hand_computation(setup, threshold):
    _, X, bundle = setup
    s = signals(bundle, X, threshold=threshold)
    p = bundle.predict_proba(X)
    up, down = p[1].to_numpy(), p[-1].to_numpy()
    expected = [1 if u >= threshold and u >= d else (-1 if d >= threshold and d > u else 0)
                for u, d in zip(up, down, strict=True)]
    assert s.frame["direction"].tolist() == expected
    assert (s.frame["entry"] == (s.frame["direction"] == 1)).all()
    assert (s.frame["exit"] == (s.frame["direction"] != 1)).all()
    conf = np.where(s.frame["direction"] == 1, up,
                    np.where(s.frame["direction"] == -1, down, np.maximum(up, down)))
    np.testing.assert_array_equal(s.frame["confidence"], conf)
    assert s.frame.index.equals(X.index)
    if threshold == 0.4:
        assert 0 < s.frame["entry"].mean() < 1  # not vacuous


def test_exit_only_on_flip(setup):
    _, X, bundle = setup
    s = signals(bundle, X, threshold=0.4, exit_on_flat=False)
    assert (s.frame["exit"] == (s.frame["direction"] == -1)).all()


def test_wide_views_feed_from_signals(setup):
    hourly, X, bundle = setup
    close = atl.data.to_wide(hourly, "close")
    s = signals(bundle, X, threshold=0.4)
    entries = s.wide("entry", close)
    assert entries.shape == close.shape and entries.dtypes.eq(bool).all()
    for sym in ("AAA", "CCC"):
        rows = s.frame.loc[s.frame["symbol"] == sym].set_index("timestamp")
        assert (entries[sym].loc[rows.index] == rows["entry"]).all()
    pf = s.backtest(close, fees=0.001)
    ref = atl.backtest.from_signals(close, entries, s.wide("exit", close), fees=0.001)
    pd.testing.assert_frame_equal(pf.equity, ref.equity)
    assert pf.stats()["trade_count"].sum() > 0


def test_signals_never_use_the_future(setup):
    hourly, _, bundle = setup
    few = hourly.loc[hourly["symbol"].isin(["BBB", "DDD"])].reset_index(drop=True)

    def sig(b):
        return signals(bundle, atl.features.technical(b), threshold=0.4).frame

    # Probabilities come from a BLAS matrix product, whose rounding can change with the
    # number of rows (a truncated frame): allow a few ulps, far below any real leak.
    assert assert_no_lookahead(sig, few, n_cuts=3, seed=11, rtol=1e-12) > 0
