"""Engines built from a TOML file (``alphatrade-lab live --config live.toml``).

The file names the broker, the feed, the strategy, the limits and the store; keys never go
in it (they come from the environment, and a key-like setting in the file is refused)::

    [broker]
    kind = "alpaca"            # "paper", "alpaca" or "ccxt"
    # base_url = "https://paper-api.alpaca.markets"   (Alpaca's paper endpoint: the default)
    # exchange = "binance"; sandbox = true             (ccxt)

    [feed]
    kind = "poll"              # "poll" (the broker's bars endpoint) or "replay"
    symbols = ["AAPL", "MSFT"]
    timeframe = "1Min"
    bar = "1min"
    interval = 5.0
    # bars = "data/bars.parquet"                      (replay)

    [strategy]
    bundle = "model.atlb"
    threshold = 0.55
    direction = "longonly"
    size = 1.0

    [risk]                     # RiskLimits fields; leave the table out for no limits
    position_size = 1.0
    daily_loss = 0.05

    [store]
    path = "data/lab.duckdb"

    [run]
    id = "live-aapl-msft"      # the same id resumes a stopped or killed run
    alerts = true              # AlertManager.from_env() (TELEGRAM_BOT_TOKEN, ...)

The Redis event bus has no section: its URL may carry a password, so it comes from
``ATL_REDIS_URL`` or ``--redis`` only. ``build_engine(config, store=...)`` overrides
``[store] path`` (the command line's ``--store`` or ``ATL_STORE``).

**Trading mode.** ``TRADING_MODE`` in the environment is ``paper`` (the default when it is
unset or empty) or ``live``; anything else is refused. Under ``paper``,
:func:`build_engine` refuses a broker that would trade real money: an Alpaca ``base_url``
other than the paper endpoint (``https://paper-api.alpaca.markets``; a loopback test
server counts as paper too) or a ccxt broker with ``sandbox = false``. Under ``live`` they
are allowed, with one warning logged when the engine is built. ``kind = "paper"`` always
works.

>>> trading_mode({"TRADING_MODE": " Live "}), trading_mode({})
('live', 'paper')
>>> real_money({"kind": "ccxt", "exchange": "binance", "sandbox": False})
'the ccxt broker binance with sandbox = false'
>>> real_money({"kind": "alpaca"}) is None
True
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alphatrade_lab.errors import DataError

__all__ = ["SECTIONS", "TRADING_MODES", "build_engine", "load_config", "real_money",
           "trading_mode"]

#: The values of ``TRADING_MODE``.
TRADING_MODES = ("paper", "live")
_ALPACA_PAPER_HOST = "paper-api.alpaca.markets"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
log = logging.getLogger("alphatrade_lab.live.config")

SECTIONS = {
    "broker": {"kind", "base_url", "data_url", "exchange", "sandbox", "quote", "timeout", "urls",
               "init_cash", "fees", "fixed_fees", "slippage", "size_granularity", "execution",
               "cash_sharing", "feed"},
    "feed": {"kind", "symbols", "timeframe", "bar", "interval", "grace", "warmup", "bars",
             "speed", "start", "end"},
    "strategy": {"bundle", "threshold", "exit_on_flat", "direction", "size", "fees",
                 "slippage", "size_granularity"},
    "risk": {"max_drawdown", "daily_loss", "gross_exposure", "position_size",
             "consecutive_losses"},
    "store": {"path", "spool"},
    "run": {"id", "alerts", "flush_every", "max_bars"},
}
_SECRET_WORDS = ("key", "secret", "token", "password", "webhook")


def load_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and check a live-trading TOML file: known sections and settings only, no
    keys (they come from the environment), a strategy bundle and a feed."""
    p = Path(path)
    try:
        config = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot read the config ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{p}: not valid TOML ({exc})") from None
    for section, values in config.items():
        if section == "bus":
            raise DataError(f"{p}: no [bus] section: the Redis URL may carry a password, so "
                            "it comes from ATL_REDIS_URL or --redis, not from a file")
        if section not in SECTIONS:
            raise DataError(f"{p}: unknown section [{section}]; expected {sorted(SECTIONS)}")
        if not isinstance(values, dict):
            raise DataError(f"{p}: [{section}] must be a table")
        for name in values:
            if any(w in name.lower() for w in _SECRET_WORDS):
                raise DataError(f"{p}: credentials do not go in the config file (setting "
                                f"{name!r} of [{section}]); set them in the environment")
            if name not in SECTIONS[section]:
                raise DataError(f"{p}: [{section}] unknown setting {name!r}; expected one of "
                                f"{sorted(SECTIONS[section])}")
    if "bundle" not in config.get("strategy", {}):
        raise DataError(f"{p}: [strategy] bundle (the exported model file) is required")
    if not config.get("feed", {}).get("symbols") and config.get("feed", {}).get(
            "kind", "poll") == "poll":
        raise DataError(f"{p}: [feed] symbols is required for a polling feed")
    return config


def trading_mode(env: Mapping[str, str] | None = None) -> str:
    """``TRADING_MODE`` of ``env`` (default: the environment): ``"paper"`` when unset or
    empty, ``"paper"`` or ``"live"`` (any case); :class:`DataError` for anything else."""
    raw = (os.environ if env is None else env).get("TRADING_MODE", "")
    mode = raw.strip().lower() or "paper"
    if mode not in TRADING_MODES:
        raise DataError(f"TRADING_MODE must be 'paper' (the default) or 'live', not "
                        f"{raw[:40]!r}")
    return mode


def real_money(broker: Mapping[str, Any]) -> str | None:
    """What trades real money in a ``[broker]`` table (None: nothing does): an Alpaca
    ``base_url`` other than the paper endpoint (or a loopback server), a ccxt broker with
    ``sandbox = false``."""
    kind = broker.get("kind", "paper")
    if kind == "alpaca" and "base_url" in broker:
        url = str(broker["base_url"])
        host = urlsplit(url).hostname or ""
        if host != _ALPACA_PAPER_HOST and host not in _LOOPBACK:
            return f"the Alpaca broker at {url} (not the paper endpoint)"
    if kind == "ccxt" and broker.get("sandbox", True) is not True:
        return f"the ccxt broker {broker.get('exchange', 'binance')} with sandbox = false"
    return None


def _check_mode(broker: Mapping[str, Any], mode: str | None) -> None:
    mode = trading_mode() if mode is None else trading_mode({"TRADING_MODE": mode})
    what = real_money(broker)
    if what is None:
        return
    if mode == "paper":
        raise DataError(f"[broker]: {what} trades real money; TRADING_MODE is 'paper' (the "
                        "default): set TRADING_MODE=live to allow it, or use a paper endpoint")
    log.warning("TRADING_MODE=live: %s trades real money", what)


def _broker(cfg: dict[str, Any]) -> Any:
    kind = cfg.get("kind", "paper")
    opts = {k: v for k, v in cfg.items() if k != "kind"}
    if kind == "paper":
        from alphatrade_lab.live.brokers.paper import PaperBroker

        return PaperBroker(**opts)
    if kind == "alpaca":
        from alphatrade_lab.live.brokers.alpaca import AlpacaBroker

        return AlpacaBroker(**opts)
    if kind == "ccxt":
        from alphatrade_lab.live.brokers.exchange import CCXTBroker

        return CCXTBroker(**opts)
    raise DataError(f"[broker] kind must be 'paper', 'alpaca' or 'ccxt', got {kind!r}")


def _is_server(store: Any) -> bool:
    """A database server's URL (or a store on one), rather than an embedded file."""
    where = str(getattr(store, "path", store) or "")
    return where.startswith(("postgresql://", "postgres://"))


def build_engine(config: dict[str, dict[str, Any]], *, bus: Any = None,
                 store: Any = None, mode: str | None = None) -> Any:
    """The :class:`~alphatrade_lab.live.Engine` a checked config describes.

    ``store`` (a :class:`~alphatrade_lab.store.LabStore`, a path or a URL) replaces
    ``[store] path``; ``mode`` (``"paper"`` or ``"live"``) replaces ``TRADING_MODE``
    (see the module's notes: under paper, a real-money broker is refused before it is
    built).

    A store on a database server (a ``postgresql://`` URL) is wrapped in a
    :class:`~alphatrade_lab.live.spool.SpoolingStore`: while the server cannot be
    reached, batches wait in ``[store] spool`` (or ``ATL_SPOOL_DIR``; default
    ``data/spool``) and the run goes on; with the paper broker, a run may even start while
    the server is down. Setting ``spool`` spools a DuckDB file's writes too."""
    _check_mode(config.get("broker", {}), mode)
    from alphatrade_lab.live.engine import Engine
    from alphatrade_lab.live.feeds import PollingFeed, ReplayFeed
    from alphatrade_lab.live.strategies import ModelStrategy
    from alphatrade_lab.store import LabStore

    strat = config["strategy"]
    strategy = ModelStrategy(strat["bundle"], strat.get("threshold", 0.5),
                             exit_on_flat=strat.get("exit_on_flat", True))
    broker = _broker(config.get("broker", {}))
    feed_cfg = config.get("feed", {})
    kind = feed_cfg.get("kind", "poll")
    if kind == "replay":
        if "bars" not in feed_cfg:
            raise DataError("[feed] bars (a file of bars) is required for a replay")
        feed: Any = ReplayFeed(feed_cfg["bars"], speed=feed_cfg.get("speed"),
                               start=feed_cfg.get("start"), end=feed_cfg.get("end"),
                               symbols=feed_cfg.get("symbols"))
    elif kind == "poll":
        if not hasattr(broker, "fetch_bars"):
            raise DataError(f"[feed] kind 'poll' needs a broker with a bars endpoint; "
                            f"{broker.name} has none")
        feed = PollingFeed(broker, feed_cfg["symbols"],
                           timeframe=feed_cfg.get("timeframe", "1Min"),
                           bar=feed_cfg.get("bar", "1min"), interval=feed_cfg.get("interval", 5.0),
                           grace=feed_cfg.get("grace", 2.0), start=feed_cfg.get("start"),
                           warmup=feed_cfg.get("warmup", strategy.lookback))
    else:
        raise DataError(f"[feed] kind must be 'poll' or 'replay', got {kind!r}")
    run = config.get("run", {})
    alerts = None
    if run.get("alerts"):
        from alphatrade_lab.alerts import AlertManager

        alerts = AlertManager.from_env()
    store_cfg = config.get("store", {})
    if store is None and "path" in store_cfg:
        store = store_cfg["path"]
    spool = store_cfg.get("spool") or os.environ.get("ATL_SPOOL_DIR") or (
        "data/spool" if _is_server(store) else None)
    if spool is not None and store is not None:
        from alphatrade_lab.live.brokers.paper import PaperBroker
        from alphatrade_lab.live.spool import SpoolingStore

        store = SpoolingStore(store, spool, alerts=alerts,
                              new_runs_when_down=isinstance(broker, PaperBroker))
    elif store is not None and not isinstance(store, LabStore):
        store = LabStore(store)
    return Engine(feed, strategy, broker, risk=config.get("risk") or None, store=store,
                  alerts=alerts, bus=bus, run_id=run.get("id"),
                  direction=strat.get("direction", "longonly"), size=strat.get("size"),
                  fees=strat.get("fees", 0.0), slippage=strat.get("slippage", 0.0),
                  size_granularity=strat.get("size_granularity"),
                  symbols=feed_cfg.get("symbols"), flush_every=run.get("flush_every", 10_000),
                  max_bars=run.get("max_bars"))
