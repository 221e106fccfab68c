"""How many shares an intent means, by the backtest's own order rules.

The paper broker sizes at its fill price inside the backtest kernel; a real broker gets
the quantity computed here at the bar's close, from the account's cash and position.
"""

from __future__ import annotations

import math

from alphatrade_lab.backtest import kernels as backtest_nb
from alphatrade_lab.live.orders import Intent

__all__ = ["order_quantity"]


def order_quantity(intent: Intent, *, cash: float, position: float, price: float,
                   free: float | None = None, debt: float = 0.0, fraction: float = 1.0,
                   fees: float = 0.0, fixed_fees: float = 0.0, slippage: float = 0.0,
                   granularity: float | None = None) -> float:
    """Shares to buy or sell for ``intent`` at ``price`` (0.0: no order would fill).

    The same arithmetic as :func:`atl.backtest.from_signals` (``buy_nb``/``sell_nb``):
    an entry spends ``fraction`` of the cash, fees included; an exit sells or covers the
    whole position; a reversal does both in one order.

    >>> order_quantity(Intent.OPEN_LONG, cash=1000.0, position=0.0, price=10.0, fees=0.0)
    100.0
    >>> order_quantity(Intent.OPEN_LONG, cash=1000.0, position=0.0, price=10.0,
    ...                granularity=1.0, fees=0.01)
    99.0
    >>> order_quantity(Intent.TO_SHORT, cash=0.0, position=5.0, price=10.0, free=0.0)
    10.0
    """
    free = cash if free is None else free
    gran = math.nan if granularity is None else float(granularity)
    pos = float(position)
    if intent == Intent.OPEN_LONG:
        res = backtest_nb.buy_nb(cash, free, pos, debt, math.inf, fraction * cash, price, fees,
                                 fixed_fees, slippage, False, gran)
    elif intent == Intent.TO_LONG:
        size = math.inf
        if fraction < 1.0:
            adj = price * (1.0 + slippage)
            all_in = (cash - fixed_fees) / (1.0 + fees) / adj
            size = -pos + fraction * max(all_in + pos, 0.0)
        res = backtest_nb.buy_nb(cash, free, pos, debt, size, cash, price, fees, fixed_fees,
                                 slippage, False, gran)
    elif intent == Intent.CLOSE_SHORT:
        res = backtest_nb.buy_nb(cash, free, pos, debt, -pos, cash, price, fees, fixed_fees,
                                 slippage, True, gran)
    elif intent == Intent.CLOSE_LONG:
        res = backtest_nb.sell_nb(cash, free, pos, debt, pos, 1.0, price, fees, fixed_fees,
                                  slippage, True, gran)
    elif intent in (Intent.OPEN_SHORT, Intent.TO_SHORT):
        res = backtest_nb.sell_nb(cash, free, pos, debt, math.inf, fraction, price, fees,
                                  fixed_fees, slippage, False, gran)
    else:
        return 0.0
    return float(res[5]) if res[0] else 0.0
