"""Brokers behind one small interface: paper, Alpaca, a ccxt exchange."""

from alphatrade_lab.live.brokers.base import BarSource, Broker, fill_delta

__all__ = ["BarSource", "Broker", "fill_delta"]
