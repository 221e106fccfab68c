"""Bad input: documented NaN behaviour or a clear error naming the column or argument."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.features import FeatureSpec, handle_nan, multi_timeframe, technical


def make_bars(close, volume=None, symbol="ONE", start="2024-01-01"):
    close = np.asarray(close, dtype=float)
    n = len(close)
    open_ = np.concatenate([[close[0]], close[:-1]])
    return pd.DataFrame({
        "timestamp": pd.date_range(start, periods=n, freq="1min", tz="UTC"),
        "symbol": symbol,
        "open": open_,
        "high": np.maximum(open_, close) + 0.01,
        "low": np.minimum(open_, close) - 0.01,
        "close": close,
        "volume": np.full(n, 100.0) if volume is None else np.asarray(volume, dtype=float),
    })


@pytest.fixture()
def bars():
    rng = np.random.default_rng(3)
    a = make_bars(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 400))), symbol="AAA")
    b = make_bars(50 * np.exp(np.cumsum(rng.normal(0, 1e-3, 400))), symbol="BBB")
    return pd.concat([a, b], ignore_index=True)


def test_symbol_with_too_few_bars_gets_nan_where_a_window_is_not_full(bars):
    short = make_bars([10.0, 10.5, 10.2, 10.4, 10.1], symbol="CCC")
    X = technical(pd.concat([bars, short], ignore_index=True))
    s = X.loc[X["symbol"] == "CCC"]
    assert s["ret_1"].notna().sum() == 4 and s["ret_5"].isna().all()
    for col in ("vol_20", "ma_dist_20", "rsi_14", "macd", "atr_14", "bb_pctb_20",
                "volume_z_20", "skew_60"):
        assert s[col].isna().all(), col
    assert s["hl_range"].notna().all()
    # ... and the other symbols are unaffected by it.
    pd.testing.assert_frame_equal(X.loc[X["symbol"] != "CCC"], technical(bars))


def test_constant_prices(bars):
    flat = make_bars(np.full(300, 42.0), symbol="FLAT")
    X = technical(flat)
    tail = X.iloc[100:]
    assert (tail["rsi_14"] == 50.0).all()  # 0/0: documented as 50, neither side leads
    assert X["rsi_14"].iloc[:14].isna().all() and (X["rsi_14"].iloc[14:] == 50.0).all()
    assert tail["bb_pctb_20"].isna().all()  # zero band width
    assert tail["skew_60"].isna().all()  # zero variance
    assert (tail["vol_20"] == 0).all() and (tail["ma_dist_20"] == 0).all()
    assert (tail["macd"] == 0).all() and (tail["ret_5"] == 0).all()
    assert not np.isinf(X.iloc[:, 2:].to_numpy()).any()


def test_prices_that_stop_moving_get_exact_zero_variance():
    """A flat stretch after a volatile one: the window's std is exactly 0, so NaN, not inf."""
    rng = np.random.default_rng(0)
    close = np.concatenate([100 * np.exp(np.cumsum(rng.normal(0, 0.01, 500))), np.full(100, 0)])
    close[500:] = close[499]
    X = technical(make_bars(close))
    assert X["bb_pctb_20"].iloc[520:].isna().all()
    assert X["skew_60"].iloc[561:].isna().all()
    assert (X["vol_20"].iloc[521:] == 0).all()
    assert X["rsi_14"].iloc[520:].notna().all()  # past moves still define the averages


def test_zero_volume_gives_nan_zscore_not_inf():
    volume = np.r_[np.linspace(10, 20, 50), np.zeros(60)]
    X = technical(make_bars(np.linspace(10, 11, 110), volume=volume))
    z = X["volume_z_20"]
    assert z.iloc[69:].isna().all()
    assert z.iloc[19:50].notna().all()
    assert not np.isinf(z).any()


@pytest.mark.parametrize("func", [technical, multi_timeframe])
@pytest.mark.parametrize("column", ["timestamp", "symbol", "close", "high", "volume"])
def test_missing_columns(bars, func, column):
    with pytest.raises(DataError, match=f"column '{column}'.*missing"):
        func(bars.drop(columns=column))


@pytest.mark.parametrize("name", ["rsi_window", "atr_window", "bb_window", "skew_window",
                                  "volume_window", "macd_signal"])
@pytest.mark.parametrize("value", [0, -3, 2.5])
def test_non_positive_or_fractional_windows(bars, name, value):
    with pytest.raises(ValueError, match=f"'{name}'"):
        technical(bars, **{name: value})


@pytest.mark.parametrize("name, value", [("return_horizons", (5, 0)), ("vol_windows", ()),
                                         ("ma_windows", (20, 20)), ("vol_windows", (1,)),
                                         ("macd_fast", 30), ("bb_k", 0.0), ("bb_k", "2")])
def test_bad_spec_values(name, value):
    with pytest.raises(ValueError, match=f"'{name}'"):
        FeatureSpec(**{name: value})


@pytest.mark.parametrize("kwargs, name", [({"fast": 0}, "fast"), ({"slow": -1}, "slow"),
                                          ({"momentum_window": 0}, "momentum_window"),
                                          ({"fast": 50, "slow": 20}, "fast"),
                                          ({"timeframes": []}, "timeframes"),
                                          ({"timeframes": ["1h", "1h"]}, "timeframes"),
                                          ({"timeframes": ["90s"]}, "timeframes"),
                                          ({"timeframes": ["soon"]}, "timeframes")])
def test_bad_multi_timeframe_arguments(bars, kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        multi_timeframe(bars, **kwargs)


@pytest.mark.parametrize("func", [technical, multi_timeframe])
def test_unsorted_bars(bars, func):
    shuffled = bars.iloc[[*range(0, 10), 11, 10, *range(12, len(bars))]]
    with pytest.raises(DataError, match="column 'timestamp', row 11: rows are not sorted"):
        func(shuffled)
    swapped = pd.concat([bars[bars["symbol"] == "BBB"], bars[bars["symbol"] == "AAA"]])
    with pytest.raises(DataError, match="column 'symbol', row 400: rows are not sorted"):
        func(swapped)
    interleaved = bars.sort_values(["timestamp", "symbol"])
    with pytest.raises(DataError, match="not sorted"):
        func(interleaved)


def test_duplicate_rows(bars):
    dup = pd.concat([bars.iloc[:5], bars.iloc[4:]], ignore_index=True)
    with pytest.raises(DataError, match="row 5: duplicate"):
        technical(dup)


@pytest.mark.parametrize("column, value", [("close", np.nan), ("close", -1.0), ("low", 0.0),
                                           ("volume", -5.0), ("volume", np.inf)])
def test_bad_values(bars, column, value):
    bad = bars.copy()
    bad.loc[7, column] = value
    with pytest.raises(DataError, match=f"column '{column}', row 7"):
        technical(bad)


def test_not_a_frame_and_wrong_dtypes(bars):
    with pytest.raises(DataError, match="DataFrame"):
        technical(bars.to_numpy())
    with pytest.raises(DataError, match="column 'close'"):
        technical(bars.assign(close=bars["close"].astype(str)))
    with pytest.raises(DataError, match="column 'timestamp'"):
        technical(bars.assign(timestamp=bars["timestamp"].astype(str)))


def test_empty_bars(bars):
    X = technical(bars.iloc[:0])
    assert len(X) == 0 and X.columns.tolist()[2:] == FeatureSpec().feature_names
    assert len(handle_nan(X, "forward_fill")) == 0


def test_naive_timestamps_are_accepted_as_utc(bars):
    naive = bars.assign(timestamp=bars["timestamp"].dt.tz_localize(None))
    pd.testing.assert_frame_equal(technical(naive).iloc[:, 2:], technical(bars).iloc[:, 2:])


def test_validated_sample_passes_the_checks(sample_bars):
    part = sample_bars.groupby("symbol").head(100).reset_index(drop=True)
    assert len(technical(atl.data.validate(part))) == len(part)
