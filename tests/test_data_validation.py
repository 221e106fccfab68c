"""Every validation rule, its error message and the explicit repairs."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError, RepairWarning

validate = atl.data.validate


def expect_error(bars, column, row, what, **kwargs):
    with pytest.raises(DataError) as info:
        validate(bars, source="bars.csv", **kwargs)
    msg = str(info.value)
    assert msg.startswith("bars.csv"), msg
    assert f"column '{column}'" in msg, msg
    if row is not None:
        assert re.search(rf"\brow {row}\b", msg), msg
    assert re.search(what, msg), msg
    return msg


def test_valid_bars_come_back_typed(small_bars):
    out = validate(small_bars.assign(timestamp=small_bars["timestamp"].astype(str)))
    assert str(out["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert out[["open", "high", "low", "close", "volume"]].dtypes.eq(np.float64).all()
    pd.testing.assert_series_equal(out["timestamp"], small_bars["timestamp"].astype(
        "datetime64[ns, UTC]"))
    assert out.attrs["repairs"] == []


def test_naive_timestamps_are_read_as_utc(small_bars):
    naive = small_bars.assign(timestamp=small_bars["timestamp"].dt.tz_localize(None))
    out = validate(naive)
    assert (out["timestamp"] == small_bars["timestamp"]).all()


def test_other_timezones_are_converted(small_bars):
    ny = small_bars.assign(timestamp=small_bars["timestamp"].dt.tz_convert("America/New_York"))
    assert (validate(ny)["timestamp"] == small_bars["timestamp"]).all()


def test_missing_column(small_bars):
    with pytest.raises(DataError, match=r"bars.csv, column 'volume': missing column"):
        validate(small_bars.drop(columns="volume"), source="bars.csv")


def test_unparseable_timestamp(small_bars):
    bars = small_bars.assign(timestamp=small_bars["timestamp"].astype(str))
    bars.loc[3, "timestamp"] = "2024-03-01 25:99"
    expect_error(bars, "timestamp", 3, r"cannot parse timestamp '2024-03-01 25:99'")


def test_missing_timestamp(small_bars):
    bars = small_bars.assign(timestamp=small_bars["timestamp"].astype(str))
    bars.loc[2, "timestamp"] = None
    expect_error(bars, "timestamp", 2, "missing timestamp")


def test_numeric_timestamps_are_refused(small_bars):
    bars = small_bars.assign(timestamp=np.arange(len(small_bars)))
    expect_error(bars, "timestamp", 0, "numeric timestamps")


def test_unsorted_rows(small_bars):
    bars = small_bars.iloc[[0, 1, 3, 2, 4, 5, 6, 7, 8, 9, 10, 11]].reset_index(drop=True)
    expect_error(bars, "timestamp", 3, r"not sorted by \(symbol, timestamp\); pass sort=True")


def test_unsorted_symbols(small_bars):
    bars = pd.concat([small_bars.iloc[6:], small_bars.iloc[:6]], ignore_index=True)
    expect_error(bars, "timestamp", 6, "not sorted")


def test_sort_repairs_and_reports(small_bars):
    shuffled = small_bars.sample(frac=1.0, random_state=3).reset_index(drop=True)
    with pytest.warns(RepairWarning, match=r"sorted by \(symbol, timestamp\)"):
        out = validate(shuffled, sort=True)
    pd.testing.assert_frame_equal(out, validate(small_bars), check_like=False, check_exact=True)
    assert "sorted" in out.attrs["repairs"][0]


def test_duplicate_rows(small_bars):
    bars = pd.concat([small_bars.iloc[:3], small_bars.iloc[[2]], small_bars.iloc[3:]],
                     ignore_index=True)
    expect_error(bars, "timestamp", 3, r"duplicate \(symbol, timestamp\)")


@pytest.mark.parametrize("keep", ["first", "last"])
def test_drop_duplicates_keeps_the_chosen_row(small_bars, keep):
    dup = small_bars.iloc[[2]].assign(volume=999.0)
    bars = pd.concat([small_bars.iloc[:3], dup, small_bars.iloc[3:]], ignore_index=True)
    with pytest.warns(RepairWarning, match="dropped 1 duplicate"):
        out = validate(bars, drop_duplicates=keep)
    assert len(out) == len(small_bars)
    assert out.loc[2, "volume"] == (12.0 if keep == "first" else 999.0)


def test_duplicates_after_sorting_keep_input_order(small_bars):
    late = small_bars.iloc[[0]].assign(volume=555.0)
    bars = pd.concat([small_bars, late], ignore_index=True)  # unsorted and duplicated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairWarning)
        out = validate(bars, sort=True, drop_duplicates="last")
    assert out.loc[0, "volume"] == 555.0
    assert len(out.attrs["repairs"]) == 2


def test_errors_after_sorting_name_the_input_row(small_bars):
    bars = pd.concat([small_bars.iloc[::-1], small_bars.iloc[[4]]], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairWarning)
        # The appended copy is input row 12; sorting moves it next to its twin.
        expect_error(bars, "timestamp", 12, r"duplicate \(symbol, timestamp\)", sort=True)


@pytest.mark.parametrize(("value", "what"), [(np.nan, "NaN price"), (np.inf, "infinite price"),
                                             (0.0, "non-positive price 0.0"),
                                             (-3.0, "non-positive price -3.0")])
@pytest.mark.parametrize("column", ["open", "high", "low", "close"])
def test_bad_prices(small_bars, column, value, what):
    bars = small_bars.copy()
    bars.loc[4, column] = value
    msg = expect_error(bars, column, 4, what)
    assert "symbol 'AAA'" in msg and "2024-03-01 00:04:00+00:00" in msg


def test_high_below_body(small_bars):
    bars = small_bars.copy()
    bars.loc[7, "high"] = bars.loc[7, "close"] - 0.01
    expect_error(bars, "high", 7, r"high .* < max\(open, close\)")


def test_low_above_body(small_bars):
    bars = small_bars.copy()
    bars.loc[8, "low"] = bars.loc[8, "open"] + 0.01
    expect_error(bars, "low", 8, r"low .* > min\(open, close\)")


def test_negative_volume(small_bars):
    bars = small_bars.copy()
    bars.loc[5, "volume"] = -2.0
    expect_error(bars, "volume", 5, "negative volume -2.0")


def test_text_in_a_price_column(small_bars):
    bars = small_bars.astype({"close": object})
    bars.loc[1, "close"] = "n/a"
    expect_error(bars, "close", 1, "not a number: 'n/a'")


def test_missing_symbol(small_bars):
    bars = small_bars.astype({"symbol": object})
    bars.loc[9, "symbol"] = None
    expect_error(bars, "symbol", 9, "missing symbol")


def test_not_a_frame():
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        validate([1, 2, 3])


def test_bad_repair_option(small_bars):
    with pytest.raises(ValueError, match="drop_duplicates"):
        validate(small_bars, drop_duplicates="middle")


def test_extra_columns_are_kept_after_the_standard_ones(small_bars):
    out = validate(small_bars.assign(vwap=1.0)[["vwap", *small_bars.columns]])
    assert list(out.columns) == [*atl.data.BAR_COLUMNS, "vwap"]
