"""The main research job behind ``alphatrade-lab demo``.

Each step takes what the previous ones produced, prints a short account and returns the
lines it adds to the report, so later work can add steps without touching the others.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from alphatrade_lab import backtest, data

__all__ = ["new_run_dir", "run_demo"]

# The demo's strategy: hourly moving-average crossover, long only, 0.1% fees.
FAST, SLOW, FEES = 24, 96, 0.001


def new_run_dir(root: Path, prefix: str = "demo") -> Path:
    """A new folder ``root/<prefix>-<UTC time>`` (with a counter if that exists)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = root / f"{prefix}-{stamp}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = root / f"{prefix}-{stamp}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def _table(frame: pd.DataFrame, fmt: str = "{:,.4f}") -> str:
    return "```\n" + frame.to_string(float_format=fmt.format) + "\n```"


def _market(bars: pd.DataFrame, hourly: pd.DataFrame, run_dir: Path, echo) -> list[str]:
    summary = data.summarize(bars)
    corr = data.to_wide(hourly, "close").pct_change().corr()
    with pd.option_context("display.width", 160, "display.float_format", "{:,.4f}".format):
        echo("\nPer-symbol summary\n" + summary.drop(columns=["start", "end"]).to_string())
        echo("\nCorrelation of hourly returns\n" + corr.to_string())
    summary.to_csv(run_dir / "summary.csv")
    data.plot_bars(bars).savefig(run_dir / "market.png", dpi=110)
    span = f"{summary['start'].min():%Y-%m-%d} to {summary['end'].max():%Y-%m-%d}"
    return [
        f"Sample market: {len(bars):,} one-minute bars of {len(summary)} symbols, {span} (UTC).",
        "", "## Per-symbol summary", "", _table(summary.drop(columns=["start", "end"])), "",
        "## Correlation of hourly returns", "", _table(corr, "{:.3f}"), "",
        "## Market", "", "![market](market.png)", "",
    ]


def _backtest(close: pd.DataFrame, run_dir: Path, store_path: Path, echo) -> list[str]:
    from alphatrade_lab.risk.demo import demo_step as check_risk
    from alphatrade_lab.store.demo import demo_step as record

    entries, exits = backtest.STRATEGIES["ma_cross"].signals(close.to_numpy(), [FAST, SLOW])
    pf = backtest.from_signals(close, entries, exits, fees=FEES)
    stats = pf.stats()
    shown = stats[["total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar",
                   "win_rate", "profit_factor", "exposure", "trade_count"]]
    with pd.option_context("display.width", 160, "display.float_format", "{:,.4f}".format):
        echo(f"\nMA crossover {FAST}/{SLOW} on hourly closes, long only, fees {FEES:.1%}\n"
             + shown.to_string())
    stats.to_csv(run_dir / "backtest_stats.csv")
    pf.trades.to_csv(run_dir / "trades.csv", index=False)
    best = shown["sharpe"].idxmax()
    pf.plot(best).savefig(run_dir / "backtest.png", dpi=110)
    signals = pd.DataFrame(np.where(entries, 1, np.where(exits, -1, 0)), index=close.index,
                           columns=close.columns)
    stored = record(store_path, pf, signals,
                    {"fast": FAST, "slow": SLOW, "fees": FEES, "bars": "1h"}, echo)
    return [
        f"## Backtest: MA crossover {FAST}/{SLOW}", "",
        f"Hourly closes, long only, fees {FEES:.1%} of traded value, fills at the signal "
        "bar's close.", "", _table(shown), "",
        f"![backtest of {best}](backtest.png)", "",
        *stored,
        *check_risk(pf, store_path, echo),
    ]


def _sweep(close: pd.DataFrame, run_dir: Path, echo) -> list[str]:
    import matplotlib.pyplot as plt

    grid = {"fast": range(4, 64, 4), "slow": range(24, 336, 24)}
    t0 = time.perf_counter()
    res = backtest.sweep_ma_cross(close, **grid, fees=FEES, progress=False)
    elapsed = time.perf_counter() - t0
    mean = res.groupby(level=["fast", "slow"]).mean()
    top = backtest.top_k(mean, "sharpe", k=10)
    split = backtest.split_sample("ma_cross", grid, close, split=0.7, top=5, fees=FEES,
                                  progress=False)
    dsr = res.attrs["deflated_sharpe"]
    echo(f"\nMA sweep: {len(res):,} backtests in {elapsed:.2f} s; best {res.attrs['best']}, "
         f"deflated Sharpe ratio {dsr:.3f}; in- vs out-of-sample rank correlation "
         f"{split.attrs['rank_correlation']:.2f}")
    ax = backtest.heatmap(mean, "sharpe")
    ax.set_title("Sharpe ratio by MA windows (mean over symbols)")
    ax.figure.savefig(run_dir / "sweep_heatmap.png", dpi=110)
    plt.close(ax.figure)
    res.to_csv(run_dir / "sweep.csv")
    return [
        "## Parameter sweep: MA crossover windows", "",
        f"{len(res):,} backtests ({len(mean)} window pairs × {close.shape[1]} symbols) in "
        f"{elapsed:.2f} s, fused in numba.", "",
        "![sweep heatmap](sweep_heatmap.png)", "",
        "Top 10 window pairs by Sharpe ratio (mean over symbols):", "", _table(top), "",
        f"Best single backtest: {res.attrs['best']}, deflated Sharpe ratio {dsr:.3f} "
        f"(probability that its Sharpe ratio beats the best of {res.attrs['n_trials']} "
        "worthless trials).", "",
        "In-sample (first 70%) best pairs and their out-of-sample results "
        f"(rank correlation of Sharpe ratios: {split.attrs['rank_correlation']:.2f}):", "",
        _table(split.xs("sharpe", axis=1, level=1)), "",
    ]


def _model(bars: pd.DataFrame, run_dir: Path, echo) -> list[str]:
    from alphatrade_lab.models.demo import demo_step

    return demo_step(bars, run_dir, echo)


def _drift(bars: pd.DataFrame, run_dir: Path, store_path: Path, echo) -> list[str]:
    from alphatrade_lab.alerts import AlertManager
    from alphatrade_lab.monitoring.demo import demo_step
    from alphatrade_lab.risk import drift_alerts
    from alphatrade_lab.store import LabStore

    lines = demo_step(bars, split=0.5, store_path=store_path, run_dir=run_dir, echo=echo)
    report = pd.read_csv(run_dir / "drift_report.csv")
    alerts = drift_alerts(report)
    with AlertManager.from_env(store=LabStore(store_path)) as manager:
        for alert in alerts:
            manager.send(alert)
    echo(f"drift: {len(alerts)} WARNING alerts sent (log sink; Telegram/Discord/webhook when "
         "their variables are set) and recorded in the store")
    return [*lines, f"{len(alerts)} drift alerts (WARNING, one per drifted feature) were sent "
                    "and recorded in the store's `alerts` table.", ""]


def run_demo(out: str | Path = "runs", store: str | Path = "data/lab.duckdb",
             echo=print) -> Path:
    """Run the research job on the embedded sample and write a report.

    Loads and validates the sample market, resamples it, summarizes it, backtests an
    hourly moving-average crossover (checked against risk limits, whose breaches go to
    the alert sinks), sweeps its windows, trains a model with
    walk-forward validation, exports, reloads and backtests it, reports the features'
    drift from the first half of the year, and writes ``report.md`` with
    its plots and tables (CSV) to a new folder under ``out``. The backtest's run,
    trades, signals and daily performance are recorded in the lab store ``store``.

    Parameters
    ----------
    out
        Folder that receives one sub-folder per run (``runs/`` is git-ignored).
    store
        The DuckDB lab store (``data/lab.duckdb`` is git-ignored).
    echo
        Where progress lines go (``print`` by default).

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
    hourly = data.resample(bars, "1h")
    daily = data.resample(bars, "1D")
    echo(f"resampled to {len(hourly):,} hourly and {len(daily):,} daily bars "
         "(a bar is used only once it has closed)")
    close = data.to_wide(hourly, "close")

    report = ["# alphatrade_lab demo report", ""]
    report += _market(bars, hourly, run_dir, echo)
    report += _backtest(close, run_dir, Path(store), echo)
    report += _sweep(close, run_dir, echo)
    report += _model(bars, run_dir, echo)
    report += _drift(bars, run_dir, Path(store), echo)
    (run_dir / "report.md").write_text("\n".join(report))
    echo(f"\nreport written to {run_dir / 'report.md'} "
         f"({time.perf_counter() - started:.1f} s in all)")
    return run_dir
