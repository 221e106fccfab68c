#!/usr/bin/env python3
"""Train, validate, export and backtest a model from a TOML config.

Usage, from the repository root with the project's environment active
(``source .venv/bin/activate``)::

    research/train_export.py --config research/configs/train_export.toml

or without activating it: ``.venv/bin/python research/train_export.py --config ...``.
``research/train_export.py --help`` lists the options.

Writes ``report.md``, the bundle ``model.atlb`` (with its ``.sha256``), the per-fold
metrics, the held-out backtest and a plot to a new folder under ``out`` (``runs/`` by
default, git-ignored). The steps are those of the demo report's model section
(:func:`alphatrade_lab.models.run_experiment`, reported by
:func:`alphatrade_lab.pipeline.experiment_report`).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import matplotlib

import alphatrade_lab as atl
from alphatrade_lab.pipeline import experiment_report, new_run_dir

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> Path:
    """Run the experiment of a config file; returns the run folder."""
    parser = argparse.ArgumentParser(
        prog="research/train_export.py",
        description="Train a classifier on the embedded sample market with purged "
                    "walk-forward validation, export it as a bundle (model.atlb), reload it "
                    "and backtest its signals on a held-out final stretch against buy and "
                    "hold. Writes report.md and its tables and plot to a new folder.")
    parser.add_argument("--config", type=Path,
                        default=ROOT / "research" / "configs" / "train_export.toml",
                        help="TOML settings: data, features, labels, model, validation, "
                             "signals (default: research/configs/train_export.toml)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder that receives the run folder (default: the config's "
                             "out, else runs/)")
    args = parser.parse_args(argv)
    matplotlib.use("Agg")
    config = tomllib.loads(args.config.read_text())
    out = Path(args.out or config.get("out", "runs"))
    config.pop("out", None)
    run_dir = new_run_dir(out, "train-export")
    (run_dir / "config.toml").write_text(args.config.read_text())
    bars = atl.data.load_sample()
    experiment = atl.models.run_experiment(bars, run_dir / "model.atlb", config)
    result = experiment_report(experiment)
    result.save(run_dir)
    report = ["# Train and export", "", f"Config: `{args.config.name}` (copied to "
              "`config.toml`).", "", *result.lines,
              f"Finished in {experiment.seconds:.1f} s.", ""]
    (run_dir / "report.md").write_text("\n".join(report))
    print(f"report written to {run_dir / 'report.md'}")
    return run_dir


if __name__ == "__main__":
    main()
