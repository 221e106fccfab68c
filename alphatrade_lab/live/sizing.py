"""How many shares an intent means, by the backtest's own order rules.

The paper broker sizes at its fill price inside the backtest kernel; a real broker gets
the quantity computed here at the bar's close, from the account's cash and position, by the
same kernel (``execute_action_nb``) run on a scratch copy of that state.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from alphatrade_lab.backtest import kernels as backtest_nb
from alphatrade_lab.live.orders import Intent
from alphatrade_lab.live.trades import KernelRecords

__all__ = ["order_quantity"]


class _Scratch(threading.local):
    """One column's kernel state and records, reused by every call in a thread (fresh
    arrays cost more than the sizing itself): reset to ``init_state_nb``'s values first."""

    def __init__(self) -> None:
        self.cstate0, self.gstate0 = backtest_nb.init_state_nb(1, 1, np.zeros(1))
        self.cstate, self.gstate = self.cstate0.copy(), self.gstate0.copy()
        self.rec = KernelRecords(1, orders=True, trades=False)


_SCRATCH = _Scratch()


def order_quantity(intent: Intent, *, cash: float, position: float, price: float,
                   free: float | None = None, debt: float = 0.0, fraction: float = 1.0,
                   fees: float = 0.0, fixed_fees: float = 0.0, slippage: float = 0.0,
                   granularity: float | None = None) -> float:
    """Shares to buy or sell for ``intent`` at ``price`` (0.0: no order would fill).

    The arithmetic of :func:`atl.backtest.from_signals`: an entry spends ``fraction`` of
    the cash, fees included; an exit sells or covers the whole position; a reversal does
    both in one order.

    >>> order_quantity(Intent.OPEN_LONG, cash=1000.0, position=0.0, price=10.0, fees=0.0)
    100.0
    >>> order_quantity(Intent.OPEN_LONG, cash=1000.0, position=0.0, price=10.0,
    ...                granularity=1.0, fees=0.01)
    99.0
    >>> order_quantity(Intent.TO_SHORT, cash=0.0, position=5.0, price=10.0, free=0.0)
    10.0
    """
    if intent == Intent.NONE:
        return 0.0
    sc = _SCRATCH
    cstate, gstate = sc.cstate, sc.gstate
    cstate[:] = sc.cstate0
    gstate[:] = sc.gstate0
    g = gstate[0]
    g[backtest_nb.G_CASH] = g[backtest_nb.G_INIT] = g[backtest_nb.G_PREV_V] = cash
    g[backtest_nb.G_FREE] = cash if free is None else free
    cstate[0, backtest_nb.C_POS] = position
    cstate[0, backtest_nb.C_DEBT] = debt
    gran = math.nan if granularity is None else float(granularity)
    filled = backtest_nb.execute_action_nb(0, 0, int(intent), 0, price, fees, fixed_fees,
                                           slippage, fraction, gran, cstate, gstate,
                                           *sc.rec.args(0))
    return float(sc.rec.orders[0, backtest_nb.O_SIZE]) if filled else 0.0
