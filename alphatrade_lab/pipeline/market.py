"""The market step: per-symbol summary, correlation of hourly returns, a price plot."""

from __future__ import annotations

import pandas as pd

from alphatrade_lab import data
from alphatrade_lab.pipeline.steps import Context, StepResult, md_table

__all__ = ["market_step"]


def market_step(ctx: Context) -> StepResult:
    """Summarize the bars: ``summary`` (per symbol), ``correlation`` (of hourly returns)
    and the ``market`` plot."""
    summary = data.summarize(ctx.bars)
    corr = ctx.close.pct_change().corr()
    shown = summary.drop(columns=["start", "end"])
    with pd.option_context("display.width", 160, "display.float_format", "{:,.4f}".format):
        ctx.echo("\nPer-symbol summary\n" + shown.to_string())
        ctx.echo("\nCorrelation of hourly returns\n" + corr.to_string())
    span = f"{summary['start'].min():%Y-%m-%d} to {summary['end'].max():%Y-%m-%d}"
    lines = [
        f"Sample market: {len(ctx.bars):,} one-minute bars of {len(summary)} symbols, "
        f"{span} (UTC).", "",
        "## Per-symbol summary", "", md_table(shown), "",
        "## Correlation of hourly returns", "", md_table(corr, "{:.3f}"), "",
        "## Market", "", "![market](market.png)", "",
    ]
    return StepResult(lines, frames={"summary": summary},
                      figures={"market": data.plot_bars(ctx.bars)})
