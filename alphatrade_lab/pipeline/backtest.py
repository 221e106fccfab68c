"""The backtest step: an hourly moving-average crossover, long only, and its lab-store
record (run, trades, signals, daily performance in one transaction)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alphatrade_lab import backtest
from alphatrade_lab.pipeline.steps import Context, StepResult, md_table
from alphatrade_lab.store import signals_from_wide

__all__ = ["FAST", "FEES", "SLOW", "backtest_step"]

#: The demo's strategy: hourly moving-average crossover, long only, 0.1% fees.
FAST, SLOW, FEES = 24, 96, 0.001

_SHOWN = ["total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar", "win_rate",
          "profit_factor", "exposure", "trade_count"]


def backtest_step(ctx: Context) -> StepResult:
    """Backtest the crossover on ``ctx.close`` and record it in the lab store.

    Frames ``backtest_stats`` and ``trades``, figure ``backtest`` (the best symbol by
    Sharpe ratio); values ``portfolio`` and ``run_id``.
    """
    close = ctx.close
    entries, exits = backtest.STRATEGIES["ma_cross"].signals(close.to_numpy(), [FAST, SLOW])
    pf = backtest.from_signals(close, entries, exits, fees=FEES)
    stats = pf.stats()
    shown = stats[_SHOWN]
    with pd.option_context("display.width", 160, "display.float_format", "{:,.4f}".format):
        ctx.echo(f"\nMA crossover {FAST}/{SLOW} on hourly closes, long only, fees {FEES:.1%}\n"
                 + shown.to_string())
    best = shown["sharpe"].idxmax()

    directions = pd.DataFrame(np.where(entries, 1, np.where(exits, -1, 0)),
                              index=close.index, columns=close.columns)
    signals = signals_from_wide(directions, executed=pf.orders, model_type="ma_cross")
    store = ctx.store
    run_id = store.record_backtest(pf, strategy="ma_cross", signals=signals,
                                   params={"fast": FAST, "slow": SLOW, "fees": FEES,
                                           "bars": "1h"})
    summary = store.run_summary(run_id)
    counts = store.counts()
    n_trades = int(summary["trades"].sum()) if len(summary) else 0
    n_days = len(store.daily_performance(run_id))
    ctx.echo(f"\nrecorded run {run_id} into {ctx.store_path}: {n_trades:,} trades, "
             f"{len(signals):,} signals; the store holds {counts['runs']:,} runs")
    lines = [
        f"## Backtest: MA crossover {FAST}/{SLOW}", "",
        f"Hourly closes, long only, fees {FEES:.1%} of traded value, fills at the signal "
        "bar's close.", "", md_table(shown), "",
        f"![backtest of {best}](backtest.png)", "",
        "## Lab store", "",
        f"Run `{run_id}` recorded into `{ctx.store_path}` (DuckDB, schema version "
        f"{store.schema_version}) in one transaction: {n_trades:,} trades, "
        f"{len(signals):,} signals and {n_days:,} daily performance rows. The store now "
        f"holds {counts['runs']:,} runs and {counts['trades']:,} trades.", "",
        "Per symbol (trades, signals and daily performance of this run, one SQL query):", "",
        md_table(summary, index=False), "",
    ]
    return StepResult(lines, frames={"backtest_stats": stats, "trades": pf.trades},
                      figures={"backtest": pf.plot(best)},
                      values={"portfolio": pf, "run_id": run_id, "run_summary": summary})
