"""Paper and live trading: feeds of closed bars, strategies, brokers and the engine."""

from alphatrade_lab.live.brokers import BarSource, Broker, fill_delta
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

__all__ = ["Account", "Bar", "BarSource", "Broker", "Fill", "Intent", "Order", "OrderRequest",
           "OrderStatus", "Position", "client_order_id", "fill_delta"]
