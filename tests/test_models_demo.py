"""The demo's model step and the train/export research script."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import alphatrade_lab as atl
from alphatrade_lab.models.demo import demo_step

ROOT = Path(__file__).resolve().parents[1]


def test_demo_step_trains_exports_reloads_and_backtests(sample_bars, tmp_path):
    echoed = []
    lines = demo_step(sample_bars, tmp_path, echoed.append)
    text = "\n".join(lines)
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
