"""The ``alphatrade-lab`` command: the lab's jobs from the shell.

``alphatrade-lab demo`` runs the research job on the embedded sample market and writes a
report; ``alphatrade-lab make-sample`` regenerates that sample. ``alphatrade-lab --help``
and ``alphatrade-lab <command> --help`` describe each command and its options.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]

_DESCRIPTION = ("alphatrade_lab: quantitative trading research from OHLCV bars to a "
                "validated, exported model. Run a command with --help for its options.")

_DEMO = ("Run the research job on the embedded sample market (five symbols, 1-minute bars "
         "of 2024): summary, backtest of an hourly moving-average crossover with risk "
         "limits and alerts, parameter sweep, walk-forward model, drift report. Writes "
         "report.md with its plots and tables to a new folder under --out and records the "
         "backtest in the lab store.")

_MAKE_SAMPLE = ("Regenerate the embedded sample market (data/sample_bars.parquet) from its "
                "fixed seed with atl.data.synthetic; the result is identical on every run.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alphatrade-lab", description=_DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")
    demo = sub.add_parser("demo", description=_DEMO,
                          help="run the research job on the sample market and write a report")
    demo.add_argument("--out", default="runs", help="folder for the run's report (default: runs)")
    demo.add_argument("--store", default="data/lab.duckdb",
                      help="DuckDB lab store to record the run in (default: data/lab.duckdb)")
    make = sub.add_parser("make-sample", description=_MAKE_SAMPLE,
                          help="regenerate the embedded sample market file")
    make.add_argument("--path", default=None,
                      help="where to write it (default: data/sample_bars.parquet)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``alphatrade-lab``; returns the exit code."""
    args = _parser().parse_args(argv)

    from alphatrade_lab.errors import DataError

    try:
        if args.command == "demo":
            from alphatrade_lab.pipeline import run_demo

            run_demo(args.out, args.store)
        elif args.command == "make-sample":
            from alphatrade_lab.data.sample import write_sample

            print(f"wrote {write_sample(args.path)}")
    except DataError as exc:
        print(f"alphatrade-lab: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
