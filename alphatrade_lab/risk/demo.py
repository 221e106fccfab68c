"""The demo's risk step: check the backtest against the default limits and alert.

>>> import tempfile, pathlib, numpy as np, alphatrade_lab as atl
>>> close = atl.data.to_wide(atl.data.load_sample(["AAA"]), "close").iloc[:3000]
>>> pf = atl.backtest.from_signals(close, np.arange(3000) % 60 == 0, np.arange(3000) % 60 == 30)
>>> with tempfile.TemporaryDirectory() as d:
...     lines = demo_step(pf, pathlib.Path(d) / "lab.duckdb", echo=lambda *_: None, env={},
...                       limits=atl.risk.RiskLimits(max_drawdown=0.01))
>>> lines[0], any("max_drawdown" in line for line in lines)
('## Risk limits', True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from alphatrade_lab.alerts import AlertManager
from alphatrade_lab.risk.limits import RiskLimits
from alphatrade_lab.risk.manager import RiskManager

__all__ = ["demo_step"]


def demo_step(pf: Any, store_path: str | Path, echo: Callable[[str], Any] = print, *,
              limits: RiskLimits | Mapping[str, Any] | None = None,
              env: Mapping[str, str] | None = None, max_alerts: int = 25,
              run_id: str | None = None, lock_timeout: float = 30.0) -> list[str]:
    """Evaluate a backtest against risk limits, send the alerts, return report lines.

    Parameters
    ----------
    pf
        The backtest :class:`~alphatrade_lab.backtest.Portfolio`.
    store_path
        The lab store (DuckDB file); every alert sent is recorded in its ``alerts``
        table, with the sinks that delivered it.
    echo
        Where the progress line goes.
    limits
        :class:`RiskLimits` (default: the defaults).
    env
        Environment for :meth:`AlertManager.from_env` (default ``os.environ``): the log
        sink always, Telegram / Discord / webhook when their variables are set.
    max_alerts
        Alerts sent at most: one per limit and portfolio, summarising its episodes
        (:meth:`RiskManager.summarize`), critical ones first; the report counts all
        episodes.
    run_id
        Ties the stored alerts to a run of the store (must exist there).
    lock_timeout
        Seconds to wait for another process holding the store.

    Returns
    -------
    list of str
        A ``## Risk limits`` section (Markdown): the limits, breach counts per limit
        and severity, the table of the alerts' summaries and where the alerts went.
    """
    from alphatrade_lab.store import LabStore

    rm = RiskManager(limits)
    breaches = rm.evaluate(pf)
    chosen = rm.summarize(breaches).head(max_alerts)
    store = LabStore(store_path, lock_timeout=lock_timeout)
    with AlertManager.from_env(env, store=store, run_id=run_id) as manager:
        alerts = [rm.summary_alert(r) for r in chosen.to_dict("records")]
        results = manager.send_many(alerts) if alerts else []
        sinks = [s.name for s in manager.sinks]
    delivered = {s: sum(s in r.delivered for r in results) for s in sinks}
    failed = {s: sum(s in r.failed for r in results) for s in sinks}
    lim_lines = [f"- `{name}`: threshold {lim.threshold:g}"
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
        table = "```\n" + shown.to_string(index=False, float_format="{:,.4f}".format) + "\n```"
    else:
        counts_text, table = "No limit was breached.", ""
    went = ", ".join(f"{s} {delivered[s]}" + (f" ({failed[s]} failed)" if failed[s] else "")
                     for s in sinks)
    echo(f"\nrisk limits: {len(breaches):,} breach episodes; {len(results)} alerts sent "
         f"({went}) and recorded in {store_path}")
    return [
        "## Risk limits", "",
        "Default limits (fractions of equity; consecutive losses in trades), checked on "
        "every bar of the backtest; a breach is an episode above a threshold:", "",
        *lim_lines, "",
        "Breach episodes per limit and severity:", "", counts_text, "",
        f"Alerts sent ({len(results)}; one per limit and portfolio: its episodes, their "
        f"span and the worst value): {went}. Recorded in the store's `alerts` table.", "",
        table, "",
    ]
