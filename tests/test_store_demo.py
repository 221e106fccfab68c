"""The demo's store step writes what it says and reports a query over it."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

import alphatrade_lab as atl
from alphatrade_lab.store import demo_step


def test_demo_step_records_runs_trades_signals_and_daily(tmp_path):
    close = atl.data.to_wide(atl.data.resample(atl.data.load_sample(), "1h"), "close")
    close = close.iloc[:1200]
    fast, slow = close.rolling(12).mean(), close.rolling(48).mean()
    entries, exits = fast > slow, fast < slow
    pf = atl.backtest.from_signals(close, entries, exits, fees=0.001)
    directions = pd.DataFrame(np.where(entries, 1, np.where(exits, -1, 0)),
                              index=close.index, columns=close.columns)
    path = tmp_path / "data" / "lab.duckdb"
    seen = []
    lines = demo_step(path, pf, directions, {"fast": 12, "slow": 48}, echo=seen.append)
    demo_step(path, pf, None, {"fast": 12, "slow": 48}, echo=seen.append)
    text = "\n".join(lines)
    assert str(path) in text and len(seen) == 2
    with duckdb.connect(str(path), read_only=True) as con:
        runs = con.execute("SELECT run_id FROM runs ORDER BY created_at").fetchall()
        assert len(runs) == 2
        first = runs[0][0]
        assert first in text
        n = con.execute("SELECT count(*) FROM trades WHERE run_id = ?", [first]).fetchone()[0]
        assert n == len(pf.trades)
        n = con.execute("SELECT count(*) FROM signals WHERE run_id = ?", [first]).fetchone()[0]
        assert n == int((directions != 0).to_numpy().sum())
        days = con.execute("SELECT count(*) FROM daily_performance WHERE run_id = ?",
                           [first]).fetchone()[0]
        assert days == close.shape[1] * len(set(close.index.date))
    # the summary table's pnl per symbol is the equity each symbol gained
    gained = pf.equity.iloc[-1] - pf.init_cash
    for sym, value in gained.items():
        table = next(block for block in lines if block.startswith("```"))
        row = next(line for line in table.splitlines() if line.strip().startswith(sym))
        assert f"{value:,.4f}" in row
