"""Paper and live trading: feeds of closed bars, strategies, brokers and the engine.

The engine runs the same signal function or exported model a researcher backtests, on
closed bars, through a broker behind one small interface, and records and publishes
everything it does. With :class:`PaperBroker` a replay gives the backtest's trades exactly.
"""

from typing import Any

from alphatrade_lab.live.brokers import AlpacaBroker, BarSource, Broker, PaperBroker, fill_delta
from alphatrade_lab.live.bus import TOPICS, Event, EventBus, Subscription
from alphatrade_lab.live.engine import Engine, EngineResult
from alphatrade_lab.live.feeds import BarGuard, FeedEvent, PollingFeed, ReplayFeed
from alphatrade_lab.live.orders import (
    Account,
    Bar,
    Fill,
    Intent,
    Order,
    OrderRequest,
    OrderStatus,
    Position,
    client_order_id,
)
from alphatrade_lab.live.reconcile import Reconciliation, reconcile
from alphatrade_lab.live.sizing import order_quantity
from alphatrade_lab.live.spool import SpoolingStore
from alphatrade_lab.live.strategies import ModelStrategy, Signal, SignalStrategy, Strategy

__all__ = ["TOPICS", "Account", "AlpacaBroker", "Bar", "BarGuard", "BarSource", "Broker",
           "CCXTBroker", "Engine", "EngineResult", "Event", "EventBus", "FeedEvent", "Fill",
           "Intent", "ModelStrategy", "Order", "OrderRequest", "OrderStatus", "PaperBroker",
           "PollingFeed", "Position", "ReplayFeed", "Signal", "SignalStrategy", "SpoolingStore",
           "Strategy", "Subscription", "Reconciliation", "client_order_id", "fill_delta",
           "order_quantity", "reconcile"]


def __getattr__(name: str) -> Any:
    if name == "CCXTBroker":  # needs ccxt (the 'live' extra): imported on first use
        from alphatrade_lab.live.brokers.exchange import CCXTBroker

        return CCXTBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
