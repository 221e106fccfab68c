"""Backtest entry points refuse inputs that used to give silent wrong answers (issue 14, item 11):
rows out of time order, duplicate timestamps, duplicate column names, boolean or non-numeric
prices, and a labelled one-column signal frame broadcast onto other symbols."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.backtest import (
    from_signals,
    from_signals_chunked,
    from_weights,
    split_sample,
    sweep,
)
from alphatrade_lab.errors import DataError

IDX = pd.date_range("2024-01-01", periods=60, freq="D", tz="UTC")


@pytest.fixture()
def close() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    values = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, size=(len(IDX), 2)), axis=0))
    return pd.DataFrame(values, index=IDX, columns=["AAA", "BBB"])


def signals(close: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    entries = pd.DataFrame(False, index=close.index, columns=close.columns)
    exits = entries.copy()
    entries.iloc[::10] = True
    exits.iloc[5::10] = True
    return entries, exits


def run_signals(c):
    e, x = signals(c)
    return from_signals(c, e, x)


def run_weights(c):
    return from_weights(c, pd.DataFrame(0.5, index=c.index, columns=c.columns))


def run_sweep(c):
    return sweep(c, "ma_cross", {"fast": [2], "slow": [5]}, progress=False)


def run_split(c):
    return split_sample(c, "ma_cross", {"fast": [2], "slow": [5]}, progress=False)


def run_chunked(c):
    e, x = signals(c)
    return from_signals_chunked([(c.iloc[:30], e.iloc[:30], x.iloc[:30]),
                                 (c.iloc[30:], e.iloc[30:], x.iloc[30:])])


def run_open(c):
    e, x = signals(c.sort_index())
    return from_signals(c.sort_index(), e, x, execution="next_open", open=c)


ENTRY_POINTS = [run_signals, run_weights, run_sweep, run_split, run_chunked]


def shuffled(c: pd.DataFrame) -> pd.DataFrame:
    return c.iloc[np.random.default_rng(1).permutation(len(c))]


@pytest.mark.parametrize("run", [*ENTRY_POINTS, run_open], ids=lambda f: f.__name__)
def test_rows_out_of_time_order_are_refused(close, run):
    with pytest.raises(DataError, match=r"(close|open): row \d+ \(.*\): rows are not in time "
                                        r"order"):
        run(shuffled(close))


@pytest.mark.parametrize("run", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_duplicate_timestamps_are_refused(close, run):
    dup = close.set_axis(close.index.where(np.arange(len(close)) != 12, close.index[11]))
    with pytest.raises(DataError, match=r"close: row 12 \(2024-01-12.*\): duplicate timestamp"):
        run(dup)


def test_missing_timestamp_in_the_index_is_refused(close):
    bad = close.set_axis(close.index.where(np.arange(len(close)) != 3))
    with pytest.raises(DataError, match=r"close: row 3: missing timestamp \(NaT\)"):
        from_signals(bad, True, False)


def test_unsorted_plain_index_is_refused(close):
    with pytest.raises(DataError, match=r"close: row 1: rows are not in time order"):
        from_signals(close.reset_index(drop=True).iloc[::-1], True, False)


@pytest.mark.parametrize("run", [run_signals, run_weights, run_sweep], ids=lambda f: f.__name__)
def test_duplicate_column_names_are_refused(close, run):
    with pytest.raises(DataError, match=r"close: duplicate column names \['AAA'\]"):
        run(close.set_axis(["AAA", "AAA"], axis=1))


def test_duplicate_signal_columns_are_refused(close):
    e, x = signals(close)
    with pytest.raises(DataError, match=r"entries: duplicate column names \['AAA'\]"):
        from_signals(close, e.set_axis(["AAA", "AAA"], axis=1), x)


@pytest.mark.parametrize("make", [
    lambda c: c > 100,                                      # bool frame
    lambda c: c.assign(BBB=c["BBB"] > 100),                 # one bool column
    lambda c: c.astype(object),                             # object frame
    lambda c: c.assign(BBB=c["BBB"].astype(str)),           # text column
    lambda c: c.astype(complex),                            # complex
    lambda c: (c > 100).to_numpy(),                         # bool array
    lambda c: c["AAA"] > 100,                               # bool Series
    lambda c: pd.Series(c["AAA"].to_numpy(), dtype=object, index=c.index),
    lambda c: np.full(len(c), np.timedelta64(1, "D")),      # timedeltas are numbers to numpy
], ids=["bool_frame", "bool_column", "object_frame", "text_column", "complex", "bool_array",
        "bool_series", "object_series", "timedelta_array"])
@pytest.mark.parametrize("run", ["signals", "weights", "sweep"])
def test_non_numeric_prices_are_refused(close, make, run):
    prices = make(close)
    with pytest.raises(DataError, match=r"close: (column '\w+': )?prices must be numbers"):
        if run == "signals":
            from_signals(prices, True, False)
        elif run == "weights":
            from_weights(prices, 0.5)
        else:
            sweep(prices, "ma_cross", {"fast": [2], "slow": [5]}, progress=False)


@pytest.mark.slow
def test_nullable_float_prices_are_accepted(close):
    pf = from_signals(close.astype("Float64"), True, False)
    ref = from_signals(close, True, False)
    pd.testing.assert_frame_equal(pf.equity, ref.equity)


@pytest.mark.parametrize("which", ["entries", "exits", "weights"])
def test_one_labelled_column_is_not_broadcast_to_other_symbols(close, which):
    one = pd.DataFrame(close.index.day == 1, index=close.index, columns=["AAA"])
    with pytest.raises(DataError, match=rf"{which}: one column 'AAA' for close's 2 columns"):
        if which == "weights":
            from_weights(close, one.astype(float) * 0.5)
        elif which == "entries":
            from_signals(close, one, False)
        else:
            from_signals(close, True, one)


@pytest.mark.slow
def test_documented_broadcasting_still_works(close):
    flag = close.index.day == 1
    expected = from_signals(close, pd.DataFrame({c: flag for c in close.columns},
                                                index=close.index), False).equity
    series = pd.Series(flag, index=close.index, name="AAA")
    for entries in (series, flag, flag.reshape(-1, 1)):
        pd.testing.assert_frame_equal(from_signals(close, entries, False).equity, expected)
    # An unlabelled close takes a one-column frame as one column for all.
    arr = from_signals(close.to_numpy(), pd.DataFrame({"x": flag}), False).equity
    np.testing.assert_array_equal(arr.to_numpy(), expected.to_numpy())
    # A single-column close takes its own one-column frame.
    one = from_signals(close[["AAA"]], pd.DataFrame({"AAA": flag}, index=close.index), False)
    np.testing.assert_array_equal(one.equity.to_numpy().ravel(), expected["AAA"].to_numpy())
