"""The embedded sample market: shape, determinism and the stylized facts it promises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alphatrade_lab as atl


@pytest.fixture(scope="module")
def hourly(sample_bars):
    return atl.data.to_wide(atl.data.resample(sample_bars, "1h"), "close")


def test_shape_and_calendar(sample_bars):
    assert sorted(sample_bars["symbol"].unique()) == list(atl.data.SYMBOLS)
    per_symbol = sample_bars.groupby("symbol").size()
    minutes = 365 * 24 * 60
    assert (per_symbol <= minutes).all() and (per_symbol >= 0.998 * minutes).all()
    assert sample_bars["timestamp"].min() == pd.Timestamp("2024-01-01", tz="UTC")
    # 24/7: weekend and night bars exist in every symbol.
    weekend = sample_bars[sample_bars["timestamp"].dt.day_of_week >= 5]
    assert weekend.groupby("symbol").size().min() > 100_000
    assert atl.data.bar_length(sample_bars) == pd.Timedelta("1min")


def test_file_is_small_enough():
    assert atl.data.sample_path().stat().st_size <= 30 * 2**20


@pytest.mark.slow
def test_sample_is_the_public_generator_with_its_seed(sample_bars):
    regenerated, regimes = atl.data.synthetic(seed=atl.data.SAMPLE_SEED, return_regimes=True)
    pd.testing.assert_frame_equal(regenerated, sample_bars, check_exact=True)
    pd.testing.assert_frame_equal(regimes, atl.data.sample_regimes())


def test_same_seed_same_numbers_other_seed_other_numbers():
    a = atl.data.synthetic(n_symbols=2, days=3, seed=11)
    b = atl.data.synthetic(n_symbols=2, days=3, seed=11)
    c = atl.data.synthetic(n_symbols=2, days=3, seed=12)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert not np.allclose(a["close"].to_numpy()[:100], c["close"].to_numpy()[:100])


def test_generator_arguments_are_checked():
    with pytest.raises(ValueError, match="n_symbols"):
        atl.data.synthetic(n_symbols=9)
    with pytest.raises(ValueError, match="days"):
        atl.data.synthetic(days=0)


def test_gaps_missing_bars_and_jumps(sample_bars):
    diffs = sample_bars.groupby("symbol")["timestamp"].diff().dropna()
    assert (diffs > pd.Timedelta("1min")).sum() >= 5 * 3  # isolated missing bars and outages
    assert diffs.max() >= pd.Timedelta("5min")
    prev_close = sample_bars.groupby("symbol")["close"].shift()
    gap = np.log(sample_bars["open"] / prev_close).abs()
    assert (gap > 0.02).sum() >= 10  # price jumps at the open


def test_fat_tails(sample_bars):
    r = np.log(sample_bars["close"] / sample_bars["open"])
    for sym, g in r.groupby(sample_bars["symbol"]):
        assert stats.kurtosis(g) > 3.0, sym


def test_volatility_clusters(hourly):
    absret = np.log(hourly).diff().abs()
    for sym in hourly:
        s = absret[sym].dropna()
        acf = [s.autocorr(lag) for lag in (1, 6, 24)]
        assert min(acf) > 0.1, (sym, acf)


def test_symbols_are_correlated(hourly):
    corr = np.log(hourly).diff().corr().to_numpy()
    off = corr[~np.eye(len(corr), dtype=bool)]
    assert off.min() > 0.25 and off.max() < 0.8


def test_intraday_seasonality(sample_bars):
    hour = sample_bars["timestamp"].dt.hour
    volume = sample_bars.groupby(hour)["volume"].median()
    absret = np.log(sample_bars["close"] / sample_bars["open"]).abs().groupby(hour).mean()
    assert volume[14] > 1.8 * volume[4]
    assert absret[14] > 1.3 * absret[4]


def test_volatility_regime_change(sample_bars):
    daily = atl.data.to_wide(atl.data.resample(sample_bars, "1D"), "close")
    r = np.log(daily).diff()
    n = len(r)
    inside = r.iloc[int(0.5 * n) + 1:int(0.65 * n)].std()
    outside = pd.concat([r.iloc[:int(0.5 * n)], r.iloc[int(0.65 * n) + 1:]]).std()
    ratio = inside / outside  # the model doubles volatility; GARCH bursts blur it outside
    assert ratio.mean() > 1.5 and ratio.min() > 1.2, ratio


@pytest.mark.slow
def test_regimes_leave_their_mark(sample_bars):
    regimes = atl.data.sample_regimes()
    assert set(regimes["regime"]) == set(atl.data.sample.REGIME_NAMES)
    close = atl.data.to_wide(sample_bars, "close")
    day = close.index.floor("1D")
    # Trend days drift in their direction: the market's mean daily move, signed, is positive.
    daily = np.log(close).groupby(day).agg(lambda x: x.dropna().iloc[-1] - x.dropna().iloc[0])
    trend = regimes["regime"] == "trend"
    signed = daily.loc[trend].mul(regimes.loc[trend, "direction"], axis=0).mean(axis=1)
    assert signed.mean() > 0.005, signed.mean()

    # Mean-reverting days: 4-hour moves are smaller than 240 one-minute moves add up to.
    def variance_ratio(kind):
        days = regimes.index[regimes["regime"] == kind]
        sel = day.isin(days)
        logp = np.log(close[sel])
        r1 = logp.diff()
        r240 = logp.groupby(logp.index.floor("4h")).agg(lambda x: x.iloc[-1] - x.iloc[0])
        return float((r240**2).sum().sum() / (r1**2).sum().sum())

    assert variance_ratio("mean_reversion") < 0.85 * variance_ratio("random_walk")


@pytest.fixture(scope="module")
def xnys_daily():
    return atl.data.synthetic(n_symbols=2, start="2024-01-01", days=366, freq="1D",
                              calendar="XNYS", seed=3, return_regimes=True)


def test_daily_bars_on_an_exchange_calendar_are_its_sessions(xnys_daily):
    import exchange_calendars as xcals

    bars, regimes = xnys_daily
    cal = xcals.get_calendar("XNYS", start="2023-12-01", end="2025-01-31")
    sessions = cal.sessions_in_range("2024-01-02", "2024-12-31")
    assert len(sessions) == 252  # 2024: 262 weekdays, 10 NYSE holidays (Good Friday included)
    for _, g in bars.groupby("symbol"):
        stamps = pd.DatetimeIndex(g["timestamp"])
        # Stamped at the session open in UTC (a bar's timestamp is its open time): 14:30 in
        # winter, 13:30 in summer.
        pd.testing.assert_index_equal(stamps, pd.DatetimeIndex(cal.opens[sessions]),
                                      check_names=False)
        days = stamps.normalize().tz_localize(None)
        assert (days == sessions).all()
        assert pd.Timestamp("2024-12-25") not in days and pd.Timestamp("2024-07-04") not in days
        assert pd.Timestamp("2024-03-29") not in days  # Good Friday
        assert (stamps.day_of_week < 5).all()
    assert stamps[days == pd.Timestamp("2024-07-03")].hour.tolist() == [13]  # 09:30 ET, summer
    assert stamps[days == pd.Timestamp("2024-01-02")].hour.tolist() == [14]  # 09:30 ET, winter
    assert (regimes.index.tz_localize(None) == sessions).all()


def test_calendar_daily_volatility_is_annualised_over_sessions(xnys_daily):
    close = atl.data.to_wide(xnys_daily[0], "close")
    annual = np.log(close).diff().std() * np.sqrt(252)
    # The per-bar volatility is scaled by sqrt(252 sessions), not sqrt(365 days): AAA's 55% a
    # year (the volatility regime change and GARCH bursts push the sample figure above it).
    assert 0.45 < annual["AAA"] < 1.0, annual


def test_intraday_bars_on_an_exchange_calendar_stay_inside_sessions():
    import exchange_calendars as xcals

    bars = atl.data.synthetic(n_symbols=1, start="2024-11-25", days=7, freq="1h",
                              calendar="XNYS", seed=5)
    cal = xcals.get_calendar("XNYS", start="2024-11-01", end="2024-12-31")
    expected = cal.trading_index("2024-11-25", "2024-11-29", "1h", intervals=True,
                                 closed="left", force=True).left
    stamps = pd.DatetimeIndex(bars["timestamp"])
    pd.testing.assert_index_equal(stamps, pd.DatetimeIndex(expected), check_names=False)
    # Regular sessions: 14:30 to 20:30 UTC (7 hourly bars), none on Thanksgiving (28th);
    # the 29th closes at 13:00 ET (18:00 UTC): bars at 14:30 to 17:30.
    per_day = stamps.normalize().value_counts().sort_index()
    assert per_day.tolist() == [7, 7, 7, 4]
    assert pd.Timestamp("2024-11-28", tz="UTC") not in per_day.index
    assert stamps.min().hour == 14 and stamps.max() == pd.Timestamp("2024-11-29 17:30", tz="UTC")


def test_calendar_bars_are_deterministic_and_valid():
    a = atl.data.synthetic(n_symbols=2, days=30, freq="1D", calendar="XLON", seed=9)
    b = atl.data.synthetic(n_symbols=2, days=30, freq="1D", calendar="XLON", seed=9)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    atl.data.validate(a)
    assert pd.Timestamp("2024-01-01", tz="UTC") not in set(a["timestamp"].dt.normalize())


def test_unknown_calendar_names_the_close_ones():
    with pytest.raises(atl.errors.UnknownNameError, match=r"'XNYS'.*get_calendar_names"):
        atl.data.synthetic(days=10, freq="1D", calendar="xnys")
    with pytest.raises(KeyError, match="NYSEE"):
        atl.data.synthetic(days=10, freq="1D", calendar="NYSEE")
    with pytest.raises(ValueError, match="longer than a session"):
        atl.data.synthetic(days=30, freq="2D", calendar="XNYS")


def test_annual_vol_scales_the_diffusion_and_is_checked():
    kw = dict(n_symbols=2, days=200, freq="1D", calendar="XNYS", seed=4)
    default = atl.data.to_wide(atl.data.synthetic(**kw), "close")
    calm = atl.data.to_wide(atl.data.synthetic(annual_vol=0.2, **kw), "close")
    ratio = np.log(calm).diff().std() / np.log(default).diff().std()
    # Same seed, same shocks: the diffusion scales by 0.2 / (0.55, 0.70); the jumps and the
    # trend drift do not, so the ratio sits a little above it.
    expected = 0.2 / np.array([0.55, 0.70])
    assert ((ratio.to_numpy() > expected) & (ratio.to_numpy() < 1.3 * expected)).all(), ratio
    per_symbol = atl.data.synthetic(annual_vol=[0.2, 0.2], **kw)
    pd.testing.assert_frame_equal(per_symbol, atl.data.synthetic(annual_vol=0.2, **kw))
    for bad in (0.0, -0.1, float("nan"), [0.2], [0.2, 0.2, 0.2]):
        with pytest.raises(ValueError, match="annual_vol"):
            atl.data.synthetic(annual_vol=bad, **kw)
