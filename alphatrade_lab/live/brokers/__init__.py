"""Brokers behind one small interface: paper, Alpaca, a ccxt exchange.

``CCXTBroker`` needs the ``live`` extra (ccxt) and is imported on first use.
"""

from typing import Any

from alphatrade_lab.live.brokers.alpaca import AlpacaBroker
from alphatrade_lab.live.brokers.base import BarSource, Broker, fill_delta
from alphatrade_lab.live.brokers.paper import PaperBroker

__all__ = ["AlpacaBroker", "BarSource", "Broker", "CCXTBroker", "PaperBroker", "fill_delta"]


def __getattr__(name: str) -> Any:
    if name == "CCXTBroker":
        from alphatrade_lab.live.brokers.exchange import CCXTBroker

        return CCXTBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
