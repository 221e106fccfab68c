"""multi_timeframe: pandas reference, the close-time join rule, and the naive join's leak."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.features import multi_timeframe
from alphatrade_lab.testing import assert_no_lookahead

BASE = pd.Timedelta("1min")


@pytest.fixture(scope="module")
def bars(sample_bars):
    """Two symbols, 75 days: enough for 50 daily bars, with the sample's missing minutes."""
    sel = sample_bars["symbol"].isin(["AAA", "DDD"])
    return sample_bars.loc[sel].groupby("symbol").head(75 * 1440).reset_index(drop=True)


def higher_features(bars, tf, fast=20, slow=50, mom=20):
    """Trend and momentum per higher bar, with pandas rolling, keyed by open and close time."""
    hb = atl.data.resample(bars, tf)
    g = hb.groupby("symbol")["close"]
    f = g.transform(lambda s: s.rolling(fast).mean())
    s = g.transform(lambda s: s.rolling(slow).mean())
    trend = np.sign(f - s)
    momentum = g.transform(lambda s: s.pct_change().rolling(mom).mean())
    return pd.DataFrame({"symbol": hb["symbol"], "open_time": hb["timestamp"],
                         "close_time": hb["timestamp"] + pd.Timedelta(tf),
                         "trend": trend, "momentum": momentum})


def asof(bars, higher, left_on, right_on):
    """Per symbol, the last higher row with ``higher[right_on] <= left key``."""
    left = bars[["timestamp", "symbol"]].assign(key=left_on, row=np.arange(len(bars)))
    right = higher.assign(key=higher[right_on])
    merged = pd.merge_asof(left.sort_values("key"), right.sort_values("key")[
        ["key", "symbol", "trend", "momentum"]], on="key", by="symbol", direction="backward",
        allow_exact_matches=True)
    return merged.sort_values("row").reset_index(drop=True)


def reference(bars, tfs, **windows):
    out = bars[["timestamp", "symbol"]].copy()
    for tf in tfs:
        j = asof(bars, higher_features(bars, tf, **windows), bars["timestamp"] + BASE,
                 "close_time")
        out[f"trend_{tf}"] = j["trend"].to_numpy()
        out[f"momentum_{tf}"] = j["momentum"].to_numpy()
    # Three-valued logic written out row by row: NaN is unknown.
    rows = out[[f"trend_{tf}" for tf in tfs]].to_numpy()
    align, bull, bear = [], [], []
    for r in rows:
        known = [x for x in r if not np.isnan(x)]
        align.append(float(sum(x == 1 for x in known)) if len(known) == len(r) else np.nan)
        for acc, want in ((bull, 1), (bear, -1)):
            if any(x != want for x in known):
                acc.append(0.0)
            elif len(known) == len(r):
                acc.append(1.0)
            else:
                acc.append(np.nan)
    out["trend_alignment"] = align
    out["all_tf_bullish"] = bull
    out["all_tf_bearish"] = bear
    return out


def naive(bars, tf):
    """The classic mistake: as-of join on the higher bars' *open* timestamps."""
    j = asof(bars, higher_features(bars, tf), bars["timestamp"], "open_time")
    return bars[["timestamp", "symbol"]].assign(trend=j["trend"].to_numpy(),
                                                momentum=j["momentum"].to_numpy())


@pytest.mark.slow
def test_matches_pandas_reference(bars):
    tfs = ["1h", "4h", "1D"]
    ours = multi_timeframe(bars, tfs)
    ref = reference(bars, tfs)
    pd.testing.assert_frame_equal(ours, ref, check_exact=False, rtol=1e-9, atol=1e-12)
    assert ours["trend_1D"].notna().any() and ours["trend_1D"].isna().any()


@pytest.mark.slow
def test_non_default_windows_match_pandas_reference(bars):
    tfs = ["15min", "2h"]
    ours = multi_timeframe(bars, tfs, fast=5, slow=12, momentum_window=3)
    ref = reference(bars, tfs, fast=5, slow=12, mom=3)
    pd.testing.assert_frame_equal(ours, ref, check_exact=False, rtol=1e-9, atol=1e-12)
    # The comparison is not vacuous: every state occurs.
    assert set(ours["trend_alignment"].dropna()) == {0, 1, 2}
    for col in ("all_tf_bullish", "all_tf_bearish"):
        assert set(ours[col].dropna()) == {0.0, 1.0} and ours[col].isna().any()


def test_higher_bar_is_used_from_the_base_bar_that_closes_with_it(bars):
    one = bars.loc[bars["symbol"] == "AAA"].reset_index(drop=True)
    M = multi_timeframe(one, ["1h"], fast=2, slow=3, momentum_window=1).set_index("timestamp")
    hourly = atl.data.resample(one, "1h").set_index("timestamp")["close"]
    momentum = hourly.pct_change()
    t = pd.Timestamp("2024-01-02 10:00", tz="UTC")  # the hourly bar [10:00, 11:00)
    # Base bar 10:59 closes at 11:00: it may use the 10:00 bar; 10:58 may only use 09:00.
    assert M.loc[t + pd.Timedelta("59min"), "momentum_1h"] == pytest.approx(momentum[t])
    assert M.loc[t + pd.Timedelta("58min"), "momentum_1h"] == pytest.approx(
        momentum[t - pd.Timedelta("1h")])


def test_naive_open_time_join_leaks_exactly_one_higher_bar_minus_one_base_bar(bars):
    """Our value at t equals the naive join's at t + base - Δ: the naive join sees Δ - base
    of the future (59 minutes of a forming hourly bar)."""
    tf, step = "1h", pd.Timedelta("1h")
    ours = multi_timeframe(bars, [tf]).set_index(["symbol", "timestamp"])
    bad = naive(bars, tf)
    shifted = bad.assign(timestamp=bad["timestamp"] + step - BASE).set_index(
        ["symbol", "timestamp"])
    common = ours.index.intersection(shifted.index)
    assert len(common) > 0.9 * len(ours)
    np.testing.assert_allclose(ours.loc[common, "momentum_1h"].to_numpy(),
                               shifted.loc[common, "momentum"].to_numpy(), rtol=1e-9)
    # ... and without the shift they differ almost everywhere once values exist.
    unshifted = bad.set_index(["symbol", "timestamp"])["momentum"]
    both = ours["momentum_1h"].notna() & unshifted.reindex(ours.index).notna()
    assert (ours.loc[both, "momentum_1h"] != unshifted.reindex(ours.index)[both]).mean() > 0.9


@pytest.mark.slow
def test_harness_catches_the_naive_join_and_passes_ours(bars):
    def naive_hourly(b):
        return naive(b, "1h")

    with pytest.raises(AssertionError, match="lookahead"):
        assert_no_lookahead(naive_hourly, bars, n_cuts=2, modes=("perturb",))
    with pytest.raises(AssertionError, match="lookahead"):
        assert_no_lookahead(naive_hourly, bars, n_cuts=2, modes=("truncate",))
    assert assert_no_lookahead(lambda b: multi_timeframe(b, ["1h"]), bars, n_cuts=3) > 0


def test_before_enough_higher_bars_everything_is_unknown_not_bearish(bars):
    first_day = bars.groupby("symbol").head(1440).reset_index(drop=True)
    M = multi_timeframe(first_day, ["1h", "4h"])
    assert M[["trend_1h", "trend_4h"]].isna().all().all()  # 50 bars never reached
    assert M["momentum_1h"].notna().any()  # 21 hourly bars are reached
    assert M[["trend_alignment", "all_tf_bullish", "all_tf_bearish"]].isna().all().all()


def test_one_known_disagreeing_trend_settles_all_tf_bullish(bars):
    """With the hourly trend known and the daily one not yet, a bearish hour makes
    ``all_tf_bullish`` 0 (known false), a bullish one leaves it unknown."""
    M = multi_timeframe(bars.groupby("symbol").head(10 * 1440).reset_index(drop=True),
                        ["1h", "1D"], fast=3, slow=5)
    early = M["trend_1D"].isna() & M["trend_1h"].notna()
    assert early.any()
    bear = early & (M["trend_1h"] == -1)
    bull = early & (M["trend_1h"] == 1)
    assert bear.any() and bull.any()
    assert (M.loc[bear, "all_tf_bullish"] == 0).all() and M.loc[bull, "all_tf_bullish"].isna().all()
    assert (M.loc[bull, "all_tf_bearish"] == 0).all() and M.loc[bear, "all_tf_bearish"].isna().all()
    assert M.loc[early, "trend_alignment"].isna().all()


def test_output_layout(bars):
    M = multi_timeframe(bars, ["4h"], fast=3, slow=5)
    assert M.index.equals(bars.index)
    assert M.columns.tolist() == ["timestamp", "symbol", "trend_4h", "momentum_4h",
                                  "trend_alignment", "all_tf_bullish", "all_tf_bearish"]
    for col in ("trend_alignment", "all_tf_bullish", "all_tf_bearish"):
        assert M[col].dtype == np.float64, col
    assert set(M["trend_4h"].dropna().unique()) <= {-1.0, 0.0, 1.0}
    pd.testing.assert_series_equal(M["symbol"], bars["symbol"])
