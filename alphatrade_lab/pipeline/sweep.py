"""The sweep step: every MA-crossover window pair on every symbol, the best pairs, their
deflated Sharpe ratio and an in- vs out-of-sample check."""

from __future__ import annotations

import time

from alphatrade_lab import backtest
from alphatrade_lab.pipeline.backtest import FEES
from alphatrade_lab.pipeline.steps import Context, StepResult, md_table

__all__ = ["GRID", "sweep_step"]

#: The windows swept.
GRID = {"fast": range(4, 64, 4), "slow": range(24, 336, 24)}


def sweep_step(ctx: Context) -> StepResult:
    """Sweep :data:`GRID` on ``ctx.close``. Frames ``sweep`` (every backtest) and
    ``sweep_split`` (in- and out-of-sample), figure ``sweep_heatmap``."""
    close = ctx.close
    t0 = time.perf_counter()
    res = backtest.sweep_ma_cross(close, **GRID, fees=FEES, progress=False)
    elapsed = time.perf_counter() - t0
    mean = res.groupby(level=["fast", "slow"]).mean()
    top = backtest.top_k(mean, "sharpe", k=10)
    split = backtest.split_sample(close, "ma_cross", GRID, split=0.7, top=5, fees=FEES,
                                  progress=False)
    dsr = res.attrs["deflated_sharpe"]
    rank = split.attrs["rank_correlation"]
    ctx.echo(f"\nMA sweep: {len(res):,} backtests in {elapsed:.2f} s; best "
             f"{res.attrs['best']}, deflated Sharpe ratio {dsr:.3f}; in- vs out-of-sample "
             f"rank correlation {rank:.2f}")
    fig = backtest.heatmap(mean, "sharpe",
                           title="Sharpe ratio by MA windows (mean over symbols)")
    lines = [
        "## Parameter sweep: MA crossover windows", "",
        f"{len(res):,} backtests ({len(mean)} window pairs × {close.shape[1]} symbols) in "
        f"{elapsed:.2f} s, fused in numba.", "",
        "![sweep heatmap](sweep_heatmap.png)", "",
        "Top 10 window pairs by Sharpe ratio (mean over symbols):", "", md_table(top), "",
        f"Best single backtest: {res.attrs['best']}, deflated Sharpe ratio {dsr:.3f} "
        f"(probability that its Sharpe ratio beats the best of {res.attrs['n_trials']} "
        "worthless trials).", "",
        "In-sample (first 70%) best pairs and their out-of-sample results "
        f"(rank correlation of Sharpe ratios: {rank:.2f}):", "",
        md_table(split.xs("sharpe", axis=1, level=1)), "",
    ]
    return StepResult(lines, frames={"sweep": res, "sweep_split": split},
                      figures={"sweep_heatmap": fig}, values={"seconds": elapsed})
