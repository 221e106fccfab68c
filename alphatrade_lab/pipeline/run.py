"""The main research job behind ``alphatrade-lab demo``: the steps in order, one report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alphatrade_lab import data
from alphatrade_lab.pipeline.backtest import backtest_step
from alphatrade_lab.pipeline.drift import drift_step
from alphatrade_lab.pipeline.market import market_step
from alphatrade_lab.pipeline.model import model_step
from alphatrade_lab.pipeline.risk import risk_step
from alphatrade_lab.pipeline.steps import Context, StepResult, new_run_dir
from alphatrade_lab.pipeline.sweep import sweep_step

__all__ = ["STEPS", "run_demo"]

#: The demo's steps, by name, in the order they run (a step may read earlier results).
STEPS: dict[str, Callable[[Context], StepResult]] = {
    "market": market_step,
    "backtest": backtest_step,
    "risk": risk_step,
    "sweep": sweep_step,
    "model": model_step,
    "drift": drift_step,
}


def run_demo(out: str | Path = "runs", store: str | Path = "data/lab.duckdb",
             echo: Callable[[str], Any] = print, *,
             env: dict[str, str] | None = None) -> Path:
    """Run the research job on the embedded sample and write a report.

    Loads and validates the sample market, resamples it, summarizes it, backtests an
    hourly moving-average crossover (recorded in the lab store, checked against risk
    limits whose breaches go to the alert sinks), sweeps its windows, trains a model with
    walk-forward validation, exports, reloads and backtests it, and reports the
    features' drift from the first half of the year (recorded, and alerted). Writes
    ``report.md`` with each step's plots and tables (CSV) to a new folder under ``out``.

    Parameters
    ----------
    out
        Folder that receives one sub-folder per run (``runs/`` is git-ignored).
    store
        The DuckDB lab store (``data/lab.duckdb`` is git-ignored).
    echo
        Where progress lines go (``print`` by default).
    env
        Environment of the alert sinks (default ``os.environ``: the log sink always,
        Telegram / Discord / webhook when their variables are set).

    Returns
    -------
    pathlib.Path
        The run folder.
    """
    import matplotlib

    matplotlib.use("Agg")
    started = time.perf_counter()
    run_dir = new_run_dir(Path(out))

    bars = data.load_sample()
    echo(f"loaded and validated {len(bars):,} bars of {bars['symbol'].nunique()} symbols "
         f"from {data.sample_path().name} in {time.perf_counter() - started:.2f} s")
    ctx = Context(bars, run_dir, Path(store), echo, env)
    daily = data.resample(bars, "1D")
    echo(f"resampled to {len(ctx.hourly):,} hourly and {len(daily):,} daily bars "
         "(a bar is used only once it has closed)")

    report = ["# alphatrade_lab demo report", ""]
    for name, step in STEPS.items():
        result = step(ctx)
        result.save(run_dir)
        ctx.results[name] = result
        report += result.lines
    (run_dir / "report.md").write_text("\n".join(report))
    echo(f"\nreport written to {run_dir / 'report.md'} "
         f"({time.perf_counter() - started:.1f} s in all)")
    return run_dir
