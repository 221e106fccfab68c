"""Brokers behind one small interface: paper, Alpaca, a ccxt exchange."""

from alphatrade_lab.live.brokers.base import BarSource, Broker, fill_delta
from alphatrade_lab.live.brokers.paper import PaperBroker

__all__ = ["BarSource", "Broker", "PaperBroker", "fill_delta"]
