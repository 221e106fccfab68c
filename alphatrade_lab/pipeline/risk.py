"""The risk step: check the backtest against the default limits, send one alert per limit
and portfolio, and record the alerts in the lab store."""

from __future__ import annotations

import pandas as pd

from alphatrade_lab.alerts import AlertManager
from alphatrade_lab.pipeline.steps import Context, StepResult, md_table
from alphatrade_lab.risk import RiskManager

__all__ = ["risk_step"]

def risk_step(ctx: Context, max_alerts: int = 25) -> StepResult:
    """Evaluate ``ctx.results["backtest"]``'s portfolio against :class:`RiskLimits`'
    defaults; send at most ``max_alerts`` alerts (critical ones first; the report counts
    all episodes). Frames ``risk_breaches`` (every episode) and ``risk_alerts`` (the summaries
    sent); values ``results`` (the :class:`AlertResult` of each alert)."""
    backtest = ctx.results["backtest"].values
    rm = RiskManager()
    breaches = rm.evaluate(backtest["portfolio"])
    chosen = rm.summarize(breaches).head(max_alerts)
    with AlertManager.from_env(ctx.env, store=ctx.store, run_id=backtest["run_id"]) as manager:
        alerts = [rm.summary_alert(r) for r in chosen.to_dict("records")]
        results = manager.send_many(alerts) if alerts else []
        sinks = [s.name for s in manager.sinks]
    delivered = {s: sum(s in r.delivered for r in results) for s in sinks}
    failed = {s: sum(s in r.failed for r in results) for s in sinks}
    went = ", ".join(f"{s} {delivered[s]}" + (f" ({failed[s]} failed)" if failed[s] else "")
                     for s in sinks)
    ctx.echo(f"\nrisk limits: {len(breaches):,} breach episodes; {len(results)} alerts sent "
             f"({went}) and recorded in {ctx.store_path}")
    limits = [f"- `{name}`: threshold {lim.threshold:g}"
              + (f", warning {lim.warning:g}" if lim.warning is not None else "")
              for name, lim in rm.limits.items()]
    if len(breaches):
        counts = breaches.pivot_table(index="limit", columns="severity", values="value",
                                      aggfunc="size", fill_value=0)
        counts_text = "```\n" + counts.to_string() + "\n```"
        shown = chosen[["limit", "portfolio", "symbol", "severity", "critical_episodes",
                        "warning_episodes", "first", "last", "worst"]].copy()
        for col in ("first", "last"):
            shown[col] = shown[col].map(lambda t: f"{pd.Timestamp(t):%Y-%m-%d %H:%M}")
        if shown["symbol"].isna().all():
            shown = shown.drop(columns="symbol")
        table = md_table(shown, index=False)
    else:
        counts_text, table = "No limit was breached.", ""
    lines = [
        "## Risk limits", "",
        "Default limits (fractions of equity; consecutive losses in trades), checked on "
        "every bar of the backtest; a breach is an episode above a threshold:", "",
        *limits, "",
        "Breach episodes per limit and severity:", "", counts_text, "",
        f"Alerts sent ({len(results)}; one per limit and portfolio: its episodes, their "
        f"span and the worst value): {went}. Recorded in the store's `alerts` table.", "",
        table, "",
    ]
    return StepResult(lines, frames={"risk_breaches": breaches, "risk_alerts": chosen},
                      values={"results": results})
