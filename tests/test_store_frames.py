"""One persistence rule: compute code returns frames, ``LabStore.record_*`` writes them.

The backtest's frames (backtest.frames) are checked by hand on a small case; the store's
frame writers on what they accept, refuse and skip.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.backtest import portfolio_frames
from alphatrade_lab.errors import DataError, location


@pytest.fixture(params=["duckdb", "postgres"])
def store(request):
    """An empty store: DuckDB in memory, or a fresh PostgreSQL schema."""
    where = ":memory:" if request.param == "duckdb" else request.getfixturevalue("pg_url")
    with atl.store.LabStore(where) as s:
        yield s


@pytest.fixture
def pf():
    # AAA: buy 10 shares at 10 (bar 0), sell at 12 (bar 2), no fees; one day per 12 h pair
    idx = pd.date_range("2024-01-01", periods=6, freq="12h", tz="UTC")
    close = pd.DataFrame({"AAA": [10.0, 11.0, 12.0, 11.0, 10.0, 12.5]}, index=idx)
    entries = pd.DataFrame({"AAA": [True, False, False, True, False, False]}, index=idx)
    exits = pd.DataFrame({"AAA": [False, False, True, False, False, False]}, index=idx)
    return atl.backtest.from_signals(close, entries, exits, fees=0.0, init_cash=100.0)


def test_portfolio_frames_by_hand(pf):
    frames = portfolio_frames(pf)
    assert set(frames) == {"trades", "daily_performance"}
    t = frames["trades"]
    assert t["status"].tolist() == ["closed", "open"]
    assert t["quantity"].tolist() == [10.0, 120.0 / 11.0]
    # the closed trade: 10 shares from 10 to 12; the open one is marked at the last close
    assert t["pnl"].iloc[0] == 20.0 and t["pnl_pct"].iloc[0] == pytest.approx(0.2)
    assert t["pnl"].iloc[1] == pytest.approx(120.0 / 11.0 * 1.5)
    assert pd.isna(t["exit_time"].iloc[1]) and t["metadata"].iloc[1]["mark_price"] == 12.5
    d = frames["daily_performance"]
    # equity at each close: 100, 110 | 120, 120 | 120*10/11, 120*12.5/11
    ending = [110.0, 120.0, 120.0 * 12.5 / 11.0]
    assert [str(x) for x in d["date"]] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    np.testing.assert_allclose(d["ending_equity"], ending, rtol=1e-12)
    np.testing.assert_allclose(d["starting_equity"], [100.0, 110.0, 120.0], rtol=1e-12)
    np.testing.assert_allclose(d["pnl"], np.subtract(ending, [100.0, 110.0, 120.0]),
                               rtol=1e-12)
    assert d["trades_count"].tolist() == [0, 1, 0]  # the exit is on day 2
    assert d["win_count"].tolist() == [0, 1, 0]
    # day 3 dips to 120*10/11 from the 120 peak, then recovers above it
    np.testing.assert_allclose(d["max_drawdown"], [0.0, 0.0, 10.0 / 11.0 - 1.0], rtol=1e-12,
                               atol=1e-15)
    assert (d["portfolio"] == "AAA").all()


def test_record_backtest_writes_the_frames(store, pf):
    run = store.record_backtest(pf, strategy="hand")
    assert store.trades(run)["pnl"].iloc[0] == 20.0
    assert (store.trades(run)["strategy"] == "hand").all()
    assert store.daily_performance(run)["trades_count"].tolist() == [0, 1, 0]


def test_record_frames_is_one_transaction(store):
    ts = pd.date_range("2024-01-01", periods=2, freq="1h", tz="UTC")
    good = pd.DataFrame({"timestamp": ts, "symbol": "AAA", "direction": [1, -1]})
    bad = pd.DataFrame({"symbol": ["AAA"], "side": ["sideways"], "quantity": [1.0],
                        "entry_time": ts[:1], "entry_price": [10.0]})
    with pytest.raises(DataError, match=r"trades, column 'side', row 0 .*long, short"):
        store.record_frames({"signals": good, "trades": bad})
    assert store.counts()["runs"] == 0 and store.counts()["signals"] == 0
    with pytest.raises(DataError, match=r"no table 'runs' takes a run's rows; use one of"):
        store.record_frames({"runs": good})
    with pytest.raises(DataError, match=r"no table 'signal' takes"):
        store.record_frames({"signal": good})


def test_record_drift_takes_a_report_as_it_is(store):
    report = pd.DataFrame({
        "feature": ["a", "a", "b", "b"], "method": ["psi", "ks", "psi", "ks"],
        "statistic": [0.3, np.nan, np.inf, 0.1], "p_value": [np.nan, np.nan, np.nan, 0.01],
        "threshold": [0.2, 0.05, 0.2, 0.05], "drifted": [True, False, False, True],
        "n_ref": 100, "n_cur": 50, "nan_ref": 0, "nan_cur": 0})
    assert store.record_drift(report, run_id=None) == 2
    got = store.drift()
    assert list(zip(got["feature"], got["method"], strict=True)) == [("a", "psi"), ("b", "ks")]
    where = r"drift_stats, column 'statistic', row 0 \(index 0\)"
    with pytest.raises(DataError, match=where + " is 'big'; expected a number"):
        store.record_drift(report.assign(statistic=["big", 0.1, 0.1, 0.1]))


def test_drift_alerts_live_in_monitoring():
    assert not hasattr(atl.risk, "drift_alerts")
    rep = pd.DataFrame({"feature": ["x"], "method": ["psi"], "statistic": [0.5],
                        "p_value": [np.nan], "threshold": [0.2], "drifted": [True]})
    (alert,) = atl.monitoring.drift_alerts(rep)
    assert alert.message == "drifted by psi 0.5 > 0.2"
    with pytest.raises(DataError, match=r"missing columns \['drifted'\]; pass the result"):
        atl.monitoring.drift_alerts(rep.drop(columns="drifted"))


def test_location_names_source_column_row():
    assert location("bars.csv") == "bars.csv"
    assert location("bars.csv", "high") == "bars.csv, column 'high'"
    assert location("bars.csv", "high", 2, line=4) == "bars.csv, column 'high', row 2 (line 4)"
    assert location("t", 0, 3, label="k") == "t, column 0, row 3 (index 'k')"
    when = pd.Timestamp("2024-01-04 05:00", tz="UTC")
    assert location("close", None, 1, label=when) == "close, row 1 (2024-01-04 05:00:00+00:00)"
