"""The main research job behind ``alphatrade-lab demo``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from alphatrade_lab import data

__all__ = ["run_demo"]


def _new_run_dir(root: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = root / f"demo-{stamp}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = root / f"demo-{stamp}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def run_demo(out: str | Path = "runs", echo=print) -> Path:
    """Run the research job on the embedded sample and write a report.

    Loads and validates the sample market, resamples it to hourly and daily bars,
    prints a per-symbol summary and writes ``report.md``, ``summary.csv`` and
    ``market.png`` to a new folder under ``out``.

    Parameters
    ----------
    out
        Folder that receives one sub-folder per run (``runs/`` is git-ignored).
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
    run_dir = _new_run_dir(Path(out))

    bars = data.load_sample()
    echo(f"loaded and validated {len(bars):,} bars of {bars['symbol'].nunique()} symbols "
         f"from {data.sample_path().name} in {time.perf_counter() - started:.2f} s")
    hourly = data.resample(bars, "1h")
    daily = data.resample(bars, "1D")
    echo(f"resampled to {len(hourly):,} hourly and {len(daily):,} daily bars "
         "(a bar is used only once it has closed)")

    summary = data.summarize(bars)
    corr = data.to_wide(hourly, "close").pct_change().corr()
    with pd.option_context("display.width", 160, "display.float_format", "{:,.4f}".format):
        echo("\nPer-symbol summary\n" + summary.drop(columns=["start", "end"]).to_string())
        echo("\nCorrelation of hourly returns\n" + corr.to_string())
    summary.to_csv(run_dir / "summary.csv")

    fig = data.plot_bars(bars)
    fig.savefig(run_dir / "market.png", dpi=110)

    span = f"{summary['start'].min():%Y-%m-%d} to {summary['end'].max():%Y-%m-%d}"
    report = [
        "# alphatrade_lab demo report",
        "",
        f"Sample market: {len(bars):,} one-minute bars of {len(summary)} symbols, {span} (UTC).",
        "",
        "## Per-symbol summary",
        "",
        "```\n" + summary.drop(columns=["start", "end"]).to_string(float_format="{:,.4f}".format)
        + "\n```",
        "",
        "## Correlation of hourly returns",
        "",
        "```\n" + corr.round(3).to_string() + "\n```",
        "",
        "## Market",
        "",
        "![market](market.png)",
        "",
    ]
    (run_dir / "report.md").write_text("\n".join(report))
    echo(f"\nreport written to {run_dir / 'report.md'} "
         f"({time.perf_counter() - started:.1f} s in all)")
    return run_dir

