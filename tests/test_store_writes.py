"""Lab store writers and readers: backtests, daily performance, validation, atomicity."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.store import LabStore, signals_from_wide


@pytest.fixture(scope="module")
def close(sample_bars):
    hourly = atl.data.resample(sample_bars, "1h")
    return atl.data.to_wide(hourly, "close").iloc[:1500]


@pytest.fixture(scope="module")
def cross(close):
    fast, slow = close.rolling(12).mean(), close.rolling(48).mean()
    return fast > slow, fast < slow


@pytest.fixture(scope="module")
def pf(close, cross):
    return atl.backtest.from_signals(close, *cross, fees=0.001)


@pytest.fixture(params=["duckdb", "postgres"])
def store(request):
    """An empty store: DuckDB in memory, or a fresh PostgreSQL database."""
    where = ":memory:" if request.param == "duckdb" else request.getfixturevalue("pg_url")
    with LabStore(where) as s:
        yield s


def _raw_text(store: LabStore, path) -> bytes:
    """Everything the store holds as bytes: the DuckDB file, or every PostgreSQL row as
    text."""
    if not str(store.path).startswith("postgresql://"):
        return path.read_bytes()
    tables = store.counts()
    return "\n".join("\n".join(store.query(f"SELECT CAST(t AS VARCHAR) AS r FROM {name} t")["r"])
                     for name in tables).encode()


def _expected_daily(equity: pd.Series, init: float, trades: pd.DataFrame) -> pd.DataFrame:
    """Daily rows computed day by day with plain loops (independent of convert.py)."""
    rows, prev_end = [], init
    peak = -np.inf
    prev_val = init
    for day in sorted(set(equity.index.date)):
        sub = equity[equity.index.date == day]
        rets, dds = [], []
        for v in sub:
            rets.append(v / prev_val - 1.0)
            prev_val = v
            peak = max(peak, v)
            dds.append(v / peak - 1.0)
        end = float(sub.iloc[-1])
        closed = trades[(trades["status"] == "closed")
                        & (trades["exit_time"].dt.date == day)]
        sd = float(np.std(rets, ddof=1)) if len(rets) > 1 else 0.0
        rows.append({"date": pd.Timestamp(day), "starting_equity": prev_end,
                     "ending_equity": end, "pnl": end - prev_end,
                     "pnl_pct": end / prev_end - 1.0, "trades_count": len(closed),
                     "win_count": int((closed["pnl"] > 0).sum()), "max_drawdown": min(dds),
                     "sharpe_ratio": np.mean(rets) / sd * np.sqrt(365 * 24) if sd > 0
                     else np.nan})
        prev_end = end
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_record_backtest_trades_match_the_portfolio(store, pf):
    run = store.record_backtest(pf, strategy="ma", params={"fast": 12, "slow": 48})
    got = store.trades(run)
    t = pf.trades
    assert len(got) == len(t) > 20
    got = got.sort_values(["symbol", "entry_time"], kind="stable").reset_index(drop=True)
    t = t.assign(symbol=t["column"].astype(str)).sort_values(
        ["symbol", "entry_time"], kind="stable").reset_index(drop=True)
    np.testing.assert_allclose(got["quantity"], t["size"])
    np.testing.assert_allclose(got["entry_price"], t["entry_price"])
    np.testing.assert_allclose(got["pnl"], t["pnl"])
    np.testing.assert_allclose(got["pnl_pct"], t["return"])
    np.testing.assert_allclose(got["fees"], t["entry_fees"] + t["exit_fees"])
    assert (got["entry_time"] == t["entry_time"]).all()
    assert str(got["entry_time"].dt.tz) == "UTC"
    closed = (t["status"] == "closed").to_numpy()
    assert (got["exit_time"][closed] == t["exit_time"][closed]).all()
    assert got["exit_time"][~closed].isna().all() and (~closed).any()
    marks = [json.loads(m) for m in got["metadata"][~closed]]
    np.testing.assert_allclose([m["mark_price"] for m in marks], t["exit_price"][~closed])
    assert (got["side"] == t["direction"]).all() and (got["strategy"] == "ma").all()
    # total pnl per symbol is what the equity curves gained (closed + open trades)
    per_symbol = got.groupby("symbol")["pnl"].sum()
    gained = pf.equity.iloc[-1] - pf.init_cash
    np.testing.assert_allclose(per_symbol.reindex(gained.index.astype(str)), gained.to_numpy(),
                               rtol=1e-9, atol=1e-9)
    runs = store.runs()
    assert runs["run_id"].tolist() == [run]
    assert json.loads(runs["params"].iloc[0]) == {"fast": 12, "slow": 48}
    assert runs["data_fingerprint"].iloc[0] == atl.backtest.fingerprint(pf)
    assert runs["code_version"].iloc[0].startswith("alphatrade_lab")


def test_daily_performance_per_column_matches_independent_computation(store, pf):
    run = store.record_backtest(pf)
    daily = store.daily_performance(run)
    assert set(daily["portfolio"]) == {str(c) for c in pf.equity.columns}
    trades = pf.trades
    for col in pf.equity.columns:
        got = daily[daily["portfolio"] == str(col)].reset_index(drop=True)
        exp = _expected_daily(pf.equity[col], float(pf.init_cash[0]),
                              trades[trades["column"] == col])
        assert len(got) == len(exp)
        assert (got["date"].to_numpy() == exp["date"].to_numpy()).all()
        for name in ("starting_equity", "ending_equity", "pnl", "pnl_pct", "max_drawdown",
                     "sharpe_ratio"):
            np.testing.assert_allclose(got[name], exp[name], rtol=1e-9, atol=1e-12,
                                       err_msg=f"{col} {name}")
        assert (got["trades_count"] == exp["trades_count"]).all()
        assert (got["win_count"] == exp["win_count"]).all()
        # telescoping: daily returns compound to the backtest's own total return
        total = float(np.prod(1 + got["pnl_pct"]) - 1)
        assert total == pytest.approx(float(pf.stats().loc[col, "total_return"]), rel=1e-9)
        assert got["max_drawdown"].min() == pytest.approx(
            float(pf.stats().loc[col, "max_drawdown"]), rel=1e-9)
        assert got["trades_count"].sum() == pf.stats().loc[col, "closed_trade_count"]


@pytest.mark.slow
def test_daily_performance_total_and_cash_sharing(store, close, cross, pf):
    run = store.record_backtest(pf, daily="total")
    got = store.daily_performance(run)
    assert set(got["portfolio"]) == {"total"}
    exp = _expected_daily(pf.equity.sum(axis=1), float(pf.init_cash.sum()), pf.trades)
    np.testing.assert_allclose(got["ending_equity"], exp["ending_equity"], rtol=1e-12)
    np.testing.assert_allclose(got["sharpe_ratio"], exp["sharpe_ratio"], rtol=1e-9)
    assert (got["trades_count"].to_numpy() == exp["trades_count"].to_numpy()).all()
    shared = atl.backtest.from_signals(close, *cross, fees=0.001, cash_sharing=True)
    run = store.record_backtest(shared, daily="both")
    got = store.daily_performance(run)
    assert set(got["portfolio"]) == {"portfolio", "total"}
    one = got[got["portfolio"] == "portfolio"]
    exp = _expected_daily(shared.equity["portfolio"], float(shared.init_cash[0]),
                          shared.trades)
    np.testing.assert_allclose(one["ending_equity"], exp["ending_equity"], rtol=1e-12)
    assert one["trades_count"].sum() == len(shared.trades[shared.trades["status"] == "closed"])


def test_error_in_the_middle_of_a_write_leaves_nothing(store, pf, monkeypatch):
    before = store.counts()
    real = LabStore._insert
    calls = []

    def failing(self, con, table, rows):
        calls.append(table)
        if table == "daily_performance":
            raise RuntimeError("disk on fire")
        return real(self, con, table, rows)

    monkeypatch.setattr(LabStore, "_insert", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.record_backtest(pf)
    assert calls == ["runs", "trades", "daily_performance"]  # really failed mid-way
    monkeypatch.setattr(LabStore, "_insert", lambda *a: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        store.record_backtest(pf)
    monkeypatch.undo()
    assert store.counts() == before
    store.record_backtest(pf)  # the store still works afterwards
    assert store.counts()["runs"] == before["runs"] + 1


def test_database_constraint_failure_rolls_back_the_whole_write(store_url, pf):
    store = LabStore(store_url)
    run = store.record_backtest(pf)
    before = store.counts()
    with pytest.raises(DataError, match=f"runs: run_id '{run}' is already in "
                                        f"{re.escape(str(store.path))}"):
        store.record_backtest(pf, run_id=run)  # duplicate run id: nothing of it is written
    signals = pd.DataFrame({"timestamp": pf.index[:3], "symbol": "AAA", "direction": 1})
    with pytest.raises(DataError, match="signals: run_id 'nope' is not in runs"):
        store.record_signals(signals, run_id="nope")
    assert store.counts() == before


def _signals(n=5):
    return pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="1h"),
                         "symbol": "AAA", "direction": [1, -1, 0, 1, -1][:n],
                         "confidence": np.linspace(0.1, 0.9, n)})


@pytest.mark.parametrize(("change", "pattern"), [
    (lambda f: f.drop(columns="direction"), r"signals: missing required column\(s\) "
                                            r"\['direction'\]"),
    (lambda f: f.assign(direction=[1, 2, 0, 1, -1]),
     r"signals, column 'direction', row 1 \(index 1\) is 2; allowed: -1, 0, 1"),
    (lambda f: f.assign(direction=[1, 0.5, 0, 1, -1]), r"'direction', row 1 .*integer"),
    (lambda f: f.assign(direction=[1, 0, np.nan, 1, -1]), r"'direction', row 2 .*NaN"),
    (lambda f: f.assign(confidence=[0.1, 0.2, 0.3, 1.5, 0.2]),
     r"'confidence', row 3 .*between 0.0 and 1.0"),
    (lambda f: f.assign(confidence=[0.1, np.inf, 0.3, 0.5, 0.2]), r"'confidence', row 1 .*inf"),
    (lambda f: f.assign(confidence=["a", 0.2, 0.3, 0.5, 0.2]),
     r"'confidence', row 0 .*expected a number"),
    (lambda f: f.assign(symbol=["AAA", None, "B", "C", "D"]), r"'symbol', row 1 .*NULL"),
    (lambda f: f.assign(timestamp=["2024-01-01", "soon", "2024-01-02", "2024-01-03",
                                   "2024-01-04"]), r"'timestamp', row 1 .*'soon'"),
    (lambda f: f.assign(colour="red"), r"signals: unknown column\(s\) \['colour'\]"),
    (lambda f: f.assign(was_executed=[True, "yes", False, True, False]),
     r"'was_executed', row 1 .*True/False"),
])
def test_bad_signals_raise_clear_errors(store, change, pattern):
    with pytest.raises(DataError, match=pattern):
        store.record_signals(change(_signals()))
    assert store.counts()["signals"] == 0


def test_signals_round_trip_with_nullable_values(store):
    frame = _signals().assign(confidence=[0.1, np.nan, 0.3, 0.4, 0.5])
    assert store.record_signals(frame, model_type="m1") == 5
    got = store.signals()
    assert got["direction"].tolist() == [1, -1, 0, 1, -1]
    assert got["confidence"].isna().tolist() == [False, True, False, False, False]
    # naive timestamps are read as UTC (the project's convention)
    assert (got["timestamp"] == frame["timestamp"].dt.tz_localize("UTC")).all()
    assert (got["model_type"] == "m1").all() and got["run_id"].isna().all()


def test_bad_trades_and_model_performance(store):
    t = pd.DataFrame({"symbol": ["AAA"], "side": ["buy"], "quantity": [1.0],
                      "entry_time": ["2024-01-01"], "entry_price": [10.0]})
    with pytest.raises(DataError, match=r"trades, column 'side', row 0 .*long, short"):
        store.record_trades(t)
    with pytest.raises(DataError, match=r"trades, column 'entry_price', row 0 .*NaN"):
        store.record_trades(t.assign(side="long", entry_price=np.nan))
    with pytest.raises(DataError, match=r"trades, column 'metadata', row 0 .*not valid JSON"):
        store.record_trades(t.assign(side="long", metadata=["{oops"]))
    mp = pd.DataFrame({"date": ["2024-01-01", "2024-01-02"], "symbol": "AAA",
                       "model_type": "logit", "predictions_count": [10, 4],
                       "correct_predictions": [7, 5]})
    with pytest.raises(DataError, match=r"'correct_predictions', row 1 .*> predictions_count"):
        store.record_model_performance(mp)
    store.record_model_performance(mp.assign(correct_predictions=[7, 1], avg_confidence=0.6))
    got = store.model_performance()
    np.testing.assert_allclose(got["accuracy"], [0.7, 0.25])
    with pytest.raises(DataError, match=r"'accuracy', row 0"):
        store.record_model_performance(mp.assign(correct_predictions=[7, 1], accuracy=0.5))
    assert store.counts()["trades"] == 0


def test_query_binds_parameters_and_never_formats_them(store):
    evil = "AAA'; DROP TABLE trades; --"
    trades = pd.DataFrame({"symbol": [evil, "BBB"], "side": "long", "quantity": 1.0,
                           "entry_time": pd.Timestamp("2024-01-01", tz="UTC"),
                           "entry_price": [10.0, 20.0]})
    store.record_trades(trades)
    got = store.query("SELECT symbol, entry_price FROM trades WHERE symbol = ?", [evil])
    assert got["symbol"].tolist() == [evil] and got["entry_price"].tolist() == [10.0]
    got = store.query("SELECT count(*) AS n FROM trades WHERE entry_price > $p", {"p": 15})
    assert got["n"].tolist() == [1]
    assert store.trades(symbol=evil)["entry_price"].tolist() == [10.0]
    assert store.trades(symbol=[evil, "BBB"]).shape[0] == 2
    assert store.counts()["trades"] == 2  # the table is still there
    with pytest.raises(ValueError, match="only SELECT statements"):
        store.query("DELETE FROM trades")
    with pytest.raises(ValueError, match="one SQL statement"):
        store.query("SELECT 1; DROP TABLE trades")
    assert store.counts()["trades"] == 2


@pytest.mark.slow
def test_reader_filters_match_pandas(store_url, pf):
    store = LabStore(store_url)
    a, b = store.record_backtest(pf), store.record_backtest(pf, strategy="other")
    every = store.trades()
    assert len(every) == 2 * len(pf.trades)
    start, end = pf.index[300], pf.index[900]
    got = store.trades(b, ["AAA", "CCC"], start=start, end=end)
    exp = every[(every["run_id"] == b) & every["symbol"].isin(["AAA", "CCC"])
                & (every["entry_time"] >= start) & (every["entry_time"] < end)]
    assert len(got) == len(exp) > 0
    np.testing.assert_allclose(np.sort(got["pnl"]), np.sort(exp["pnl"]))
    assert set(store.trades(a)["run_id"]) == {a}
    assert store.trades(strategy="other")["run_id"].unique().tolist() == [b]
    ro = LabStore(store_url, read_only=True)
    assert len(ro.trades(a)) == len(pf.trades)
    with pytest.raises(PermissionError):
        ro.record_run("x")


def test_drift_and_alerts_join_with_trades_of_the_same_run(store, pf):
    run = store.record_backtest(pf)
    report = pd.DataFrame({"feature": ["ret_1", "ret_1", "vol_24"],
                           "method": ["psi", "ks", "psi"], "statistic": [0.31, 0.05, 0.02],
                           "p_value": [np.nan, 0.2, np.nan], "threshold": [0.2, 0.1, 0.2]})
    store.record_drift(report, run_id=run, window_start=pf.index[0], window_end=pf.index[-1])
    store.record_alert("WARNING", "drift", "ret_1 drifted", {"psi": 0.31}, run_id=run,
                       delivered=["log"], failed=["telegram"])
    drift = store.drift(run).merge(report, on=["feature", "method"])
    assert len(drift) == 3
    assert (drift["drifted"] == (drift["statistic_y"] > drift["threshold_y"])).all()
    got = store.query("""
        SELECT count(DISTINCT t.symbol) AS symbols, count(DISTINCT d.feature) AS drifted,
               max(a.level) AS level
        FROM trades t JOIN drift_stats d ON d.run_id = t.run_id AND d.drifted
        JOIN alerts a ON a.run_id = t.run_id WHERE t.run_id = ?""", [run])
    assert got.to_dict("records") == [{"symbols": pf.trades["column"].nunique(),
                                       "drifted": 1, "level": "warning"}]
    alert = store.alerts(run).iloc[0]
    assert json.loads(alert["failed_sinks"]) == ["telegram"]


def test_secrets_are_redacted_before_they_reach_the_file(store_url, tmp_path):
    secrets = ["123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "hunter2",
               "abcDEF123xyz", "s3cr3tKEY"]
    store = LabStore(store_url)
    run = store.record_run("live", {"telegram_bot_token": secrets[0], "fast": 3,
                                    "db": "postgres://bob:hunter2@db:5432/lab"},
                           notes="api_key=s3cr3tKEY")
    store.record_alert(
        "error", f"send failed for https://api.telegram.org/bot{secrets[0]}/sendMessage",
        "POST https://discord.com/api/webhooks/42/abcDEF123xyz returned 404",
        {"webhook": "https://discord.com/api/webhooks/42/abcDEF123xyz",
         "nested": [{"password": "hunter2"}], "price": 101.5}, run_id=run)
    raw = _raw_text(store, tmp_path / "lab.duckdb")
    assert b"101.5" in raw  # the rows are there
    for s in secrets:
        assert s.encode() not in raw, s
    data = json.loads(store.alerts(run)["data"].iloc[0])
    assert data["price"] == 101.5 and data["webhook"] == "[REDACTED]"
    assert json.loads(store.runs()["params"].iloc[0])["fast"] == 3


def test_signals_from_wide_and_executed_flags(pf, cross):
    entries, exits = cross
    directions = entries.astype(int) - exits.astype(int)
    changes = directions.diff().fillna(0).clip(-1, 1)
    long = signals_from_wide(changes, executed=pf.orders, model_type="ma")
    assert len(long) == int((changes != 0).to_numpy().sum())
    orders = {(str(c), t) for c, t in zip(pf.orders["column"], pf.orders["timestamp"],
                                          strict=True)}
    for row in long.sample(30, random_state=0).itertuples():
        assert row.was_executed == ((row.symbol, row.timestamp) in orders)
        assert row.direction == changes.loc[row.timestamp, row.symbol]


def test_record_alerts_writes_all_or_none_and_names_the_bad_row(store):
    rows = [{"level": "warning", "title": f"t{i}", "data": {"i": i}, "delivered": ["log"]}
            for i in range(300)]
    assert store.record_alerts(rows) == 300
    got = store.alerts()
    assert len(got) == 300 and set(got["level"]) == {"warning"}
    with pytest.raises(DataError, match=r"alerts, column 'level', row 2"):
        store.record_alerts([*rows[:2], {"level": "", "title": "x"}, *rows[:2]])
    assert len(store.alerts()) == 300


def test_two_thousand_alerts_are_all_recorded_through_a_file_store(store_url):
    from alphatrade_lab.alerts import AlertManager

    store = atl.store.LabStore(store_url)  # a file or a server: each write a transaction
    alerts = [atl.alerts.Alert("info", f"n{i}", "", {"i": i}) for i in range(2000)]
    with AlertManager.from_env({}, store=store, log=False) as manager:
        results = manager.send_many(alerts)
    assert all(r.recorded for r in results)
    got = store.alerts()
    assert sorted(json.loads(d)["i"] for d in got["data"]) == list(range(2000))
