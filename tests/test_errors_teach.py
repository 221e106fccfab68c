"""Mistakes a researcher makes get the library's error, saying what to do instead."""

import warnings

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError, UnknownNameError

GRID = {"fast": [5, 10], "slow": [20, 40]}


@pytest.fixture(scope="module")
def close():
    return atl.data.to_wide(atl.data.load_sample(["AAA", "BBB"]), "close").iloc[:1500]


@pytest.mark.slow
def test_heatmap_metric_in_the_wrong_case_suggests_the_right_one(close):
    res = atl.backtest.sweep(close, "ma_cross", GRID, progress=False)
    with pytest.raises(UnknownNameError, match="did you mean 'sharpe'"):
        atl.backtest.heatmap(res, "Sharpe")
    with pytest.raises(KeyError):  # still a KeyError for code that caught one
        atl.backtest.top_k(res, "Sharpe")


def test_plot_of_a_group_in_the_wrong_case_suggests_the_right_one(close):
    bar = np.arange(len(close))[:, None]
    pf = atl.backtest.from_signals(close, bar % 50 == 0, bar % 50 == 25)
    with pytest.raises(UnknownNameError, match="did you mean 'AAA'.*AAA, BBB"):
        pf.plot("aaa")


@pytest.mark.parametrize("split", [70, 70.0, 0, 1, 1.5])
def test_split_sample_refuses_a_bare_number_that_is_not_a_fraction(close, split):
    with pytest.raises(DataError, match=r"fraction in \(0, 1\).*split=0.7"):
        atl.backtest.split_sample(close, "ma_cross", GRID, split=split, progress=False)


def test_split_sample_still_takes_a_timestamp(close):
    at = close.index[1000]
    table = atl.backtest.split_sample(close, "ma_cross", GRID, split=at, progress=False)
    assert table.attrs["split"] == 1000


@pytest.fixture(scope="module")
def bars():
    return atl.data.load_sample(["AAA", "BBB"]).groupby("symbol").head(3000).reset_index(drop=True)


@pytest.mark.parametrize("call", ["resample", "summarize", "to_wide", "bar_length"])
@pytest.mark.parametrize("kind", ["wide", "series"])
def test_data_functions_refuse_wide_frames_and_series_saying_what_to_pass(bars, call, kind):
    wide = atl.data.to_wide(bars, "close")
    given = wide if kind == "wide" else wide["AAA"]
    args = (given, "1h") if call == "resample" else (given,)
    what = "got a wide frame" if kind == "wide" else "got a Series"
    with pytest.raises(DataError, match=f"{call}: {what}.*pass long-form bars.*load_sample"):
        getattr(atl.data, call)(*args)


def test_wide_input_errors_say_what_to_do_with_the_wide_data(bars):
    wide = atl.data.to_wide(bars, "close")
    with pytest.raises(DataError, match=r"to_wide\(atl.data.resample\(bars, '1h'\).*"
                                        r"close.resample\('1h'\).last\(\)"):
        atl.data.resample(wide, "1h")
    with pytest.raises(DataError, match="already is the wide view"):
        atl.data.to_wide(wide["AAA"])
    with pytest.raises(DataError, match=r"in the index, not a column; pass bars.reset_index"):
        atl.data.summarize(bars.set_index("timestamp"))
    with pytest.raises(UnknownNameError, match="did you mean 'close'"):
        atl.data.to_wide(bars, "Close")


def test_risk_evaluate_refuses_the_equity_curve_and_points_to_the_portfolio(close):
    bar = np.arange(len(close))[:, None]
    pf = atl.backtest.from_signals(close, bar % 50 == 0, bar % 50 == 25)
    risk = atl.risk.RiskManager()
    for wrong in (pf.equity, pf.equity["AAA"], pf.equity.to_numpy()):
        with pytest.raises(DataError, match=r"not a Portfolio.*risk.evaluate\(pf\), not "
                                            r"risk.evaluate\(pf.equity\).*update"):
            risk.evaluate(wrong)
    with pytest.raises(DataError, match="expected a Portfolio.*without equity"):
        risk.evaluate(object())
    assert list(risk.evaluate(pf).columns)  # the portfolio itself still works


@pytest.mark.slow
def test_sweep_grid_as_a_list_of_tuples_is_the_combinations(close):
    res = atl.backtest.sweep(close, "ma_cross", [(5, 20), (10, 40)], progress=False)
    assert res.index.droplevel("symbol").unique().tolist() == [(5, 20), (10, 40)]
    ref = atl.backtest.sweep(close, "ma_cross", {"fast": [5, 10], "slow": [20, 40]},
                             progress=False)
    pd.testing.assert_frame_equal(res, ref.loc[res.index])
    pairs = atl.backtest.sweep(close, "ma_cross", list(GRID.items()), progress=False)
    pd.testing.assert_frame_equal(pairs, ref)
    one = atl.backtest.sweep(close, "donchian_breakout", [24, 48], progress=False)
    assert one.index.get_level_values("window").unique().tolist() == [24, 48]


@pytest.mark.parametrize("grid", [[(5, 20, 3)], [(5, "slow")], "fast", 5, [[5], [10]]])
def test_sweep_grid_in_another_form_says_the_accepted_forms(close, grid):
    with pytest.raises(DataError, match=r"give a dict of values per parameter \({'fast': \[...\], "
                                        r"'slow': \[...\]}.*one tuple \(fast, slow\) each"):
        atl.backtest.sweep(close, "ma_cross", grid, progress=False)


@pytest.mark.slow
def test_a_window_longer_than_the_data_warns_instead_of_trading_silently_0_times(close):
    n = len(close)
    with pytest.warns(UserWarning, match=rf"ma_cross: slow={n + 10} is not shorter than the "
                                         rf"data \({n} bars\): 1 of 2 .*cannot signal"):
        res = atl.backtest.sweep_ma_cross(close, fast=[5], slow=[50, n + 10], progress=False)
    assert (res.loc[(5, n + 10), "trade_count"] == 0).all()
    assert (res.loc[(5, 50), "trade_count"] > 0).all()
    for name, grid in [("rsi_reversal", {"window": [n], "lower": [30], "upper": [70]}),
                       ("bollinger_reversion", {"window": [n], "k": [2.0]}),
                       ("donchian_breakout", {"window": [n]})]:
        with pytest.warns(UserWarning, match=f"{name}: window={n} is not shorter"):
            atl.backtest.sweep(close, name, grid, progress=False)
    with pytest.warns(UserWarning, match="window=5000"):
        atl.backtest.STRATEGIES["donchian_breakout"].signals(close.to_numpy(), [5000])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # windows that fit: no warning
        atl.backtest.sweep_ma_cross(close, fast=[5], slow=[50], progress=False)


@pytest.mark.slow
def test_multi_timeframe_on_too_little_data_is_unknown_not_bearish(bars):
    short = bars.groupby("symbol").head(600).reset_index(drop=True)  # 10 hours
    M = atl.features.multi_timeframe(short, ["1h", "1D"], fast=2, slow=3)
    assert M["trend_1D"].isna().all()  # no daily bar has closed
    assert M["trend_1h"].notna().any()
    for col in ("trend_alignment", "all_tf_bullish"):
        assert M[col].dtype == np.float64
    assert M["trend_alignment"].isna().all()
    # Not "not bullish": unknown unless the known hourly trend already says no.
    known_no = M["trend_1h"].notna() & (M["trend_1h"] != 1)
    assert M.loc[~known_no, "all_tf_bullish"].isna().all()
    assert (M.loc[known_no, "all_tf_bullish"] == 0).all()


@pytest.mark.parametrize("zone", [None, "America/New_York"])
def test_naive_and_zoned_timestamps_come_out_as_utc(bars, zone):
    local = bars.assign(timestamp=bars["timestamp"].dt.tz_convert(zone) if zone
                        else bars["timestamp"].dt.tz_localize(None))
    utc = bars["timestamp"]
    X = atl.features.technical(local)
    M = atl.features.multi_timeframe(local, ["1h"], fast=2, slow=3)
    W = atl.data.to_wide(local, "close")
    assert str(X["timestamp"].dtype) == str(M["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(W.index.dtype) == "datetime64[ns, UTC]"
    assert (X["timestamp"] == utc).all() and (M["timestamp"] == utc).all()
    pd.testing.assert_frame_equal(W, atl.data.to_wide(bars, "close"))
    pd.testing.assert_frame_equal(X, atl.features.technical(bars))
    pd.testing.assert_frame_equal(M, atl.features.multi_timeframe(bars, ["1h"], fast=2, slow=3))


def _library_classes(module):
    import inspect

    return [c for _, c in inspect.getmembers(module, inspect.isclass)
            if c.__module__ == module.__name__]


def test_every_class_in_errors_is_an_alphatrade_error_or_warning():
    from alphatrade_lab import errors
    from alphatrade_lab.errors import AlphaTradeError, AlphaTradeWarning

    classes = _library_classes(errors)
    assert len(classes) >= 15
    for cls in classes:
        assert issubclass(cls, AlphaTradeError | AlphaTradeWarning), cls
        assert cls.__name__ in errors.__all__, cls
    assert not issubclass(AlphaTradeError, Warning)
    assert issubclass(AlphaTradeWarning, UserWarning)


def test_library_errors_keep_the_builtin_kind_callers_catch():
    from alphatrade_lab import errors as E

    kinds = {E.DataError: ValueError, E.StoreError: ValueError, E.UnknownNameError: KeyError,
             E.UntrustedBundleError: ValueError, E.BundleIntegrityError: ValueError,
             E.SchemaVersionError: RuntimeError, E.AlertDeliveryError: RuntimeError,
             E.StoreLockedError: TimeoutError, E.LockTimeout: TimeoutError,
             E.RepairWarning: UserWarning, E.FeatureMismatchWarning: UserWarning,
             E.VersionMismatchWarning: UserWarning, E.LegacyBundleWarning: UserWarning}
    for cls, kind in kinds.items():
        assert issubclass(cls, kind), (cls, kind)
    err = E.AlertDeliveryError("telegram", "HTTP 500", attempts=3)
    assert (str(err), err.sink, err.attempts) == ("telegram: HTTP 500 after 3 attempts",
                                                  "telegram", 3)


def test_no_exception_or_warning_class_is_defined_outside_errors():
    import importlib
    import pkgutil

    import duckdb

    from alphatrade_lab.errors import AlphaTradeError

    elsewhere = []
    for info in pkgutil.walk_packages(atl.__path__, "alphatrade_lab."):
        if info.name == "alphatrade_lab.errors":
            continue
        module = importlib.import_module(info.name)
        # A module-private class (a leading underscore) is control flow inside its module:
        # it is caught there and never reaches a caller.
        elsewhere += [c for c in _library_classes(module) if issubclass(c, BaseException)
                      and not c.__name__.startswith("_")]
    from alphatrade_lab.data.duckdb_io import ConfigConflictError

    # The one exception: its DuckDB base keeps DuckDB out of alphatrade_lab.errors.
    assert elsewhere == [ConfigConflictError]
    assert issubclass(ConfigConflictError, AlphaTradeError | duckdb.ConnectionException)


def test_errors_moved_to_errors_py_are_still_importable_from_their_subpackages():
    from alphatrade_lab import errors
    from alphatrade_lab.alerts import AlertDeliveryError
    from alphatrade_lab.models import (
        BundleIntegrityError,
        FeatureMismatchWarning,
        LegacyBundleWarning,
        UntrustedBundleError,
        VersionMismatchWarning,
    )
    from alphatrade_lab.store import SchemaVersionError, StoreError, StoreLockedError

    for cls in (AlertDeliveryError, BundleIntegrityError, FeatureMismatchWarning,
                LegacyBundleWarning, UntrustedBundleError, VersionMismatchWarning,
                SchemaVersionError, StoreError, StoreLockedError):
        assert getattr(errors, cls.__name__) is cls
