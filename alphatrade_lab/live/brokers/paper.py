"""The paper broker: fills with exactly the backtest's rules.

Its state is the backtest kernel's own state arrays, and each fill is made by the kernel's
``execute_action_nb`` at the fill price: with ``execution="close"`` at the close of the bar
the order was decided on, with ``"next_open"`` at the next bar's open (an order whose
symbol has no bar at the next timestamp is canceled, as the backtest drops it). Fees,
fixed fees, slippage, the cash fraction per entry and ``size_granularity`` are those of
:func:`atl.backtest.from_signals`; with ``cash_sharing=False`` (the backtest's default)
each symbol has its own cash of ``init_cash``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.backtest import kernels as backtest_nb
from alphatrade_lab.errors import OrderRejected
from alphatrade_lab.live.orders import (
    Account,
    Bar,
    Intent,
    Order,
    OrderRequest,
    OrderStatus,
    Position,
)
from alphatrade_lab.live.trades import KernelRecords

__all__ = ["PaperBroker"]

_EXECUTIONS = ("close", "next_open")


class PaperBroker:
    """A simulated broker with the backtest's fills.

    Parameters
    ----------
    init_cash
        Starting cash per symbol (or of the shared pool with ``cash_sharing``).
    fees, fixed_fees, slippage, size_granularity, execution, cash_sharing
        As in :func:`atl.backtest.from_signals`.
    symbols
        The symbols, in the order the backtest's columns have (sorted by default); a
        symbol first seen later is added at the end.

    Examples
    --------
    >>> import pandas as pd
    >>> from alphatrade_lab.live.orders import Intent
    >>> b = PaperBroker(100.0, fees=0.01)
    >>> t = pd.Timestamp("2024-01-02", tz="UTC")
    >>> b.on_bar_close([Bar(t, "AAA", 10.0, 10.0, 10.0, 10.0, 1.0)])
    >>> o = b.submit(OrderRequest("id1", "AAA", Intent.OPEN_LONG, 0.0, t, 10.0))
    >>> o.status.value, round(o.filled_qty, 6), round(o.fees, 6), b.account().cash
    ('filled', 9.90099, 0.990099, 0.0)
    """

    name = "paper"
    #: orders kept for :meth:`get_order` and repeated submits (older ones are forgotten)
    max_orders = 1_000

    def __init__(self, init_cash: float = 100.0, *, fees: float = 0.0, fixed_fees: float = 0.0,
                 slippage: float = 0.0, size_granularity: float | None = None,
                 execution: str = "close", cash_sharing: bool = False,
                 symbols: list[str] | None = None):
        if execution not in _EXECUTIONS:
            raise ValueError(f"execution must be one of {_EXECUTIONS}, got {execution!r}")
        for name, v in (("init_cash", init_cash), ("fees", fees), ("fixed_fees", fixed_fees),
                        ("slippage", slippage)):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"PaperBroker: {name} must be finite and >= 0, got {v!r}")
        if size_granularity is not None and not (math.isfinite(size_granularity)
                                                 and size_granularity > 0):
            raise ValueError(f"PaperBroker: size_granularity must be > 0, got "
                             f"{size_granularity!r}")
        self.init_cash = float(init_cash)
        self.fees, self.fixed_fees, self.slippage = float(fees), float(fixed_fees), float(slippage)
        self.gran = math.nan if size_granularity is None else float(size_granularity)
        self.execution = execution
        self.cash_sharing = bool(cash_sharing)
        self.symbols: list[str] = []
        self._col: dict[str, int] = {}
        self.cstate = np.zeros((0, backtest_nb.N_CSTATE))
        self.gstate = np.zeros((0, backtest_nb.N_GSTATE))
        if self.cash_sharing:
            _, self.gstate = backtest_nb.init_state_nb(0, 1, np.array([self.init_cash]))
        # the latest orders by client id (lookups, idempotent submits); bounded: a long
        # replay's memory stays flat
        self._orders: OrderedDict[str, Order] = OrderedDict()
        self._pending: dict[str, tuple[OrderRequest, Order]] = {}
        self._bar = 0
        self._alloc_buffers()
        for s in symbols or ():
            self._add(s)

    def __repr__(self) -> str:
        return (f"PaperBroker(init_cash={self.init_cash}, fees={self.fees}, "
                f"slippage={self.slippage}, execution={self.execution!r}, "
                f"symbols={len(self.symbols)})")

    # ---------------------------------------------------------------- state
    def _alloc_buffers(self) -> None:
        self._rec = KernelRecords(len(self.symbols), orders=True, trades=False)

    def _add(self, symbol: str) -> int:
        c = len(self.symbols)
        self.symbols.append(symbol)
        self._col[symbol] = c
        cs, gs = backtest_nb.init_state_nb(1, 1, np.array([self.init_cash]))
        self.cstate = np.vstack([self.cstate, cs])
        if not self.cash_sharing:
            self.gstate = np.vstack([self.gstate, gs])
        self._alloc_buffers()
        return c

    def _column(self, symbol: str) -> int:
        c = self._col.get(symbol)
        return self._add(symbol) if c is None else c

    def _group(self, c: int) -> int:
        return 0 if self.cash_sharing else c

    # ------------------------------------------------------------ bar hooks
    def on_bar_open(self, bars: list[Bar]) -> list[Order]:
        """Fill the pending ``next_open`` orders at these bars' opens; cancel those whose
        symbol has no bar now. Returns the orders that changed."""
        if not self._pending:
            return []
        changed = []
        here = {b.symbol: b for b in bars}
        for symbol in [s for s in self.symbols if s in self._pending]:
            req, order = self._pending.pop(symbol)
            bar = here.get(symbol)
            if bar is None:
                order.status, order.reason = OrderStatus.CANCELED, "no bar at the next open"
            else:
                self._execute(req, order, bar.open)
            changed.append(order)
        return changed

    def on_bar_close(self, bars: list[Bar]) -> None:
        """Value the positions at these bars' closes (the orders of this bar fill there)."""
        self._bar += 1
        for b in bars:
            c = self._column(b.symbol)  # first: it may grow the state arrays
            self.cstate[c, backtest_nb.C_VAL] = b.close

    # -------------------------------------------------------------- orders
    def submit(self, request: OrderRequest) -> Order:
        if request.client_order_id in self._orders:
            return self._orders[request.client_order_id]
        c = self._column(request.symbol)
        order = Order(request.client_order_id, request.symbol, request.side, request.qty,
                      submitted_at=pd.Timestamp.now(tz="UTC"),
                      broker_order_id=f"paper-{len(self._orders) + 1}")
        self._orders[order.client_order_id] = order
        while len(self._orders) > self.max_orders:
            self._orders.popitem(last=False)
        if self.execution == "next_open":
            if request.symbol in self._pending:
                order.status, order.reason = OrderStatus.REJECTED, "an order is pending"
                raise OrderRejected(f"paper: {request.symbol} already has a pending order",
                                    reason="pending_order",
                                    client_order_id=request.client_order_id)
            self._pending[request.symbol] = (request, order)
            return order
        price = self.cstate[c, backtest_nb.C_VAL]
        if not math.isfinite(price):
            order.status, order.reason = OrderStatus.REJECTED, "no price yet"
            raise OrderRejected(f"paper: no close price for {request.symbol} yet",
                                reason="no_price", client_order_id=request.client_order_id)
        return self._execute(request, order, price)

    def _execute(self, req: OrderRequest, order: Order, price: float) -> Order:
        c = self._col[req.symbol]
        filled = backtest_nb.execute_action_nb(
            self._group(c), c, int(req.intent), self._bar, price, self.fees, self.fixed_fees,
            self.slippage, req.fraction, self.gran, self.cstate, self.gstate,
            *self._rec.args(c))
        if not filled:
            order.status, order.reason = OrderStatus.REJECTED, "no size would fill"
            return order
        row = self._rec.orders[0]
        order.status = OrderStatus.FILLED
        order.filled_qty = float(row[backtest_nb.O_SIZE])
        order.filled_avg_price = float(row[backtest_nb.O_PRICE])
        order.fees = float(row[backtest_nb.O_FEES])
        if not order.qty:
            order.qty = order.filled_qty
        return order

    def cancel(self, client_order_id: str) -> Order | None:
        order = self._orders.get(client_order_id)
        if order is not None and not order.status.final:
            self._pending.pop(order.symbol, None)
            order.status, order.reason = OrderStatus.CANCELED, "canceled"
        return order

    def get_order(self, client_order_id: str) -> Order | None:
        return self._orders.get(client_order_id)

    def open_orders(self) -> list[Order]:
        return [o for _, o in self._pending.values()]

    # ------------------------------------------------------------ holdings
    def positions(self) -> dict[str, Position]:
        out = {}
        for s, c in self._col.items():
            qty = self.cstate[c, backtest_nb.C_POS]
            if qty != 0:
                size = self.cstate[c, backtest_nb.C_TR_SIZE]
                avg = self.cstate[c, backtest_nb.C_TR_GROSS] / size if size else math.nan
                out[s] = Position(s, float(qty), float(avg),
                                  float(self.cstate[c, backtest_nb.C_VAL]))
        return out

    def equity_by_group(self) -> dict[str, float]:
        """Value of each cash pool (a symbol's, or ``"portfolio"`` with cash sharing), summed
        as the backtest sums it."""
        pos = self.cstate[:, backtest_nb.C_POS].tolist()
        val = self.cstate[:, backtest_nb.C_VAL].tolist()
        cash = self.gstate[:, backtest_nb.G_CASH].tolist()
        if self.cash_sharing:
            value = cash[0]
            for p, v in zip(pos, val, strict=True):
                if p != 0:
                    value += p * v
            return {"portfolio": value}
        return {s: cash[c] + pos[c] * val[c] if pos[c] != 0 else cash[c]
                for s, c in self._col.items()}

    def equity_of(self, symbol: str) -> float:
        """The value of ``symbol``'s cash pool, as :meth:`equity_by_group` has it (one pool
        read, for the engine's pre-trade check).

        >>> b = PaperBroker(100.0)
        >>> b.on_bar_close([Bar(pd.Timestamp("2024-01-02", tz="UTC"), "AAA", 9, 9, 9, 9, 1)])
        >>> b.equity_of("AAA") == b.equity_by_group()["AAA"] == 100.0
        True
        """
        if self.cash_sharing:
            return self.equity_by_group()["portfolio"]
        c = self._column(symbol)
        value = float(self.gstate[c, backtest_nb.G_CASH])
        pos = float(self.cstate[c, backtest_nb.C_POS])
        return value + pos * float(self.cstate[c, backtest_nb.C_VAL]) if pos != 0 else value

    def account(self) -> Account:
        cash = float(self.gstate[:, backtest_nb.G_CASH].sum())
        free = float(self.gstate[:, backtest_nb.G_FREE].sum())
        return Account(cash, float(sum(self.equity_by_group().values())), free)

    def cash_of(self, symbol: str) -> tuple[float, float, float, float]:
        """(cash, free cash, position, debt) that an order of ``symbol`` sees."""
        c = self._column(symbol)
        g = self._group(c)
        gs, cs = self.gstate[g], self.cstate[c]
        return (float(gs[backtest_nb.G_CASH]), float(gs[backtest_nb.G_FREE]),
                float(cs[backtest_nb.C_POS]), float(cs[backtest_nb.C_DEBT]))

    # --------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (JSON-able: floats survive a round trip)."""
        return {"symbols": list(self.symbols), "cstate": self.cstate.tolist(),
                "gstate": self.gstate.tolist(), "bar": self._bar,
                "pending": [req.to_dict() for req, _ in self._pending.values()]}

    def load_state(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` (pending ``next_open`` orders included)."""
        symbols = [str(s) for s in state["symbols"]]
        cstate = np.asarray(state["cstate"], dtype=np.float64).reshape(len(symbols), -1)
        gstate = np.asarray(state["gstate"], dtype=np.float64)
        if cstate.shape[1] != backtest_nb.N_CSTATE or gstate.ndim != 2 or \
                gstate.shape[1] != backtest_nb.N_GSTATE:
            raise ValueError("PaperBroker.load_state: state arrays of the wrong shape")
        self.symbols, self._col = symbols, {s: i for i, s in enumerate(symbols)}
        self.cstate, self.gstate = cstate, gstate
        self._bar = int(state.get("bar", 0))
        self._alloc_buffers()
        self._pending = {}
        for d in state.get("pending", []):
            req = OrderRequest(str(d["client_order_id"]), str(d["symbol"]),
                               Intent[str(d["intent"]).upper()], float(d["qty"]),
                               pd.Timestamp(d["bar_time"]), float(d["reference_price"]),
                               float(d["fraction"]))
            order = Order(req.client_order_id, req.symbol, req.side, req.qty)
            self._orders[req.client_order_id] = order
            self._pending[req.symbol] = (req, order)
