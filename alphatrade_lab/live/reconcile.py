"""Reconciliation: a paper or live run against the backtest of the same bars.

Each of the backtest's orders is matched with the run's fill of the same symbol and side
nearest in time (within ``window``); every difference is attributed to one cause:

``signal_time``
    the order filled on another bar: it was sent on another bar, or it filled at the next
    bar's open where the backtest filled at the close (value: live minus backtest, in bars
    of the backtest's index);
``fill_price``
    it filled at another price (slippage; value: live minus backtest price);
``size``
    another quantity (value: live minus backtest shares);
``fees``
    other fees (value: live minus backtest);
``rejected_order``
    the broker rejected or canceled the run's order (value: NaN; ``detail`` says why);
``missing_order``
    the run sent no order for it at all;
``extra_order``
    the run filled an order the backtest did not have.

``impact`` estimates what each difference cost in cash (positive: the run did better).
A replay on the paper broker reconciles with no difference at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError

__all__ = ["KINDS", "Reconciliation", "reconcile"]

KINDS = ("signal_time", "fill_price", "size", "fees", "rejected_order", "missing_order",
         "extra_order")
COLUMNS = ["symbol", "kind", "backtest_time", "live_time", "side", "backtest_value",
           "live_value", "value", "impact", "detail"]


@dataclass
class Reconciliation:
    """``differences``: one row per difference (:data:`COLUMNS`); ``matched``: orders
    matched; ``backtest_orders``/``live_fills``: how many each side had."""

    run_id: str
    differences: pd.DataFrame
    matched: int
    backtest_orders: int
    live_fills: int
    equity: pd.DataFrame | None = None

    @property
    def ok(self) -> bool:
        """No difference at all."""
        return len(self.differences) == 0

    def summary(self) -> pd.DataFrame:
        """Count and total impact per kind (every kind listed, zeros included)."""
        d = self.differences
        # "size" counts rows: most kinds have no cash impact (NaN), which "count" would skip
        g = d.groupby("kind")["impact"].agg(["size", "sum"]).rename(
            columns={"size": "count"}) if len(d) else None
        rows = [{"kind": k,
                 "count": int(g.loc[k, "count"]) if g is not None and k in g.index else 0,
                 "impact": float(g.loc[k, "sum"]) if g is not None and k in g.index else 0.0}
                for k in KINDS]
        return pd.DataFrame(rows)

    def plot(self, ax: Any = None) -> Any:
        """Equity of the run and the backtest with the differences marked (a Figure)."""
        from alphatrade_lab._figure import NotebookFigure

        if ax is None:
            fig = NotebookFigure(figsize=(10, 4))
            ax = fig.subplots()
        else:
            fig = ax.figure
        if self.equity is not None and len(self.equity):
            for col in self.equity.columns:
                ax.plot(self.equity.index, self.equity[col], label=col, lw=1)
        d = self.differences
        for kind, marker in zip(KINDS, "ovsD^x+", strict=True):
            rows = d[d["kind"] == kind]
            if len(rows) and self.equity is not None and len(self.equity):
                t = rows["backtest_time"].fillna(rows["live_time"])
                y = self.equity.iloc[:, 0].reindex(t, method="ffill")
                ax.scatter(t, y, marker=marker, label=f"{kind} ({len(rows)})", zorder=3)
        ax.set_title(f"run {self.run_id} against its backtest: {len(d)} difference(s), "
                     f"{self.matched} of {self.backtest_orders} orders matched")
        ax.set_ylabel("equity")
        ax.legend(loc="best", fontsize=8)
        return fig


def _live_frames(run: Any, store: Any) -> tuple[str, pd.DataFrame, pd.DataFrame, Any]:
    if isinstance(run, str):
        if store is None:
            raise DataError("reconcile: a run id needs the store it was recorded in")
        fills, orders = store.fills(run), store.orders(run)
        eq = store.equity(run)
        equity = (eq.pivot(index="timestamp", columns="portfolio", values="equity")
                  if len(eq) else None)
        return run, fills, orders, equity
    if hasattr(run, "fills") and hasattr(run, "orders"):
        return run.run_id, run.fills, run.orders, run.equity
    raise DataError(f"reconcile: expected a run id or an EngineResult, got {type(run).__name__}")


def _per_order(fills: pd.DataFrame) -> pd.DataFrame:
    """One row per live order: its bar, side, total quantity, average price and fees."""
    if not len(fills):
        return pd.DataFrame(columns=["client_order_id", "symbol", "side", "bar_time", "qty",
                                     "price", "fees"])
    f = fills.assign(cost=fills["qty"] * fills["price"])
    g = f.groupby("client_order_id", sort=False).agg(
        symbol=("symbol", "first"), side=("side", "first"), bar_time=("bar_time", "first"),
        qty=("qty", "sum"), cost=("cost", "sum"), fees=("fees", "sum"),
        n=("qty", "size"), price0=("price", "first"))
    # one fill: its own price (q * p / q can differ in the last bit)
    g["price"] = np.where(g["n"] == 1, g["price0"], g["cost"] / g["qty"])
    return g.reset_index()[["client_order_id", "symbol", "side", "bar_time", "qty", "price",
                            "fees"]]


def _close(a: float, b: float, rtol: float) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12)


def reconcile(run: Any, backtest: Any, *, store: Any = None, window: int = 10,
              rtol: float = 1e-9, record: bool = False) -> Reconciliation:
    """Compare a run (its id in ``store``, or an :class:`EngineResult`) with the backtest
    :class:`~alphatrade_lab.backtest.Portfolio` of the same bars.

    Parameters
    ----------
    window
        Largest shift, in the backtest's bars, for an order to count as the same one sent
        at another time.
    rtol
        Relative tolerance of prices, sizes and fees.
    record
        Write the differences to ``store`` (table ``reconciliation``, replacing the run's
        earlier rows).

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> from alphatrade_lab.live import Engine, PaperBroker, ReplayFeed, SignalStrategy
    >>> bars = atl.data.load_sample(["AAA"]).head(300)
    >>> def cross(b):
    ...     c = atl.data.to_wide(b, "close")
    ...     f, s = c.rolling(5).mean(), c.rolling(20).mean()
    ...     return atl.signals.crossed_above(f, s), atl.signals.crossed_below(f, s)
    >>> run = Engine(ReplayFeed(bars), SignalStrategy(cross, 21), PaperBroker(fees=0.001)).run()
    >>> pf = atl.backtest.from_signals(atl.data.to_wide(bars, "close"), *cross(bars), fees=0.001)
    >>> reconcile(run, pf).ok
    True
    """
    run_id, fills, orders, equity = _live_frames(run, store)
    bt = backtest.orders
    index = pd.DatetimeIndex(backtest.index)
    pos = {t: i for i, t in enumerate(index)}
    live = _per_order(fills)
    rows: list[dict[str, Any]] = []
    used = np.zeros(len(live), dtype=bool)
    matched = 0
    rejected = (orders[orders["status"].isin(["rejected", "canceled"])]
                if len(orders) else orders)

    def bar_of(t: Any) -> float:
        return float(pos.get(pd.Timestamp(t), np.nan))

    live_bar = np.array([bar_of(t) for t in live["bar_time"]]) if len(live) else np.zeros(0)
    for _, b in bt.iterrows():
        sym, side, t = str(b["column"]), b["side"], pd.Timestamp(b["timestamp"])
        tb = bar_of(t)
        cand: np.ndarray = np.flatnonzero(
            (~used) & (live["symbol"].to_numpy() == sym) & (live["side"].to_numpy() == side)
            & (np.abs(live_bar - tb) <= window)) if len(live) else np.zeros(0, dtype=np.int64)
        base = {"symbol": sym, "backtest_time": t, "side": side}
        if len(cand) == 0:
            rej = rejected[(rejected["symbol"] == sym) & (rejected["side"] == side)] \
                if len(rejected) else rejected
            if len(rej):
                near = rej.iloc[np.argmin(np.abs([bar_of(x) - tb for x in rej["bar_time"]]))]
                rows.append({**base, "kind": "rejected_order", "live_time": near["bar_time"],
                             "backtest_value": b["size"], "live_value": 0.0, "value": np.nan,
                             "impact": np.nan, "detail": str(near.get("reason") or "")})
            else:
                rows.append({**base, "kind": "missing_order", "live_time": pd.NaT,
                             "backtest_value": b["size"], "live_value": 0.0, "value": np.nan,
                             "impact": np.nan, "detail": "no order sent"})
            continue
        j = cand[np.argmin(np.abs(live_bar[cand] - tb))]
        used[j] = True
        matched += 1
        f = live.iloc[j]
        sign = 1.0 if side == "buy" else -1.0
        base["live_time"] = f["bar_time"]
        if live_bar[j] != tb:
            rows.append({**base, "kind": "signal_time", "backtest_value": tb,
                         "live_value": live_bar[j], "value": live_bar[j] - tb,
                         "impact": np.nan, "detail": f"{live_bar[j] - tb:+.0f} bar(s)"})
        if not _close(f["price"], b["price"], rtol):
            d = f["price"] - b["price"]
            rows.append({**base, "kind": "fill_price", "backtest_value": b["price"],
                         "live_value": f["price"], "value": d, "impact": -sign * d * f["qty"],
                         "detail": f"{d / b['price']:+.2%}"})
        if not _close(f["qty"], b["size"], rtol):
            rows.append({**base, "kind": "size", "backtest_value": b["size"],
                         "live_value": f["qty"], "value": f["qty"] - b["size"],
                         "impact": np.nan, "detail": ""})
        if not _close(f["fees"], b["fees"], rtol):
            rows.append({**base, "kind": "fees", "backtest_value": b["fees"],
                         "live_value": f["fees"], "value": f["fees"] - b["fees"],
                         "impact": -(f["fees"] - b["fees"]), "detail": ""})
    for j in np.flatnonzero(~used):
        f = live.iloc[j]
        rows.append({"symbol": f["symbol"], "kind": "extra_order", "backtest_time": pd.NaT,
                     "live_time": f["bar_time"], "side": f["side"], "backtest_value": 0.0,
                     "live_value": f["qty"], "value": f["qty"], "impact": np.nan,
                     "detail": "not in the backtest"})
    diffs = pd.DataFrame(rows, columns=COLUMNS)
    if len(diffs):
        diffs = diffs.sort_values(["backtest_time", "live_time", "symbol"],
                                  kind="stable").reset_index(drop=True)
    eq = None
    if equity is not None and len(equity):
        pf_eq = backtest.equity
        pf_eq = pf_eq.to_frame("portfolio") if isinstance(pf_eq, pd.Series) else pf_eq
        live_total = equity.sum(axis=1).rename("run")
        eq = pd.concat([live_total, pf_eq.sum(axis=1).rename("backtest")], axis=1)
    result = Reconciliation(run_id, diffs, matched, len(bt), len(live), eq)
    if record:
        if store is None:
            raise DataError("reconcile(record=True) needs the store")
        store.record_reconciliation(run_id, diffs)
    return result
