"""Bad backtest input raises clear errors naming the argument (and the row/column for data)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.backtest import from_signals, from_weights
from alphatrade_lab.errors import DataError

IDX = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")


@pytest.fixture()
def close():
    return pd.DataFrame({"a": [10.0, 11, 12, 13, 14], "b": [5.0, 6, 7, 8, 9]}, index=IDX)


@pytest.fixture()
def sig(close):
    return pd.DataFrame(False, index=close.index, columns=close.columns)


def test_misaligned_index(close, sig):
    shifted = sig.set_axis(IDX + pd.Timedelta("1h"))
    with pytest.raises(DataError, match=r"entries: index does not match close's at row 0"):
        from_signals(close, shifted, sig)
    with pytest.raises(DataError, match="exits: index has 4 rows but close has 5"):
        from_signals(close, sig, sig.iloc[:4])


def test_misaligned_columns(close, sig):
    with pytest.raises(DataError, match=r"exits: columns do not match close's \(missing \['b'\]"):
        from_signals(close, sig, sig.rename(columns={"b": "c"}))
    with pytest.raises(DataError, match="different order"):
        from_signals(close, sig[["b", "a"]], sig)


def test_bad_prices_name_column_and_row(close, sig):
    bad = close.copy()
    bad.iloc[3, 1] = -1.0
    with pytest.raises(DataError, match=r"close: column 'b', row 3 \(2024-01-04.*-1\.0"):
        from_signals(bad, sig, sig)
    bad.iloc[3, 1] = np.inf
    with pytest.raises(DataError, match="column 'b', row 3"):
        from_signals(bad, sig, sig)
    with pytest.raises(DataError, match=r"open: column 'a', row 0"):
        from_signals(close, sig, sig, execution="next_open", open=close.assign(a=0.0))


def test_wrong_shapes_and_dtypes(close, sig):
    with pytest.raises(DataError, match=r"entries: shape \(5, 3\) does not broadcast"):
        from_signals(close.to_numpy(), np.zeros((5, 3), dtype=bool), False)
    with pytest.raises(DataError, match="exits: 1-D input has 4 rows"):
        from_signals(close, sig, np.zeros(4, dtype=bool))
    with pytest.raises(DataError, match="entries: signals must be boolean"):
        from_signals(close, sig.astype(float), sig)
    with pytest.raises(DataError, match=r"open: shape \(4, 2\)"):
        from_signals(close, sig, sig, execution="next_open", open=close.iloc[:4])
    with pytest.raises(ValueError, match="close is empty"):
        from_signals(close.iloc[:0], False, False)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fees": -0.001}, "fees must be in"),
    ({"fixed_fees": -1.0}, "fixed_fees must be in"),
    ({"slippage": -0.01}, "slippage must be in"),
    ({"size": -0.5}, "size must be in"),
    ({"size": 0.0}, "size must be in"),
    ({"size": 1.5}, "size must be in"),
    ({"fees": [0.1, 0.2, 0.3]}, "fees must be a scalar or have one value per column"),
    ({"sl_stop": -0.1}, "sl_stop must be in"),
    ({"init_cash": 0.0}, "init_cash must be finite and > 0"),
    ({"direction": "long"}, "direction must be one of"),
    ({"execution": "open"}, "execution must be one of"),
    ({"execution": "next_open"}, "needs the open prices"),
    ({"record": "everything"}, "record must be"),
])
def test_bad_options(close, sig, kwargs, message):
    with pytest.raises(ValueError, match=message):
        from_signals(close, sig, sig, **kwargs)


def test_per_column_costs_apply_to_their_column(close):
    entries = pd.DataFrame({"a": [True, False, False, False, False],
                            "b": [True, False, False, False, False]}, index=IDX)
    pf = from_signals(close, entries, False, fees=[0.0, 0.01])
    np.testing.assert_allclose(pf.orders["fees"].to_numpy(), [0.0, 100 - 100 / 1.01])


def test_weights_errors(close):
    w = pd.DataFrame(0.5, index=IDX, columns=close.columns)
    with pytest.raises(DataError, match="weights: index"):
        from_weights(close, w.iloc[1:])
    w.iloc[2, 0] = np.inf
    with pytest.raises(DataError, match=r"weights: infinite value at row 2 .*column 'a'"):
        from_weights(close, w)
    with pytest.raises(ValueError, match="fees must be in"):
        from_weights(close, 0.5, fees=-1)


@pytest.fixture()
def long_bars(close):
    """The loader's long format: one row per (timestamp, symbol)."""
    frame = close.rename_axis("timestamp").rename_axis(columns="symbol")
    bars = frame.stack().rename("close").reset_index()
    return bars.assign(open=bars["close"], high=bars["close"], low=bars["close"], volume=1.0)


def test_long_format_bars_point_to_to_wide(close, long_bars):
    for fn in (lambda b: from_signals(b, True, False), lambda b: from_weights(b, 0.5)):
        with pytest.raises(DataError, match=r"close: got long-format bars \(a 'symbol' "
                                            r"column.*atl\.data\.to_wide\(bars, 'close'\)"):
            fn(long_bars)
    indexed = long_bars.set_index(["timestamp", "symbol"])
    with pytest.raises(DataError, match=r"close: got long-format data \(index levels "
                                        r"\['timestamp', 'symbol'\]\).*to_wide\(bars\.reset_"
                                        r"index\(\), 'close'\) or bars\['close'\]\.unstack"):
        from_signals(indexed, True, False)
    with pytest.raises(DataError, match=r"close: got long-format data .*series\.unstack"):
        from_signals(indexed["close"], True, False)
    with pytest.raises(DataError, match=r"weights: got long-format bars"):
        from_weights(close, long_bars)


def test_a_symbol_named_symbol_is_not_long_format(close):
    wide = close.rename(columns={"a": "symbol"})
    assert from_signals(wide, True, False).equity.columns.tolist() == ["symbol", "b"]


def test_long_format_open_is_refused(close, sig, long_bars):
    with pytest.raises(DataError, match="open: got long-format bars"):
        from_signals(close, sig, sig, execution="next_open", open=long_bars)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fees", "slippage"])
@pytest.mark.parametrize("fn", ["signals", "weights"])
def test_implausible_costs_warn(close, sig, name, fn):
    run = (lambda **kw: from_signals(close, sig, sig, **kw)) if fn == "signals" else \
        (lambda **kw: from_weights(close, 0.5, **kw))
    with pytest.warns(UserWarning, match=rf"{name}=0\.1 means 10\.0% on every fill; {name} "
                                         r"is a fraction \(0\.001 = 0\.1%\)") as record:
        run(**{name: 0.1})
    assert record[0].filename == __file__
    with pytest.warns(UserWarning, match=rf"{name}=0\.2 means 20\.0%"):
        run(**{name: [0.001, 0.2]})


def test_plausible_costs_do_not_warn(close, sig):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_signals(close, sig, sig, fees=0.05, slippage=0.01)
        from_weights(close, 0.5, fees=0.002, slippage=0.05)
