"""The ``alphatrade-lab`` command."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``alphatrade-lab``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="alphatrade-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the research job on the embedded sample data")
    demo.add_argument("--out", default="runs", help="folder for the run's report (default: runs)")
    demo.add_argument("--store", default="data/lab.duckdb",
                      help="DuckDB lab store to record the run in (default: data/lab.duckdb)")
    make = sub.add_parser("make-sample", help="regenerate the embedded sample Parquet file")
    make.add_argument("--path", default=None, help="where to write it (default: data/)")
    args = parser.parse_args(argv)

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
