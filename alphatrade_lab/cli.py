"""The ``alphatrade-lab`` command: the lab's jobs from the shell.

``alphatrade-lab demo`` runs the research job on the embedded sample market and writes a
report; ``alphatrade-lab make-sample`` regenerates that sample; ``alphatrade-lab paper``
replays bars through an exported model on the paper broker, and ``alphatrade-lab live``
runs the engine a TOML file describes (Ctrl-C stops either cleanly: the bar in hand is
finished, everything is recorded, and the same ``--run-id`` resumes); ``alphatrade-lab serve``
runs the dashboard service (REST, WebSocket, Prometheus metrics) over a lab store.
``alphatrade-lab --help``
and ``alphatrade-lab <command> --help`` describe each command and its options.

The environment (what a deployment sets; the same names in compose and ``make
deploy-check``):

``ATL_STORE``
    The lab store of ``paper``, ``live`` and ``serve`` (a DuckDB path or a
    ``postgresql://`` URL). Precedence: ``--store`` > ``ATL_STORE`` > the TOML's ``[store]
    path`` (``live``) > the default (``data/lab.duckdb``; ``live``: no store).
``ATL_REDIS_URL``
    When set (or ``--redis URL``, which wins), ``paper`` and ``live`` publish their
    events to this Redis server's stream and ``serve`` reads them from it. Never in a
    file: the URL may carry a password.
``TRADING_MODE``
    ``paper`` (the default) or ``live``: under ``paper``, ``live`` refuses a broker that
    trades real money (see :mod:`alphatrade_lab.live.config`).
``ALPHATRADE_API_TOKEN``
    The service's token (``serve``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

__all__ = ["ENVIRONMENT", "main"]

#: The environment variables the commands read (see the module's notes).
ENVIRONMENT = ("ATL_STORE", "ATL_REDIS_URL", "TRADING_MODE", "ALPHATRADE_API_TOKEN")
_DEFAULT_STORE = "data/lab.duckdb"

_DESCRIPTION = ("alphatrade_lab: quantitative trading research from OHLCV bars to a "
                "validated, exported model. Run a command with --help for its options.")

_DEMO = ("Run the research job on the embedded sample market (five symbols, 1-minute bars "
         "of 2024): summary, backtest of an hourly moving-average crossover with risk "
         "limits and alerts, parameter sweep, walk-forward model, drift report. Writes "
         "report.md with its plots and tables to a new folder under --out and records the "
         "backtest in the lab store.")

_MAKE_SAMPLE = ("Regenerate the embedded sample market (data/sample_bars.parquet) from its "
                "fixed seed with atl.data.synthetic; the result is identical on every run.")


_PAPER = ("Replay bars (a file, or the embedded sample) through an exported model bundle on "
          "the paper broker, with the backtest's fills, recording orders, fills, equity and "
          "signals in the lab store (--store, else ATL_STORE). The same --run-id resumes a "
          "stopped or killed run. With ATL_REDIS_URL (or --redis) set, every event also "
          "goes to a Redis stream for the dashboard service.")

_LIVE = ("Run the live engine described by a TOML file: broker (paper, Alpaca, a ccxt "
         "exchange; keys from the environment), feed, model, risk limits, store and alerts. "
         "Paper endpoints are the default: TRADING_MODE=paper (the default) refuses a broker "
         "that trades real money, TRADING_MODE=live allows it. The store is --store, else "
         "ATL_STORE, else the TOML's [store] path; with ATL_REDIS_URL (or --redis) set, the "
         "events also go to a Redis stream for the dashboard service.")

_SERVE = ("Serve the lab store over HTTP: the REST API (/api, docs at /api/docs), the "
          "dashboard, live updates on a WebSocket and Prometheus metrics (/metrics), under "
          "uvicorn. Binding to anything but the loopback needs ALPHATRADE_API_TOKEN in the "
          "environment; every request must then carry it (Authorization: Bearer <token>). "
          "The store is --store, else ATL_STORE; with ATL_REDIS_URL (or --redis) set, the "
          "live events come from the engine's Redis stream (a consumer group: a restarted "
          "service resumes after the last event it acknowledged).")


_EPILOG = ("environment: ATL_STORE is the lab store (a DuckDB path or a postgresql:// URL) "
           "of paper, live and serve (precedence: --store, then ATL_STORE, then the TOML's "
           "[store] path, then the default); ATL_REDIS_URL (or --redis) makes paper and live "
           "publish their events to a Redis stream and serve read them from it; "
           "TRADING_MODE is paper (the default) or live, and only live lets the live "
           "command use a broker that trades real money; ALPHATRADE_API_TOKEN is the "
           "service's token.")

_STORE_HELP = ("lab store: a DuckDB path or a postgresql:// URL (default: ATL_STORE, else "
               "{default})")
_REDIS_HELP = ("the Redis server the engine's events are {what} (default: ATL_REDIS_URL; "
               "none: {none}); prefer the variable when the URL carries a password")


def _add_redis(parser: argparse.ArgumentParser, what: str, none: str) -> None:
    parser.add_argument("--redis", default=None, metavar="URL",
                        help=_REDIS_HELP.format(what=what, none=none))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alphatrade-lab", description=_DESCRIPTION,
                                     epilog=_EPILOG)
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
    paper = sub.add_parser("paper", description=_PAPER,
                           help="replay bars through an exported model on the paper broker")
    paper.add_argument("--bundle", required=True, help="the exported model (.atlb)")
    paper.add_argument("--bars", default=None,
                       help="bars to replay: CSV, Parquet or DuckDB (default: the sample)")
    paper.add_argument("--store", default=None,
                       help=_STORE_HELP.format(default=_DEFAULT_STORE))
    _add_redis(paper, "published to", "not published")
    paper.add_argument("--run-id", default=None, help="the run's id (the same id resumes it)")
    paper.add_argument("--threshold", type=float, default=0.5)
    paper.add_argument("--direction", default="longonly",
                       choices=["longonly", "shortonly", "both"])
    paper.add_argument("--execution", default="close", choices=["close", "next_open"])
    paper.add_argument("--init-cash", type=float, default=100.0)
    paper.add_argument("--fees", type=float, default=0.0)
    paper.add_argument("--slippage", type=float, default=0.0)
    paper.add_argument("--speed", type=float, default=None,
                       help="times real time (default: as fast as possible)")
    paper.add_argument("--flush-every", type=int, default=10_000,
                       help="timestamps per store batch at most (default: 10000; a batch "
                            "is also written every second)")
    live = sub.add_parser("live", description=_LIVE, help="run the engine a TOML file describes")
    live.add_argument("--config", required=True,
                      help="the TOML file (see alphatrade_lab.live.config)")
    live.add_argument("--store", default=None,
                      help=_STORE_HELP.format(default="the TOML's [store] path, else none"))
    _add_redis(live, "published to", "not published")
    serve = sub.add_parser("serve", description=_SERVE,
                           help="serve the lab store: REST API, dashboard, metrics")
    serve.add_argument("--store", default=None,
                       help=_STORE_HELP.format(default=_DEFAULT_STORE) + "; opened read-only")
    _add_redis(serve, "read from", "no live events")
    serve.add_argument("--bundle", default=None,
                       help="an exported model (.atlb) for POST /api/score and /api/models")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default: 127.0.0.1; another needs the token)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="an origin allowed to call the API from a browser (repeatable; "
                            "default: none)")
    return parser


def _serve(args: argparse.Namespace) -> int:
    """Run the service under uvicorn until Ctrl-C (exit code 2 when refused)."""
    import uvicorn
    import websockets  # the WebSocket protocol uvicorn runs (ws="websockets-sansio")

    from alphatrade_lab.service import create_app
    from alphatrade_lab.service.security import token_for_host

    try:
        token = token_for_host(args.host)
    except ValueError as exc:
        print(f"alphatrade-lab serve: {exc}", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"alphatrade-lab serve: --port must be in 1..65535, got {args.port}",
              file=sys.stderr)
        return 2
    from alphatrade_lab.redact import redact

    store, redis_url = _store(args.store, _DEFAULT_STORE), _redis_url(args.redis)
    try:
        app = create_app(store, bundle=args.bundle, token=token,
                         cors_origins=tuple(args.cors_origin), redis_url=redis_url)
    except (OSError, ValueError, ImportError) as exc:  # no store, a bad bundle, no redis-py
        print(f"alphatrade-lab serve: {redact(str(exc))}", file=sys.stderr)
        return 2
    source = app.state.lab.extra.get("redis")
    print(f"serving {redact(str(store))} on http://{args.host}:{args.port} (API docs at "
          f"/api/docs; token {'required' if token else 'not required: loopback only'}; "
          f"websockets {websockets.__version__}"
          + (f"; events from redis {source.where}" if source is not None else "") + ")",
          flush=True)
    import logging

    from alphatrade_lab.service.security import RedactingFilter

    for name in ("uvicorn.access", "uvicorn.error"):  # paths carry ?token= (browsers)
        logging.getLogger(name).addFilter(RedactingFilter(token))
    # no permessage-deflate: at 100 clients it about doubles the server's CPU
    uvicorn.run(app, host=args.host, port=args.port, ws="websockets-sansio", log_level="info",
                ws_per_message_deflate=False)
    return 0


def _store(flag: str | None, default: str) -> str:
    """The store: ``--store``, else ``ATL_STORE``, else ``default``."""
    return flag or os.environ.get("ATL_STORE") or default


def _redis_url(flag: str | None) -> str | None:
    """The Redis URL: ``--redis``, else ``ATL_REDIS_URL``, else None."""
    return flag or os.environ.get("ATL_REDIS_URL") or None


def _run_engine(engine: Any, redis_url: str | None = None) -> int:
    """Run with Ctrl-C (SIGINT) and SIGTERM stopping it cleanly, publishing to Redis when
    ``redis_url`` is given; print a summary."""
    publisher = None
    if redis_url:
        from alphatrade_lab.live.redis_bus import RedisPublisher

        try:
            publisher = RedisPublisher(redis_url).attach(engine.bus)
        except (ValueError, ImportError) as exc:  # not a Redis URL, no redis-py
            print(f"alphatrade-lab: --redis / ATL_REDIS_URL: {exc}", file=sys.stderr)
            return 2
    try:
        code = _run(engine)
    finally:
        if publisher is not None:
            publisher.close()
            print(publisher.summary())
        _close_spool(engine.store)
    return code


def _close_spool(store: Any) -> None:
    """Write what the store's spool holds (it waits up to its catch-up time) and say what
    is left on disk."""
    from alphatrade_lab.live.spool import SpoolingStore

    if isinstance(store, SpoolingStore):
        store.close()
        if store.pending:
            print(f"alphatrade-lab: the lab store is still down; {store.pending} batch(es) "
                  f"wait in {store.dir} and are written when the same run starts again",
                  file=sys.stderr)


def _run(engine: Any) -> int:
    stopped = []

    def stop(signum: int, frame: Any) -> None:
        stopped.append(signum)
        engine.stop()

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    # from here on a signal stops the run cleanly; before this line it is Python's default
    print(f"run {engine.run_id}: started; Ctrl-C stops it after the current bar", flush=True)
    try:
        result = engine.run()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    lat = result.latency()
    final = result.equity.iloc[-1].sum() if len(result.equity) else float("nan")
    print(f"run {result.run_id}: {result.bars} bars, {len(result.orders)} orders, "
          f"{len(result.fills)} fills, {len(result.trades)} trades, final equity {final:.2f}; "
          f"engine work per bar p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us"
          + ("; stopped by a signal" if stopped else ""))
    return 130 if stopped else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``alphatrade-lab``; returns the exit code."""
    args = _parser().parse_args(argv)

    from alphatrade_lab.errors import DataError, StoreUnavailableError

    try:
        if args.command == "demo":
            from alphatrade_lab.pipeline import run_demo

            run_demo(args.out, args.store)
        elif args.command == "make-sample":
            from alphatrade_lab.data.sample import write_sample

            print(f"wrote {write_sample(args.path)}")
        elif args.command == "paper":
            from alphatrade_lab.data import load_sample
            from alphatrade_lab.live import Engine, ModelStrategy, PaperBroker, ReplayFeed
            from alphatrade_lab.store import LabStore

            feed = ReplayFeed(args.bars if args.bars else load_sample(), speed=args.speed)
            broker = PaperBroker(args.init_cash, fees=args.fees, slippage=args.slippage,
                                 execution=args.execution)
            from alphatrade_lab.live.config import trading_mode

            trading_mode()  # a bad TRADING_MODE is refused here too
            engine = Engine(feed, ModelStrategy(args.bundle, args.threshold), broker,
                            store=LabStore(_store(args.store, _DEFAULT_STORE)),
                            run_id=args.run_id, direction=args.direction,
                            flush_every=args.flush_every)
            return _run_engine(engine, _redis_url(args.redis))
        elif args.command == "live":
            from alphatrade_lab.live.config import build_engine, load_config

            store = args.store or os.environ.get("ATL_STORE")  # None: the TOML's [store]
            engine = build_engine(load_config(args.config), store=store)
            return _run_engine(engine, _redis_url(args.redis))
        elif args.command == "serve":
            return _serve(args)
    except DataError as exc:
        print(f"alphatrade-lab: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailableError as exc:  # the store's server is down and nothing spools
        print(f"alphatrade-lab: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
