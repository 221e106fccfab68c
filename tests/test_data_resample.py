"""Resampling against pandas' own resampler, the no-lookahead rule and wide frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.testing import assert_no_lookahead


@pytest.fixture(scope="module")
def bars(sample_bars):
    start = pd.Timestamp("2024-07-01", tz="UTC")
    sel = sample_bars["timestamp"].between(start, start + pd.Timedelta("3D"), inclusive="left")
    return sample_bars.loc[sel & sample_bars["symbol"].isin(["AAA", "DDD"])].reset_index(drop=True)


def pandas_reference(bars, rule):
    frames = []
    for sym, g in bars.groupby("symbol"):
        agg = g.set_index("timestamp").resample(rule).agg(
            {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        agg = agg.dropna(subset=["open"]).reset_index()
        agg.insert(1, "symbol", sym)
        frames.append(agg)
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("rule", ["5min", "1h", "4h", "1D"])
def test_matches_pandas(bars, rule):
    ours = atl.data.resample(bars, rule, drop_incomplete=False)
    ref = pandas_reference(bars, rule)
    pd.testing.assert_frame_equal(ours, ref, check_dtype=False, check_exact=False, rtol=1e-12)


def test_result_is_valid_bars(bars):
    out = atl.data.resample(bars, "1h")
    pd.testing.assert_frame_equal(atl.data.validate(out), out)


def test_last_forming_bar_is_dropped(bars):
    cut = bars[bars["timestamp"] < pd.Timestamp("2024-07-02 10:30", tz="UTC")]
    out = atl.data.resample(cut, "1h")
    assert out.groupby("symbol")["timestamp"].max().eq(
        pd.Timestamp("2024-07-02 09:00", tz="UTC")).all()
    kept = atl.data.resample(cut, "1h", drop_incomplete=False)
    assert kept.groupby("symbol")["timestamp"].max().eq(
        pd.Timestamp("2024-07-02 10:00", tz="UTC")).all()
    # A window that ends exactly at the data's end is complete.
    whole = bars[bars["timestamp"] < pd.Timestamp("2024-07-02 11:00", tz="UTC")]
    assert atl.data.resample(whole, "1h")["timestamp"].max() == pd.Timestamp(
        "2024-07-02 10:00", tz="UTC")


def test_closed_window_with_missing_base_bars_is_complete(bars):
    late = (bars["symbol"] == "AAA") & (bars["timestamp"].dt.minute >= 50)
    holes = bars.loc[~late].reset_index(drop=True)
    out = atl.data.resample(holes, "1h")
    aaa = out[out["symbol"] == "AAA"]
    assert aaa["timestamp"].max() == bars["timestamp"].max().floor("1h") - pd.Timedelta("1h")
    assert len(aaa) == 71  # 72 hours, the last one has no bar after it to prove it closed


@pytest.mark.parametrize("rule", ["1h", "4h"])
def test_no_lookahead(bars, rule):
    def fn(b):
        return atl.data.resample(b, rule, base="1min")

    checked = assert_no_lookahead(fn, bars, known_at=lambda ts: ts + pd.Timedelta(rule),
                                  n_cuts=6, seed=1)
    assert checked > 0


def test_a_resample_claimed_known_at_its_open_is_caught(bars):
    # Labelling by open time and treating the bar as known then leaks up to a whole bar.
    with pytest.raises(AssertionError, match="lookahead"):
        assert_no_lookahead(lambda b: atl.data.resample(b, "1h", base="1min"), bars, seed=1)


def test_rule_must_be_a_multiple_of_the_bar(bars):
    with pytest.raises(ValueError, match="multiple of the base bar length"):
        atl.data.resample(bars, "90s")


def test_to_wide(bars):
    wide = atl.data.to_wide(bars, "close")
    assert list(wide.columns) == ["AAA", "DDD"] and wide.columns.name == "symbol"
    assert wide.index.is_monotonic_increasing and str(wide.index.dtype) == "datetime64[ns, UTC]"
    row = bars.iloc[100]
    assert wide.at[row["timestamp"], row["symbol"]] == row["close"]
    assert wide.notna().sum().sum() == len(bars)
    with pytest.raises(KeyError, match="no column 'vwap'"):
        atl.data.to_wide(bars, "vwap")


def test_bar_length_ignores_gaps():
    ts = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:05", "2024-01-01 00:10",
                         "2024-01-01 01:00", "2024-01-01 01:05"], utc=True)
    bars = pd.DataFrame({"timestamp": ts, "symbol": "X", "open": 1.0, "high": 1.0, "low": 1.0,
                         "close": 1.0, "volume": np.ones(5)})
    assert atl.data.bar_length(bars) == pd.Timedelta("5min")
