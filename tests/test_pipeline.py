"""The research job's steps (alphatrade_lab.pipeline) and the train/export research script."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.pipeline import Context, StepResult, backtest_step, model_step, risk_step
from alphatrade_lab.testing import LocalReceiver

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_model_step_trains_exports_reloads_and_backtests(sample_bars, tmp_path):
    echoed = []
    result = model_step(Context(sample_bars, tmp_path, tmp_path / "lab.duckdb", echoed.append))
    result.save(tmp_path)
    text = "\n".join(result.lines)
    for name in ("model.atlb", "model.atlb.sha256", "model_folds.csv", "model_backtest.csv",
                 "model_equity.png"):
        assert (tmp_path / name).is_file(), name
    assert "![model equity](model_equity.png)" in text
    assert "buy_and_hold" in text and "log_loss" in text
    folds = pd.read_csv(tmp_path / "model_folds.csv", index_col="fold")
    assert len(folds) == 5 and folds["accuracy"].between(0, 1).all()
    assert (folds["purged"] > 0).all()
    assert all(str(round(a, 4))[:5] in text for a in folds["accuracy"])  # the table is shown
    # The reloaded bundle's held-out signals are what the backtest used: recompute them.
    bundle = atl.models.load_bundle(tmp_path / "model.atlb")
    hourly = atl.data.resample(sample_bars, "1h")
    X = bundle.spec.compute(hourly)
    found = re.search(r"from (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", text)
    start = pd.Timestamp(found.group(1), tz="UTC")
    hold = X.loc[X["timestamp"] >= start]
    close = atl.data.to_wide(hourly, "close")
    close = close.loc[close.index >= start]
    sig = atl.models.signals(bundle, hold, threshold=0.4)
    pf = atl.backtest.from_signals(close, sig.wide("entry", close), sig.wide("exit", close),
                                   fees=0.001)
    stats = pd.read_csv(tmp_path / "model_backtest.csv", header=[0, 1], index_col=0)
    np.testing.assert_allclose(stats[("model", "total_return")].iloc[:-1],
                               pf.stats()["total_return"], rtol=1e-9)
    bh = (close.iloc[-1] / close.iloc[0]) / 1.001 - 1  # all in at the first close, 0.1% fee
    np.testing.assert_allclose(stats[("buy_and_hold", "total_return")].iloc[:-1], bh,
                               rtol=1e-9)
    assert any("walk-forward" in e for e in echoed)


@pytest.mark.slow
def test_train_export_script(tmp_path):
    config = tmp_path / "small.toml"
    text = (ROOT / "research" / "configs" / "train_export.toml").read_text()
    text = text.replace('symbols = []', 'symbols = ["AAA", "BBB"]')
    text = text.replace("n_splits = 5", "n_splits = 3").replace("progress = true",
                                                                "progress = false")
    config.write_text(text)
    res = subprocess.run([sys.executable, "research/train_export.py", "--config", str(config),
                          "--out", str(tmp_path / "runs")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    report = (run / "report.md").read_text()
    assert "## Model: purged walk-forward validation" in report
    assert len(pd.read_csv(run / "model_folds.csv")) == 3
    assert (run / "config.toml").read_text() == text
    bundle = atl.models.load_bundle(run / "model.atlb")
    assert bundle.label_spec["horizon"] == 4


@pytest.mark.slow
def test_backtest_step_records_runs_trades_signals_and_daily(sample_bars, tmp_path):
    bars = sample_bars[sample_bars["timestamp"] < sample_bars["timestamp"].min()
                       + pd.Timedelta("50D")]
    path = tmp_path / "data" / "lab.duckdb"
    seen = []
    ctx = Context(bars, tmp_path, path, seen.append)
    result = backtest_step(ctx)
    again = backtest_step(ctx)
    text = "\n".join(result.lines)
    pf, run_id = result.values["portfolio"], result.values["run_id"]
    assert str(path) in text and run_id in text and len(seen) == 4
    assert again.values["run_id"] != run_id
    close = ctx.close
    fast, slow = close.rolling(24).mean(), close.rolling(96).mean()
    entries = (fast > slow) & (fast.shift() <= slow.shift())  # a cross from a valid bar
    exits = (fast < slow) & (fast.shift() >= slow.shift())
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
        n = con.execute("SELECT count(*) FROM trades WHERE run_id = ?", [run_id]).fetchone()[0]
        assert n == len(pf.trades) > 0
        n = con.execute("SELECT count(*) FROM signals WHERE run_id = ?", [run_id]).fetchone()[0]
        assert n == int(entries.to_numpy().sum() + exits.to_numpy().sum())
        days = con.execute("SELECT count(*) FROM daily_performance WHERE run_id = ?",
                           [run_id]).fetchone()[0]
        assert days == close.shape[1] * len(set(close.index.date))
    # the summary table's pnl per symbol is the equity each symbol gained
    table = next(block for block in result.lines if block.startswith("```") and "pnl" in block)
    for sym, value in (pf.equity.iloc[-1] - pf.init_cash).items():
        row = next(line for line in table.splitlines() if line.strip().startswith(sym))
        assert f"{value:,.4f}" in row
    assert set(result.frames) == {"backtest_stats", "trades"}
    assert set(result.figures) == {"backtest"}


@pytest.mark.slow
def test_risk_step_alerts_reach_telegram_discord_and_the_store(sample_bars, tmp_path):
    close = atl.data.to_wide(atl.data.resample(sample_bars, "1h"), "close")
    fast, slow = close.rolling(24).mean(), close.rolling(96).mean()
    pf = atl.backtest.from_signals(close, fast > slow, fast < slow, fees=0.001)
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    store_path = tmp_path / "lab.duckdb"
    run_id = atl.store.LabStore(store_path).record_run(kind="backtest")
    with LocalReceiver() as rx:
        env = {"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_CHAT_ID": "1",
               "TELEGRAM_API_BASE": rx.url, "DISCORD_WEBHOOK": rx.url + "/api/webhooks/1/x"}
        ctx = Context(sample_bars, tmp_path, store_path, lambda *_: None, env)
        ctx.results["backtest"] = StepResult([], values={"portfolio": pf, "run_id": run_id})
        result = risk_step(ctx, max_alerts=6)
        tg = rx.requests(f"/bot{token}/sendMessage")
        dc = rx.requests("/api/webhooks/1/x")
    rows = atl.store.LabStore(store_path).alerts()
    assert result.lines[0] == "## Risk limits"
    assert len(rows) == 6 and len(dc) == 6 and len(tg) == 6
    assert (rows["run_id"] == run_id).all()
    assert all(sorted(json.loads(d)) == ["discord", "log", "telegram"]
               for d in rows["delivered_sinks"])
    assert set(rows["level"]) <= {"critical", "warning"}
    assert rows["title"].str.startswith("Risk Alert: ").all()
    text = "\n".join(result.lines)
    for title in rows["title"]:
        assert title.split(": ")[1] in text
    assert token not in rows.to_json(date_format="iso")
    assert len(result.frames["risk_alerts"]) == 6
    assert len(result.frames["risk_breaches"]) > 6
