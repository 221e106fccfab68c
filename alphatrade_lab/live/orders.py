"""The records the live engine and its brokers exchange: bars, order requests, orders,
fills, positions and the account.

An order request carries the *intent* the backtest decided from the signals (open a long,
close it, reverse to a short, ...) as well as a concrete quantity. The paper broker sizes
the order from the intent at its fill price, exactly as :func:`atl.backtest.from_signals`
does; a real broker's adapter sends the quantity the engine computed from the account at
the bar's close (see :func:`alphatrade_lab.live.sizing.order_quantity`).

Every order has a deterministic client order id (:func:`client_order_id`): the same run,
bar, symbol and sequence number always give the same id, so a restarted engine finds the
orders it sent before it was killed instead of sending them again.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pandas as pd

from alphatrade_lab.backtest import kernels as backtest_nb

__all__ = ["Account", "Bar", "Fill", "Intent", "Order", "OrderRequest", "OrderStatus",
           "Position", "client_order_id"]


class Bar(NamedTuple):
    """One closed bar: ``timestamp`` is its open time (UTC), its values are known at its close."""

    timestamp: pd.Timestamp
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float


class Intent(enum.IntEnum):
    """What a signal asks of the position (the backtest kernel's action codes)."""

    NONE = backtest_nb.A_NONE
    OPEN_LONG = backtest_nb.A_OPEN_LONG
    CLOSE_LONG = backtest_nb.A_CLOSE_LONG
    OPEN_SHORT = backtest_nb.A_OPEN_SHORT
    CLOSE_SHORT = backtest_nb.A_CLOSE_SHORT
    TO_SHORT = backtest_nb.A_TO_SHORT
    TO_LONG = backtest_nb.A_TO_LONG

    @property
    def side(self) -> str:
        """``"buy"`` or ``"sell"``."""
        return "buy" if self in (Intent.OPEN_LONG, Intent.CLOSE_SHORT, Intent.TO_LONG) else "sell"


class OrderStatus(enum.StrEnum):
    """An order's life: new (accepted, not filled), partially filled, then filled,
    canceled or rejected (the last three are final)."""

    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED)


def client_order_id(run_id: str, bar_time: Any, symbol: str, seq: int) -> str:
    """The deterministic id of the ``seq``-th order of ``symbol`` on the bar opened at
    ``bar_time`` in run ``run_id``: at most 48 characters (Alpaca allows 48, Binance 36
    for its ``newClientOrderId``), so it is hashed: ``atl-`` and 32 hex digits.

    >>> client_order_id("r1", "2024-01-02 09:30", "AAA", 0) == client_order_id(
    ...     "r1", pd.Timestamp("2024-01-02 09:30", tz="UTC"), "AAA", 0)
    True
    >>> len(client_order_id("r1", "2024-01-02", "AAA", 0))
    36
    """
    if type(bar_time) is pd.Timestamp and bar_time.tzinfo is not None:
        ns = bar_time.value  # nanoseconds since the epoch whatever the zone: UTC's number
    else:
        t = pd.Timestamp(bar_time)
        ns = (t.tz_localize("UTC") if t.tzinfo is None else t).value
    key = f"{run_id}|{ns}|{symbol}|{int(seq)}"
    return "atl-" + hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class OrderRequest:
    """An order the engine wants sent.

    ``qty`` is the quantity for a real broker (computed at ``reference_price``, the bar's
    close); the paper broker sizes from ``intent`` and ``fraction`` at its fill price, as the
    backtest does. Market orders only, as the backtest's fills are.
    """

    client_order_id: str
    symbol: str
    intent: Intent
    qty: float
    bar_time: pd.Timestamp
    reference_price: float
    fraction: float = 1.0

    @property
    def side(self) -> str:
        return self.intent.side

    def to_dict(self) -> dict[str, Any]:
        return {"client_order_id": self.client_order_id, "symbol": self.symbol,
                "intent": self.intent.name.lower(), "side": self.side, "qty": self.qty,
                "bar_time": self.bar_time, "reference_price": self.reference_price,
                "fraction": self.fraction}


@dataclass
class Order:
    """An order as the broker knows it: ``filled_qty`` shares so far at the average
    ``filled_avg_price``, with ``fees`` paid so far (cumulative, as brokers report them)."""

    client_order_id: str
    symbol: str
    side: str
    qty: float
    status: OrderStatus = OrderStatus.NEW
    filled_qty: float = 0.0
    filled_avg_price: float = float("nan")
    fees: float = 0.0
    broker_order_id: str = ""
    reason: str = ""
    submitted_at: pd.Timestamp | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"client_order_id": self.client_order_id, "symbol": self.symbol,
                "side": self.side, "qty": self.qty, "status": self.status.value,
                "filled_qty": self.filled_qty, "filled_avg_price": self.filled_avg_price,
                "fees": self.fees, "broker_order_id": self.broker_order_id, "reason": self.reason,
                "submitted_at": self.submitted_at}


@dataclass(frozen=True)
class Fill:
    """A (partial) execution of an order: ``qty`` > 0 shares at ``price`` (after slippage),
    ``fees`` in cash."""

    client_order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    fees: float
    timestamp: pd.Timestamp
    bar_time: pd.Timestamp | None = None

    @property
    def signed_qty(self) -> float:
        return self.qty if self.side == "buy" else -self.qty

    def to_dict(self) -> dict[str, Any]:
        return {"client_order_id": self.client_order_id, "symbol": self.symbol,
                "side": self.side, "qty": self.qty, "price": self.price, "fees": self.fees,
                "timestamp": self.timestamp, "bar_time": self.bar_time}


@dataclass(frozen=True)
class Position:
    """Shares held (negative: short) and the price they are valued at."""

    symbol: str
    qty: float
    avg_entry_price: float = float("nan")
    market_price: float = float("nan")

    @property
    def market_value(self) -> float:
        return self.qty * self.market_price


@dataclass(frozen=True)
class Account:
    """Cash, equity and buying power, in the account's currency."""

    cash: float
    equity: float
    buying_power: float
    currency: str = "USD"
