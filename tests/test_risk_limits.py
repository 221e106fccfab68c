"""Risk limits on a backtest, checked against hand computations from pf.equity / pf.trades;
the streaming state gives the same breaches; breaches and drift become alerts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.alerts import AlertManager
from alphatrade_lab.monitoring import drift_alerts
from alphatrade_lab.risk import Limit, RiskLimits, RiskManager
from alphatrade_lab.testing import LocalReceiver


@pytest.fixture(scope="module")
def close(sample_bars) -> pd.DataFrame:
    return atl.data.to_wide(atl.data.resample(sample_bars, "1h"), "close")


@pytest.fixture(scope="module")
def pf(close):
    fast, slow = close.rolling(24).mean(), close.rolling(96).mean()
    return atl.backtest.from_signals(close, fast > slow, fast < slow, fees=0.001)


def starts(mask: pd.Series, breaks: pd.Series | None = None) -> pd.Series:
    prev = mask.shift(1, fill_value=False)
    out = mask & ~prev
    return out | (mask & breaks) if breaks is not None else out


def only(b: pd.DataFrame, limit: str, severity: str, col) -> pd.DataFrame:
    return b[(b["limit"] == limit) & (b["severity"] == severity) & (b["portfolio"] == col)]


def test_max_drawdown_matches_pandas(pf):
    lim = Limit(0.2, warning=0.1)
    b = RiskManager(RiskLimits(max_drawdown=lim, daily_loss=None, position_size=None,
                               gross_exposure=None, consecutive_losses=None)).evaluate(pf)
    assert set(b["limit"]) == {"max_drawdown"}
    for col in pf.equity.columns:
        dd = -pf.drawdown[col]
        for severity, thr in (("warning", 0.1), ("critical", 0.2)):
            got = only(b, "max_drawdown", severity, col)
            first = starts(dd > thr)
            assert list(got["timestamp"]) == list(dd.index[first])
            np.testing.assert_allclose(got["value"], dd[first], rtol=1e-12)
            if len(got):  # the worst of the first episode
                e = got.iloc[0]
                np.testing.assert_allclose(e["worst"], dd.loc[e["timestamp"]:e["end"]].max())
    worst = b[b["severity"] == "critical"].groupby("portfolio")["worst"].max()
    np.testing.assert_allclose(worst, -pf.stats()["max_drawdown"].loc[worst.index])


def test_daily_loss_matches_a_hand_loop(pf):
    b = RiskManager(RiskLimits(max_drawdown=None, daily_loss=0.05, position_size=None,
                               gross_exposure=None, consecutive_losses=None)).evaluate(pf)
    col = "BBB"
    eq = pf.equity[col]
    ref, last, day, prev_over = 100.0, None, None, False
    expected = []
    for t, v in eq.items():
        d = t.date()
        if day is not None and d != day:
            ref, prev_over = last, False
        day, last = d, v
        loss = 1 - v / ref
        if loss > 0.05 and not prev_over:
            expected.append((t, loss))
        prev_over = loss > 0.05
    got = only(b, "daily_loss", "critical", col)
    assert len(expected) > 3
    assert list(got["timestamp"]) == [t for t, _ in expected]
    np.testing.assert_allclose(got["value"], [v for _, v in expected], rtol=1e-12)


def test_consecutive_losses_match_the_trades(pf):
    b = RiskManager(RiskLimits(max_drawdown=None, daily_loss=None, position_size=None,
                               gross_exposure=None, consecutive_losses=(5, 3))).evaluate(pf)
    trades = pf.trades[pf.trades["status"] == "closed"]
    for col in pf.equity.columns:
        t = trades[trades["column"] == col].sort_values("exit_time")
        for severity, thr in (("warning", 3), ("critical", 5)):
            streak, expected = 0, []
            for exit_time, pnl in zip(t["exit_time"], t["pnl"], strict=True):
                streak = streak + 1 if pnl < 0 else 0
                if streak == thr + 1:
                    expected.append(exit_time)
            got = only(b, "consecutive_losses", severity, col)
            assert list(got["timestamp"]) == expected
            assert (got["value"] == thr + 1).all()
    assert (b["limit"] == "consecutive_losses").sum() > 5


def test_position_size_and_gross_exposure(pf, close):
    rm = RiskManager(RiskLimits(max_drawdown=None, daily_loss=None, consecutive_losses=None,
                                position_size=0.9, gross_exposure=0.95))
    b = rm.evaluate(pf)
    frac = (pf.positions * close.ffill()).abs() / pf.equity
    for col in ("AAA", "EEE"):
        for limit, thr in (("position_size", 0.9), ("gross_exposure", 0.95)):
            got = only(b, limit, "critical", col)
            first = starts(frac[col] > thr)
            assert len(got) > 10 and list(got["timestamp"]) == list(frac.index[first])
            np.testing.assert_allclose(got["value"], frac[col][first], rtol=1e-12)
    assert set(b.loc[b["limit"] == "position_size", "symbol"]) == set(close.columns)


def test_gross_exposure_sums_a_shared_cash_group(close):
    two = close[["AAA", "BBB"]].iloc[:500]
    weights = pd.DataFrame(0.6, index=two.index, columns=two.columns)
    pf2 = atl.backtest.from_weights(two, weights, fees=0.0)
    b = RiskManager(RiskLimits(max_drawdown=None, daily_loss=None, consecutive_losses=None,
                               gross_exposure=1.1, position_size=0.7)).evaluate(pf2)
    values = (pf2.positions * two).abs()
    gross = values.sum(axis=1) / pf2.equity.iloc[:, 0]
    top = values.max(axis=1) / pf2.equity.iloc[:, 0]
    got = b[b["limit"] == "gross_exposure"]
    assert list(got["timestamp"]) == list(gross.index[starts(gross > 1.1)])
    np.testing.assert_allclose(got["value"], gross[starts(gross > 1.1)])
    assert (b["limit"] == "position_size").sum() == starts(top > 0.7).sum()


@pytest.mark.slow
def test_streaming_updates_give_the_same_breaches(pf, close):
    limits = RiskLimits(position_size=0.9, consecutive_losses=(5, 3))
    col = "CCC"
    batch = RiskManager(limits).evaluate(pf)
    batch = batch[batch["portfolio"] == col]
    rm = RiskManager(limits, start_equity=100.0)
    eq, pos, px = pf.equity[col], pf.positions[col], close[col].ffill()
    trades = pf.trades[(pf.trades["column"] == col) & (pf.trades["status"] == "closed")]
    pnl_at = trades.groupby("exit_time")["pnl"].apply(list)
    live = []
    for t in eq.index:
        live += rm.update(t, eq[t], {col: pos[t] * px[t]}, pnl_at.get(t), portfolio=col)
    key = ["limit", "severity", "timestamp"]
    live_df = pd.DataFrame([b.to_dict() for b in live]).sort_values(key).reset_index(drop=True)
    batch = batch.sort_values(key).reset_index(drop=True)
    assert len(live_df) == len(batch) > 20
    pd.testing.assert_frame_equal(live_df[key], batch[key])
    np.testing.assert_allclose(live_df["value"], batch["value"], rtol=1e-9)


def test_breach_alerts_text_and_level():
    rm = RiskManager(RiskLimits(max_drawdown=(0.10, 0.05), daily_loss=None))
    rm.update("2024-01-01 00:00", 100.0)
    (warn,) = rm.update("2024-01-01 01:00", 94.0)
    crit, = rm.update("2024-01-01 02:00", 87.66)
    a, c = rm.alert_for(warn), rm.alert_for(crit)
    assert (a.level.name, c.level.name) == ("WARNING", "CRITICAL")
    assert c.title == "Risk Alert: max_drawdown"
    assert c.message == "Current value: 12.34%, threshold 10.00% exceeded"
    assert c.data["time"] == "2024-01-01T02:00:00+00:00"
    assert rm.update("2024-01-01 03:00", 80.0) == []      # still in the same episode
    rm.update("2024-01-01 04:00", 101.0)                  # recovered: re-armed
    again = rm.update("2024-01-01 05:00", 89.0)
    assert [b.severity for b in again] == ["warning", "critical"]


def test_update_sends_alerts_through_the_manager():
    with LocalReceiver() as rx:
        manager = AlertManager([atl.alerts.WebhookAlerter(rx.url + "/risk")], log=False)
        rm = RiskManager(RiskLimits(daily_loss=None, max_drawdown=0.1, consecutive_losses=2),
                         manager=manager)
        rm.update("2024-01-01", 100.0, closed_trade_pnl=[-1.0, -2.0])
        rm.update("2024-01-02", 85.0, {"AAA": 50.0, "BBB": -40.0}, closed_trade_pnl=-3.0)
        results = rm.wait(timeout=30)
        manager.close()
        titles = sorted(r.json["title"] for r in rx.requests("/risk"))
    assert all(r.delivered == ["webhook"] for r in results)
    assert titles == ["Risk Alert: consecutive_losses", "Risk Alert: max_drawdown"]


def test_drift_report_sends_warnings(sample_bars):
    bars = atl.data.load_sample(["AAA"])
    X = atl.features.technical(bars).dropna()
    half = len(X) // 2
    ref, cur = X.iloc[:half].copy(), X.iloc[half:].copy()
    cur[cur.columns[-1]] = cur[cur.columns[-1]] * 3 + 1        # one feature surely drifts
    report = atl.monitoring.drift_report(ref, cur, methods=["psi", "ks"])
    alerts = drift_alerts(report)
    drifted = report.loc[report["drifted"], "feature"].unique()
    assert [a.title for a in alerts] == [f"Drift Alert: {f}" for f in drifted]
    assert all(a.level.name == "WARNING" for a in alerts)
    with LocalReceiver() as rx:
        manager = AlertManager([atl.alerts.WebhookAlerter(rx.url + "/drift")], log=False)
        results = RiskManager().send_drift(report, manager)
        manager.close()
        assert len(rx.requests("/drift")) == len(alerts) == len(results) >= 1
    with pytest.raises(ValueError, match="missing columns"):
        drift_alerts(report.drop(columns="drifted"))
