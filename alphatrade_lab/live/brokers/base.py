"""The one small interface every broker implements, and what the engine derives from it.

A broker takes order requests and answers questions about orders, positions and the
account. It raises :class:`~alphatrade_lab.errors.OrderRejected` when it refuses an order
(the engine records and alerts it, then goes on) and
:class:`~alphatrade_lab.errors.BrokerUnavailable` when it cannot be reached after its
retries. Submitting is idempotent by client order id: an adapter that cannot tell whether
a request got through (a timeout, a 5xx) looks the order up by its client order id before
trying again, so no order is ever sent twice.

Fills are read off the orders: :func:`fill_delta` turns two successive states of an order
into the fill between them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd

from alphatrade_lab.live.orders import Account, Fill, Order, OrderRequest, Position

__all__ = ["BarSource", "Broker", "fill_delta"]


@runtime_checkable
class Broker(Protocol):
    """submit, cancel, look up an order, open orders, positions, account."""

    name: str

    def submit(self, request: OrderRequest) -> Order:
        """Send a market order; return it as the broker acknowledged it (maybe filled)."""
        ...

    def cancel(self, client_order_id: str) -> Order | None:
        """Cancel an open order; the order as it ended, or None when it is unknown."""
        ...

    def get_order(self, client_order_id: str) -> Order | None:
        """The order with this client order id, or None when the broker has none."""
        ...

    def open_orders(self) -> list[Order]:
        """Orders not yet final (new or partially filled)."""
        ...

    def positions(self) -> dict[str, Position]:
        """Open positions by symbol (flat symbols left out)."""
        ...

    def account(self) -> Account:
        """Cash, equity and buying power."""
        ...


@runtime_checkable
class BarSource(Protocol):
    """Something a polling feed can ask for bars (a broker's market-data endpoint)."""

    def fetch_bars(self, symbols: list[str], start: pd.Timestamp,
                   timeframe: str) -> pd.DataFrame:
        """Long-form bars of ``symbols`` opened at or after ``start``."""
        ...


def fill_delta(before: Order | None, after: Order, timestamp: pd.Timestamp,
               bar_time: pd.Timestamp | None = None) -> Fill | None:
    """The fill between two states of one order (None when nothing more was filled).

    Brokers report cumulative quantities, average prices and fees; the new fill's price is
    what the average says the extra shares cost.

    >>> from alphatrade_lab.live.orders import OrderStatus
    >>> a = Order("id", "AAA", "buy", 10, OrderStatus.PARTIALLY_FILLED, 4, 100.0, 0.4)
    >>> b = Order("id", "AAA", "buy", 10, OrderStatus.FILLED, 10, 101.2, 1.0)
    >>> f = fill_delta(a, b, pd.Timestamp("2024-01-02", tz="UTC"))
    >>> f.qty, round(f.price, 9), round(f.fees, 9)
    (6.0, 102.0, 0.6)
    """
    q0 = before.filled_qty if before is not None else 0.0
    if after.filled_qty <= q0:
        return None
    cost0 = before.filled_qty * before.filled_avg_price if before is not None and q0 else 0.0
    fees0 = before.fees if before is not None else 0.0
    qty = float(after.filled_qty - q0)
    if not q0:  # the first fill: the broker's price itself, not q * p / q
        price = float(after.filled_avg_price)
    else:
        price = float((after.filled_qty * after.filled_avg_price - cost0) / qty)
    return Fill(after.client_order_id, after.symbol, after.side, qty, price,
                float(after.fees - fees0), timestamp, bar_time)
