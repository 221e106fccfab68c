"""Siblings of issue 14 items 10-11 in the functions that take bars: validate, resample,
bar_length, to_wide, summarize and the feature functions' input checks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError

validate = atl.data.validate


def long_bars(n: int = 8) -> pd.DataFrame:
    """Two symbols of n minute bars, valid and sorted."""
    ts = pd.date_range("2024-03-01", periods=n, freq="1min", tz="UTC")
    frames = []
    for sym, p in (("AAA", 100.0), ("BBB", 20.0)):
        close = p + np.arange(n, dtype=float)
        frames.append(pd.DataFrame({"timestamp": ts, "symbol": sym, "open": close - 0.5,
                                    "high": close + 1.0, "low": close - 1.0, "close": close,
                                    "volume": 1.0 + np.arange(n)}))
    return pd.DataFrame(pd.concat(frames, ignore_index=True))


# validate()

def test_validate_refuses_duplicate_column_names():
    bars = long_bars()
    dup = pd.concat([bars, bars[["close"]]], axis=1)
    with pytest.raises(DataError, match=r"<frame>, column 'close': duplicate column name"):
        validate(dup)


@pytest.mark.parametrize("column", ["open", "close", "volume"])
def test_validate_refuses_boolean_columns(column):
    with pytest.raises(DataError, match=rf"column '{column}', row 0: boolean values"):
        validate(long_bars().assign(**{column: True}))


def test_validate_refuses_boolean_cells_in_object_columns():
    bars = long_bars()
    bars["volume"] = bars["volume"].astype(object)
    bars.loc[3, "volume"] = True
    with pytest.raises(DataError, match=r"column 'volume', row 3: boolean value True"):
        validate(bars)


@pytest.mark.parametrize("values", [
    pd.to_datetime(np.arange(16), unit="D"),
    pd.to_timedelta(np.arange(16) + 1, unit="D"),
    np.arange(16) + 1j,
], ids=["datetime", "timedelta", "complex"])
def test_validate_refuses_prices_that_are_not_real_numbers(values):
    with pytest.raises(DataError, match=r"column 'low'.*(expected numbers|not a number)"):
        validate(long_bars().assign(low=values))


def test_validate_refuses_symbols_that_are_not_text():
    bars = long_bars()
    bars["symbol"] = bars["symbol"].astype(object)
    bars.loc[9, "symbol"] = 7
    with pytest.raises(DataError, match=r"column 'symbol', row 9: symbol must be text, got int"):
        validate(bars)


def test_validate_refuses_empty_symbols_and_keeps_na_tickers():
    bars = long_bars()
    bars["symbol"] = np.where(bars["symbol"] == "AAA", "NA", "NULL")
    assert validate(bars)["symbol"].unique().tolist() == ["NA", "NULL"]
    bars.loc[2, "symbol"] = ""
    with pytest.raises(DataError, match=r"column 'symbol', row 2: empty symbol"):
        validate(bars)


def test_validate_names_out_of_range_timestamps():
    bars = long_bars()
    ts = bars["timestamp"].astype("datetime64[us, UTC]")
    ts.iloc[5] = pd.Timestamp(dt.datetime(3024, 1, 1, tzinfo=dt.UTC)).as_unit("us")
    with pytest.raises(DataError, match=r"column 'timestamp', row 5: timestamp 3024-01-01 .*"
                                        r"outside the supported range"):
        validate(bars.assign(timestamp=ts))


def test_validate_names_out_of_range_timestamp_text():
    bars = long_bars().astype({"timestamp": str})
    bars.loc[4, "timestamp"] = "3024-01-01 00:00:00"
    with pytest.raises(DataError, match=r"row 4: timestamp 3024-01-01 .*outside the supported"):
        validate(bars)


# resample, bar_length, to_wide, summarize

def unsorted(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.iloc[[*range(4), 6, 5, *range(7, len(bars))]].reset_index(drop=True)


def duplicated(bars: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([bars.iloc[:6], bars.iloc[[5]], bars.iloc[6:]], ignore_index=True)


def interleaved(bars: pd.DataFrame) -> pd.DataFrame:
    # Each symbol's own rows in time order, but the symbols mixed: windows would split.
    return bars.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("func", [
    lambda b: atl.data.resample(b, "2min"),
    lambda b: atl.data.bar_length(b),
    lambda b: atl.data.summarize(b),
], ids=["resample", "bar_length", "summarize"])
@pytest.mark.parametrize("make", [unsorted, interleaved], ids=["unsorted", "interleaved"])
def test_bar_functions_refuse_unsorted_bars(func, make):
    with pytest.raises(DataError, match=r"row \d+: rows are not sorted by \(symbol, timestamp\)"):
        func(make(long_bars()))


@pytest.mark.parametrize("func", [
    lambda b: atl.data.resample(b, "2min"),
    lambda b: atl.data.to_wide(b, "close"),
    lambda b: atl.data.summarize(b),
], ids=["resample", "to_wide", "summarize"])
def test_bar_functions_refuse_duplicate_bars(func):
    with pytest.raises(DataError, match=r"row 6: duplicate \(symbol, timestamp\)"):
        func(duplicated(long_bars()))


def test_resample_used_to_double_count_a_duplicate():
    bars = long_bars()
    coarse = atl.data.resample(bars, "4min")
    assert coarse["volume"].sum() == bars["volume"].sum()
    with pytest.raises(DataError):
        atl.data.resample(duplicated(bars), "4min")


@pytest.mark.parametrize("column", ["high", "volume"])
def test_resample_refuses_boolean_columns(column):
    with pytest.raises(DataError, match=rf"resample, column '{column}': expected numbers"):
        atl.data.resample(long_bars().assign(**{column: True}), "2min")


def test_resample_refuses_text_timestamps():
    with pytest.raises(DataError, match=r"column 'timestamp': expected datetimes"):
        atl.data.resample(long_bars().astype({"timestamp": str}), "2min")


def test_to_wide_refuses_duplicate_columns_and_accepts_unsorted_rows():
    bars = long_bars()
    wide = atl.data.to_wide(bars.iloc[::-1], "close")
    pd.testing.assert_frame_equal(wide, atl.data.to_wide(bars, "close"))
    with pytest.raises(DataError, match=r"column 'close': duplicate column name"):
        atl.data.to_wide(pd.concat([bars, bars[["close"]]], axis=1), "close")


# features

def test_technical_refuses_boolean_prices():
    bars = validate(atl.data.load_sample(["AAA"]).head(300))
    with pytest.raises(DataError, match=r"column 'close': expected numbers, got dtype bool"):
        atl.features.technical(bars.assign(close=bars["close"] > 100))


def test_technical_refuses_duplicate_columns():
    bars = validate(atl.data.load_sample(["AAA"]).head(300))
    with pytest.raises(DataError, match=r"column 'close': duplicate column name"):
        atl.features.technical(pd.concat([bars, bars[["close"]]], axis=1))
