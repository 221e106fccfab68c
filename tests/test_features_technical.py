"""Technical features against independent references: pandas rolling/ewm, scipy, hand loops."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alphatrade_lab as atl
from alphatrade_lab.features import FeatureSpec, technical


@pytest.fixture(scope="module")
def bars(sample_bars):
    """Three symbols, 20 days of minute bars each (86,400 rows)."""
    sel = sample_bars["symbol"].isin(["AAA", "CCC", "EEE"])
    return sample_bars.loc[sel].groupby("symbol").head(20 * 1440).reset_index(drop=True)


@pytest.fixture(scope="module")
def X(bars):
    return technical(bars)


def per_symbol(bars, series, fn):
    """Apply ``fn`` to each symbol's part of ``series`` (the reference never crosses symbols)."""
    return series.groupby(bars["symbol"], sort=False, group_keys=False).apply(fn)


def wilder(x: pd.Series, w: int) -> pd.Series:
    """Wilder smoothing of x[1:], seeded with the mean of x[1:w+1] (pandas ewm from there on)."""
    seeded = x.copy()
    seeded.iloc[: w + 1] = np.nan
    if len(x) > w:
        seeded.iloc[w] = x.iloc[1 : w + 1].mean()
    return seeded.ewm(alpha=1.0 / w, adjust=False).mean()


def assert_close(ours, ref, rtol=1e-9, atol=1e-12):
    ours = np.asarray(ours, dtype=float)
    ref = np.asarray(ref, dtype=float)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg="NaN positions differ")
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol)


def window_std(bars, series, w, ddof):
    """Exact two-pass std of every full window, per symbol (numpy on sliding windows).

    Used for price levels, where pandas' online rolling variance loses ~1e-9 of relative
    precision on windows of closely spaced prices.
    """
    def one(s):
        out = np.full(len(s), np.nan)
        if len(s) >= w:
            out[w - 1 :] = np.lib.stride_tricks.sliding_window_view(s.to_numpy(), w).std(
                axis=1, ddof=ddof)
        return pd.Series(out, index=s.index)

    return per_symbol(bars, series, one)


def log_close(bars):
    return np.log(bars["close"])


# --------------------------------------------------------------------- each feature vs pandas


@pytest.mark.parametrize("h", [1, 5, 15, 60])
def test_log_returns(bars, X, h):
    ref = per_symbol(bars, log_close(bars), lambda s: s.diff(h))
    assert_close(X[f"ret_{h}"], ref, atol=1e-12)


@pytest.mark.parametrize("w", [20, 60])
def test_volatility_is_sample_std_of_log_returns(bars, X, w):
    ref = per_symbol(bars, log_close(bars), lambda s: s.diff().rolling(w).std())
    assert_close(X[f"vol_{w}"], ref)


@pytest.mark.parametrize("w", [20, 50, 200])
def test_distance_to_moving_average(bars, X, w):
    ref = bars["close"] / per_symbol(bars, bars["close"], lambda s: s.rolling(w).mean()) - 1
    assert_close(X[f"ma_dist_{w}"], ref, atol=1e-13)


def test_rsi_matches_wilder_with_pandas_ewm(bars, X):
    def rsi(close):
        d = close.diff()
        gain, loss = wilder(d.clip(lower=0), 14), wilder((-d).clip(lower=0), 14)
        return 100 - 100 / (1 + gain / loss)

    assert_close(X["rsi_14"], per_symbol(bars, bars["close"], rsi), atol=1e-9)


def test_rsi_matches_a_hand_loop():
    """The textbook recursion written out, on a short series with ups, downs and a flat step."""
    close = [44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89,
             46.03, 45.61, 46.28, 46.28, 46.00, 46.03, 46.41, 46.22, 45.64]
    n, w = len(close), 5
    expected = [np.nan] * n
    ups = [max(close[i] - close[i - 1], 0.0) for i in range(1, n)]
    downs = [max(close[i - 1] - close[i], 0.0) for i in range(1, n)]
    ag, al = sum(ups[:w]) / w, sum(downs[:w]) / w
    expected[w] = 100 - 100 / (1 + ag / al)
    for i in range(w + 1, n):
        ag = (ag * (w - 1) + ups[i - 1]) / w
        al = (al * (w - 1) + downs[i - 1]) / w
        expected[i] = 100 - 100 / (1 + ag / al)
    bars = one_symbol(close)
    assert_close(technical(bars, rsi_window=w)[f"rsi_{w}"], expected, atol=1e-10)


def test_rsi_matches_ta_style_ewm_after_burn_in(bars, X):
    """``ta``'s RSIIndicator definition: ``ewm(com=w - 1, adjust=False)`` of the gains and
    losses from the first change (no SMA seed). The seeds' difference decays as
    ``(1 - 1/w)**t``, so far from the start the two agree."""
    def rsi(close):
        d = close.diff()
        up = d.clip(lower=0).ewm(com=13, adjust=False).mean()
        down = (-d).clip(lower=0).ewm(com=13, adjust=False).mean()
        return 100 - 100 / (1 + up / down)

    ref = per_symbol(bars, bars["close"], rsi)
    late = bars.groupby("symbol").cumcount() >= 1000
    np.testing.assert_allclose(X["rsi_14"][late], ref[late], rtol=0, atol=1e-8)


def test_rsi_on_flat_and_one_sided_prices():
    """Flat: average gain and loss are both 0, RSI 50 (not NaN). Only rises: 100. Rises
    then flat: the loss average stays 0 while the gain decays, still 100. Falls then
    flat: 0."""
    w = 5
    flat = technical(one_symbol(np.full(30, 10.0)), rsi_window=w)[f"rsi_{w}"]
    assert flat.iloc[:w].isna().all() and (flat.iloc[w:] == 50.0).all()
    up = technical(one_symbol(np.r_[np.linspace(10, 11, 10), np.full(20, 11.0)]),
                   rsi_window=w)[f"rsi_{w}"]
    assert (up.iloc[w:] == 100.0).all()
    down = technical(one_symbol(np.r_[np.linspace(11, 10, 10), np.full(20, 10.0)]),
                     rsi_window=w)[f"rsi_{w}"]
    assert (down.iloc[w:] == 0.0).all()


def test_macd_matches_pandas_ewm(bars, X):
    def lines(close):
        m = (close.ewm(span=12, adjust=False).mean()
             - close.ewm(span=26, adjust=False).mean())
        s = m.ewm(span=9, adjust=False).mean()
        k = np.arange(len(close))
        return pd.DataFrame({"macd": m.where(k >= 25), "macd_signal": s.where(k >= 33),
                             "macd_hist": (m - s).where(k >= 33)}, index=close.index)

    ref = pd.concat([lines(g) for _, g in bars.groupby("symbol", sort=False)["close"]])
    for col in ("macd", "macd_signal", "macd_hist"):
        assert_close(X[col], ref[col], atol=1e-9)


def test_atr_matches_wilder_true_range(bars, X):
    def atr(g):
        prev = g["close"].shift()
        tr = pd.concat([g["high"] - g["low"], (g["high"] - prev).abs(),
                        (g["low"] - prev).abs()], axis=1).max(axis=1, skipna=False)
        return wilder(tr, 14)

    ref = pd.concat([atr(g) for _, g in bars.groupby("symbol", sort=False)])
    assert_close(X["atr_14"], ref, atol=1e-9)


def test_bollinger_percent_b_uses_population_std(bars, X):
    pandas_sd = per_symbol(bars, bars["close"], lambda s: s.rolling(20).std(ddof=0))
    assert_close(window_std(bars, bars["close"], 20, ddof=0), pandas_sd, rtol=1e-6)
    mid = per_symbol(bars, bars["close"], lambda s: s.rolling(20).mean())
    sd = window_std(bars, bars["close"], 20, ddof=0)
    lower, upper = mid - 2 * sd, mid + 2 * sd
    assert_close(X["bb_pctb_20"], (bars["close"] - lower) / (upper - lower), atol=1e-9)


def test_volume_zscore(bars, X):
    mean = per_symbol(bars, bars["volume"], lambda s: s.rolling(20).mean())
    sd = per_symbol(bars, bars["volume"], lambda s: s.rolling(20).std())
    assert_close(X["volume_z_20"], (bars["volume"] - mean) / sd, atol=1e-9)


def test_high_low_range(bars, X):
    assert_close(X["hl_range"], (bars["high"] - bars["low"]) / bars["close"])


def test_skew_matches_pandas_rolling_skew(bars, X):
    ref = per_symbol(bars, log_close(bars), lambda s: s.diff().rolling(60).skew())
    assert_close(X["skew_60"], ref, atol=1e-9)


def test_skew_matches_scipy_on_single_windows(bars, X):
    r = per_symbol(bars, log_close(bars), lambda s: s.diff()).to_numpy()
    for i in (60, 61, 5000, 20 * 1440 - 1, 20 * 1440 + 60, len(bars) - 1):
        expected = stats.skew(r[i - 59 : i + 1], bias=False)
        assert X["skew_60"].iat[i] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_rolling_moments_stay_accurate_over_a_whole_year(sample_bars):
    """A year of minute bars: sliding sums must not drift away from pandas."""
    one = sample_bars.loc[sample_bars["symbol"] == "EEE"].reset_index(drop=True)
    X = technical(one, vol_windows=(30,), bb_window=30)
    r = np.log(one["close"]).diff()
    assert_close(X["vol_30"], r.rolling(30).std())
    mid, sd = one["close"].rolling(30).mean(), window_std(one, one["close"], 30, ddof=0)
    assert_close(X["bb_pctb_30"], (one["close"] - mid + 2 * sd) / (4 * sd), atol=1e-9)


# --------------------------------------------------------------------- structure and the spec


def test_output_is_long_form_in_input_order(bars, X):
    assert X.columns.tolist() == ["timestamp", "symbol", *FeatureSpec().feature_names]
    assert X.index.equals(bars.index)
    pd.testing.assert_series_equal(X["timestamp"], bars["timestamp"])
    pd.testing.assert_series_equal(X["symbol"], bars["symbol"])
    assert (X.dtypes.iloc[2:] == np.float64).all()


def test_windows_never_cross_symbols(bars, X):
    """Each symbol alone gives exactly the same features as inside the full frame."""
    for sym, g in bars.groupby("symbol"):
        alone = technical(g.reset_index(drop=True))
        part = X.loc[X["symbol"] == sym].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, part)


def test_non_default_windows_match_pandas(bars):
    spec = FeatureSpec(return_horizons=(3,), vol_windows=(7,), ma_windows=(11,), rsi_window=9,
                       macd_fast=5, macd_slow=13, macd_signal=4, atr_window=6, bb_window=10,
                       bb_k=1.5, volume_window=15, skew_window=25)
    X = technical(bars, spec)
    assert X.columns.tolist()[2:] == ["ret_3", "vol_7", "ma_dist_11", "rsi_9", "macd",
                                      "macd_signal", "macd_hist", "atr_6", "bb_pctb_10",
                                      "volume_z_15", "hl_range", "skew_25"]
    lc = log_close(bars)
    assert_close(X["ret_3"], per_symbol(bars, lc, lambda s: s.diff(3)))
    assert_close(X["vol_7"], per_symbol(bars, lc, lambda s: s.diff().rolling(7).std()))
    assert_close(X["skew_25"], per_symbol(bars, lc, lambda s: s.diff().rolling(25).skew()),
                 atol=1e-9)
    mid = per_symbol(bars, bars["close"], lambda s: s.rolling(10).mean())
    sd = window_std(bars, bars["close"], 10, ddof=0)
    assert_close(X["bb_pctb_10"], (bars["close"] - mid + 1.5 * sd) / (3 * sd), atol=1e-9)
    macd = per_symbol(bars, bars["close"], lambda s: (s.ewm(span=5, adjust=False).mean()
                                                      - s.ewm(span=13, adjust=False).mean()))
    first = bars.groupby("symbol").cumcount()
    assert_close(X["macd"], macd.where(first >= 12), atol=1e-9)


def test_spec_round_trips_through_json_and_recomputes(bars):
    spec = FeatureSpec(ma_windows=[10, 30], rsi_window=7, bb_k=2)
    restored = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert restored == spec and restored.ma_windows == (10, 30)
    assert FeatureSpec.from_json(spec.to_json()) == spec
    head = bars.groupby("symbol").head(400).reset_index(drop=True)
    X = restored.compute(head)
    pd.testing.assert_frame_equal(X, technical(head, spec))
    pd.testing.assert_frame_equal(X, technical(head, ma_windows=(10, 30), rsi_window=7))
    assert X.attrs["feature_spec"] == spec.to_dict()
    # keyword windows override the spec's
    assert "rsi_21" in technical(head, spec, rsi_window=21).columns


def test_spec_rejects_unknown_keys_and_kinds():
    with pytest.raises(ValueError, match="unknown keys"):
        FeatureSpec.from_dict({"rsi_window": 14, "rsi_windw": 3})
    with pytest.raises(ValueError, match="kind"):
        FeatureSpec.from_dict({"kind": "sentiment"})
    with pytest.raises(TypeError):
        technical(atl.data.load_sample(["AAA"]).head(50), spec={"rsi_window": 3})


def test_warmup_is_the_first_row_where_every_feature_exists(bars, X):
    first_full = X.iloc[:, 2:].notna().all(axis=1).groupby(X["symbol"]).idxmax()
    starts = bars.groupby("symbol").head(1).set_index("symbol").index
    for sym in starts:
        offset = first_full[sym] - bars.index[bars["symbol"] == sym][0]
        assert offset == FeatureSpec().warmup


# --------------------------------------------------------------------- helpers


def one_symbol(close, volume=None, spread=0.01):
    close = np.asarray(close, dtype=float)
    n = len(close)
    open_ = np.concatenate([[close[0]], close[:-1]])
    return pd.DataFrame({
        "timestamp": pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC"),
        "symbol": "ONE",
        "open": open_,
        "high": np.maximum(open_, close) + spread,
        "low": np.minimum(open_, close) - spread,
        "close": close,
        "volume": np.full(n, 100.0) if volume is None else np.asarray(volume, dtype=float),
    })
