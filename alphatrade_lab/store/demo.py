"""The demo's store step: record the backtest into the lab's DuckDB file and report.

>>> import tempfile, pathlib, numpy as np, alphatrade_lab as atl
>>> close = atl.data.to_wide(atl.data.load_sample(["AAA"]), "close").iloc[:600]
>>> pf = atl.backtest.from_signals(close, np.arange(600) % 50 == 0, np.arange(600) % 50 == 25)
>>> with tempfile.TemporaryDirectory() as d:
...     lines = demo_step(pathlib.Path(d) / "lab.duckdb", pf, echo=lambda *_: None)
>>> lines[0]
'## Lab store'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from alphatrade_lab.store.convert import signals_from_wide
from alphatrade_lab.store.store import LabStore

__all__ = ["SUMMARY_SQL", "demo_step"]

#: Per symbol of one run: trades, win rate and pnl from ``trades``, signal counts from
#: ``signals`` and the worst day from ``daily_performance`` (one query, bound run id).
SUMMARY_SQL = """
WITH t AS (
    SELECT symbol, count(*) AS trades, avg(CASE WHEN pnl > 0 THEN 1.0 ELSE 0.0 END) AS win_rate,
           sum(pnl) AS pnl
    FROM trades WHERE run_id = $run GROUP BY symbol
), s AS (
    SELECT symbol, count(*) AS signals,
           sum(CASE WHEN was_executed THEN 1 ELSE 0 END) AS executed
    FROM signals WHERE run_id = $run GROUP BY symbol
), d AS (
    SELECT portfolio AS symbol, min(pnl_pct) AS worst_day, max(pnl_pct) AS best_day
    FROM daily_performance WHERE run_id = $run GROUP BY portfolio
)
SELECT t.symbol, t.trades, t.win_rate, t.pnl, coalesce(s.signals, 0) AS signals,
       coalesce(s.executed, 0) AS executed, d.worst_day, d.best_day
FROM t LEFT JOIN s ON s.symbol = t.symbol LEFT JOIN d ON d.symbol = t.symbol
ORDER BY t.symbol
"""


def demo_step(store_path: str | Path, pf, signals: pd.DataFrame | None = None,
              run_params: Mapping[str, Any] | None = None,
              echo: Callable[[str], Any] = print, *, strategy: str = "ma_cross",
              lock_timeout: float = 30.0) -> list[str]:
    """Record a backtest into the lab store and return the report's lines (Markdown).

    Parameters
    ----------
    store_path
        The DuckDB file (``data/lab.duckdb`` in the demo; created with its folder,
        migrated if old; ``data/*.duckdb`` is git-ignored).
    pf
        The backtest Portfolio: its run, trades and daily performance (one row per
        equity column per day) are written in one transaction.
    signals
        Optional. Either long-form rows for ``LabStore.record_signals`` (with a
        ``symbol`` column) or a wide timestamp × symbol frame of directions -1/0/1 (zeros
        dropped; ``was_executed`` from ``pf.orders``). Written in the same transaction.
    run_params
        JSON-serializable parameters of the run (windows, fees...); credentials redacted.
    echo
        Where the progress line goes.
    strategy
        Stored with each trade and as the signals' ``model_type``.
    lock_timeout
        Seconds to wait for another process holding the file; then StoreLockedError.

    Returns
    -------
    list of str
        A ``## Lab store`` section: where the run went, row counts, and the per-symbol
        summary query's result.
    """
    store = LabStore(store_path, lock_timeout=lock_timeout)
    long = None
    if signals is not None:
        long = (signals if "symbol" in signals.columns else
                signals_from_wide(signals, executed=pf.orders, model_type=strategy))
    run_id = store.record_backtest(pf, strategy=strategy, params=dict(run_params or {}),
                                   signals=long, kind="backtest")
    summary = store.query(SUMMARY_SQL, {"run": run_id})
    counts = store.counts()
    n_trades = int(summary["trades"].sum()) if len(summary) else 0
    n_signals = 0 if long is None else len(long)
    echo(f"\nrecorded run {run_id} into {store_path}: {n_trades:,} trades, "
         f"{n_signals:,} signals; the store holds {counts['runs']:,} runs")
    table = summary.to_string(index=False, float_format="{:,.4f}".format)
    return [
        "## Lab store", "",
        f"Run `{run_id}` recorded into `{store_path}` (DuckDB, schema version "
        f"{store.schema_version}) in one transaction: {n_trades:,} trades, {n_signals:,} "
        f"signals and {len(store.daily_performance(run_id)):,} daily performance rows. "
        f"The store now holds {counts['runs']:,} runs and {counts['trades']:,} trades.", "",
        "Per symbol (trades, signals and daily performance of this run, one SQL query):", "",
        "```\n" + table + "\n```", "",
    ]
