"""The model step: :func:`alphatrade_lab.models.run_experiment` (train with purged
walk-forward validation, export, reload, backtest on a held-out stretch) and its report."""

from __future__ import annotations

from typing import Any

from alphatrade_lab.models import Experiment, run_experiment
from alphatrade_lab.pipeline.steps import Context, StepResult, md_table

__all__ = ["experiment_report", "model_step"]


def model_step(ctx: Context, config: dict[str, Any] | None = None) -> StepResult:
    """Run the experiment of ``config`` (default: the library's defaults) on ``ctx.bars``;
    the bundle goes to ``ctx.run_dir / "model.atlb"``."""
    ex = run_experiment(ctx.bars, ctx.run_dir / "model.atlb", config)
    return experiment_report(ex, ctx.echo)


def experiment_report(ex: Experiment, echo=print) -> StepResult:
    """The report of an experiment: frames ``model_folds`` and ``model_backtest``, figure
    ``model_equity`` (growth of 1 on the held-out stretch); value ``experiment``."""
    import matplotlib.pyplot as plt

    cfg, folds, overall, stats = ex.config, ex.folds, ex.overall, ex.stats
    val, spec = cfg["validation"], ex.bundle.spec
    echo(f"\nModel: {ex.estimator}, {len(folds)} purged walk-forward folds on "
         f"{ex.n_fit_rows:,} rows in {ex.fit_seconds:.1f} s; out-of-sample accuracy "
         f"{overall['accuracy']:.3f}, log-loss {overall['log_loss']:.3f}")
    mean = stats.loc["mean"]
    echo(f"held-out backtest from {ex.cutoff:%Y-%m-%d %H:%M} UTC: mean total return "
         f"{mean[('model', 'total_return')]:.2%} (buy and hold "
         f"{mean[('buy_and_hold', 'total_return')]:.2%})")

    fig, ax = plt.subplots(figsize=(9, 4))
    (ex.model_portfolio.equity.mean(axis=1) / 100.0).plot(
        ax=ax, label="model signals (mean over symbols)")
    (ex.buy_and_hold.equity.mean(axis=1) / 100.0).plot(
        ax=ax, label="buy and hold (mean over symbols)")
    ax.set_title("Held-out period: growth of 1")
    ax.legend()
    fig.tight_layout()

    shown = folds[["test_start", "test_end", "n_train", "n_test", "purged", "embargoed",
                   "accuracy", "log_loss"]
                  + [c for c in folds.columns if c.startswith(("precision_", "recall_"))]]
    shown = shown.assign(test_start=shown["test_start"].str[:10],
                         test_end=shown["test_end"].str[:10])
    ls, path = ex.label_spec, ex.bundle_path
    lines = [
        "## Model: purged walk-forward validation", "",
        f"{ex.estimator} on {len(spec.feature_names)} technical features of "
        f"{cfg['data']['timeframe']} bars; labels: {ls.kind}, horizon {ls.horizon} bars, "
        f"threshold {ls.threshold} × volatility ({ls.vol_window} bars) × √horizon. "
        f"{len(folds)} walk-forward folds; training rows whose label window overlaps a test "
        f"fold are purged, embargo {val.get('embargo')}. Rows from "
        f"{ex.cutoff:%Y-%m-%d %H:%M} UTC on are held out.", "",
        md_table(shown), "",
        f"Pooled out-of-sample: accuracy {overall['accuracy']:.3f}, log-loss "
        f"{overall['log_loss']:.3f} (n = {overall['n']:,}).", "",
        f"Exported to `{path.name}` (skops, SHA-256 in `{path.name}.sha256`), reloaded and "
        "checked to predict identically.", "",
        "## Model signals on the held-out period vs buy and hold", "",
        f"Long when P(up) ≥ {cfg['signals']['threshold']}, flat otherwise; fees "
        f"{cfg['signals']['fees']:.1%}; from {ex.cutoff:%Y-%m-%d %H:%M} UTC.", "",
        md_table(stats), "",
        "![model equity](model_equity.png)", "",
    ]
    return StepResult(lines, frames={"model_folds": folds, "model_backtest": stats},
                      figures={"model_equity": fig}, values={"experiment": ex})
