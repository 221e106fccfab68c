"""RiskManager.send: one alert per limit and portfolio by default (checked against a pandas
count of the breach table), one per episode on request; delivered to a local receiver."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.alerts import AlertManager, WebhookAlerter
from alphatrade_lab.errors import DataError
from alphatrade_lab.risk import Breach, RiskLimits, RiskManager
from alphatrade_lab.testing import LocalReceiver


@pytest.fixture(scope="module")
def pf(sample_bars):
    close = atl.data.to_wide(atl.data.resample(sample_bars, "1h"), "close")
    fast, slow = close.rolling(24).mean(), close.rolling(96).mean()
    return atl.backtest.from_signals(close, fast > slow, fast < slow, fees=0.001)


@pytest.fixture(scope="module")
def breaches(pf):
    # the README's limits: hundreds of episodes on the sample
    return RiskManager(RiskLimits(max_drawdown=(0.2, 0.1), daily_loss=0.05)).evaluate(pf)


def test_summary_counts_spans_and_worst_match_the_breach_table(breaches):
    assert len(breaches) > 100
    summary = RiskManager.summarize(breaches)
    pairs = breaches[["limit", "portfolio"]].drop_duplicates()
    assert len(summary) == len(pairs)
    for (limit, portfolio), g in breaches.groupby(["limit", "portfolio"]):
        (row,) = summary[(summary["limit"] == limit)
                         & (summary["portfolio"] == portfolio)].to_dict("records")
        crit, warn = g[g["severity"] == "critical"], g[g["severity"] == "warning"]
        assert row["critical_episodes"] == len(crit)
        assert row["warning_episodes"] == len(warn)
        assert row["severity"] == ("critical" if len(crit) else "warning")
        assert row["first"] == g["timestamp"].min() and row["last"] == g["end"].max()
        assert row["worst"] == g["worst"].max()
        assert row["worst_time"] == g.loc[g["worst"].idxmax(), "worst_time"]
        if len(crit):
            assert row["critical_threshold"] == crit["threshold"].iloc[0]
        else:
            assert np.isnan(row["critical_threshold"])
    # critical pairs first, each block in time order
    rank = (summary["severity"] != "critical").astype(int)
    assert rank.is_monotonic_increasing
    for _, block in summary.groupby(rank):
        assert block["first"].is_monotonic_increasing


def test_summary_worst_is_the_max_drawdown_of_the_equity(pf, breaches):
    summary = RiskManager.summarize(breaches).set_index(["limit", "portfolio"])
    dd = summary.xs("max_drawdown")["worst"]
    expected = (1 - pf.equity / pf.equity.cummax()).max()
    np.testing.assert_allclose(dd, expected.loc[dd.index], rtol=1e-12)


def test_send_summarises_per_limit_and_portfolio(breaches):
    rm = RiskManager()
    with LocalReceiver() as rx:
        manager = AlertManager([WebhookAlerter(rx.url + "/risk")], log=False)
        t0 = time.monotonic()
        results = rm.send(breaches, manager)
        took = time.monotonic() - t0
        manager.close()
        got = rx.requests("/risk")
    pairs = breaches[["limit", "portfolio"]].drop_duplicates()
    assert len(got) == len(results) == len(pairs) < 20
    assert all(r.delivered == ["webhook"] for r in results)
    assert took < 15
    seen = {(r.json["data"]["limit"], r.json["data"]["portfolio"]) for r in got}
    assert seen == set(map(tuple, pairs.to_numpy()))
    for r in got:
        body = r.json
        g = breaches[(breaches["limit"] == body["data"]["limit"])
                     & (breaches["portfolio"] == body["data"]["portfolio"])]
        n_crit = int((g["severity"] == "critical").sum())
        assert body["title"] == f"Risk Alert: {body['data']['limit']}"
        assert body["level"] == ("critical" if n_crit else "warning")
        assert body["data"]["critical_episodes"] == n_crit
        assert body["data"]["warning_episodes"] == len(g) - n_crit
        if n_crit:
            noun = "episode" if n_crit == 1 else "episodes"
            assert f"{body['data']['portfolio']}: {n_crit} critical {noun}" in body["message"]
        worst = g["worst"].max()
        shown = f"{worst:g}" if body["data"]["limit"] == "consecutive_losses" else f"{worst:.2%}"
        assert f"worst {shown} at " in body["message"]


def test_send_per_episode_keeps_one_alert_per_breach(breaches):
    some = breaches[breaches["portfolio"] == "AAA"].head(7)
    rm = RiskManager()
    with LocalReceiver() as rx:
        manager = AlertManager([WebhookAlerter(rx.url + "/risk")], log=False)
        results = rm.send(some, manager, per_episode=True)
        manager.close()
        got = rx.requests("/risk")
    assert len(got) == len(results) == 7
    assert [r.alert.message for r in results] == [rm.alert_for(b).message
                                                  for b in some.to_dict("records")]


def test_summary_of_streamed_breaches_and_of_bad_data():
    rm = RiskManager(RiskLimits(max_drawdown=(0.10, 0.05), daily_loss=None))
    streamed: list[Breach] = []
    for t, eq in [("2024-01-01 00:00", 100.0), ("2024-01-01 01:00", 94.0),
                  ("2024-01-01 02:00", 88.0), ("2024-01-01 03:00", 101.0),
                  ("2024-01-01 04:00", 95.0), ("2024-01-01 05:00", float("nan"))]:
        streamed += rm.update(t, eq)
    summary = rm.summarize(streamed).set_index("limit")
    dd = summary.loc["max_drawdown"]
    # warning at 01:00 and 04:00 (6%, 5.94%), critical at 02:00 (12%)
    assert (dd["warning_episodes"], dd["critical_episodes"]) == (2, 1)
    assert dd["first"] == pd.Timestamp("2024-01-01 01:00", tz="UTC")
    assert dd["last"] == pd.Timestamp("2024-01-01 04:00", tz="UTC")
    assert np.isclose(dd["worst"], 0.12)
    bad = rm.summary_alert(summary.loc["invalid_equity"].to_dict() | {"limit": "invalid_equity"})
    assert bad.level.name == "CRITICAL"
    assert "not a finite number" in bad.message and "1 episode " in bad.message
    assert rm.summarize(streamed[:0]).empty and rm.alerts([]) == []


def test_summary_of_a_table_that_is_not_a_breach_table_says_what_to_pass(pf):
    with pytest.raises(DataError, match=r"no column\(s\) \['severity'.*RiskManager\.evaluate"):
        RiskManager().send(pf.equity.reset_index().assign(limit="x", portfolio="AAA"))
    # a minimal breach table (no episode ends or worst values) is summarised from its rows
    t = pd.Timestamp("2024-01-01", tz="UTC")
    minimal = pd.DataFrame({"limit": ["daily_loss"] * 2, "portfolio": ["AAA"] * 2,
                            "severity": ["critical"] * 2, "timestamp": [t, t + pd.Timedelta("1D")],
                            "value": [0.06, 0.08], "threshold": [0.05, 0.05]})
    (row,) = RiskManager.summarize(minimal).to_dict("records")
    day2 = t + pd.Timedelta("1D")
    assert (row["critical_episodes"], row["worst"], row["last"]) == (2, 0.08, day2)
