"""Reconciliation of runs with their backtest: a paper replay has no difference; runs with
other fills, other timing or rejected orders have each difference attributed to its cause."""

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import OrderRejected
from alphatrade_lab.live import Engine, PaperBroker, ReplayFeed, SignalStrategy, reconcile


def cross(bars):
    c = atl.data.to_wide(bars, "close")
    f, s = c.rolling(4).mean(), c.rolling(12).mean()
    return atl.signals.crossed_above(f, s), atl.signals.crossed_below(f, s)


@pytest.fixture(scope="module")
def bars():
    b = atl.data.load_sample(["AAA", "BBB"])
    return b[b["timestamp"] < b["timestamp"].min() + pd.Timedelta("150min")]


@pytest.fixture(scope="module")
def backtest(bars):
    return atl.backtest.from_signals(atl.data.to_wide(bars, "close"), *cross(bars),
                                     fees=0.001)


def run(bars, broker, **kw):
    return Engine(ReplayFeed(bars), SignalStrategy(cross, 13), broker, **kw).run()


def test_paper_replay_reconciles_exactly(bars, backtest):
    rec = reconcile(run(bars, PaperBroker(fees=0.001)), backtest)
    assert rec.ok and rec.matched == rec.backtest_orders == rec.live_fills > 10
    assert (rec.summary()["count"] == 0).all()


def test_slippage_and_fees_are_attributed(bars, backtest):
    rec = reconcile(run(bars, PaperBroker(fees=0.002, slippage=0.001)), backtest)
    kinds = rec.summary().set_index("kind")["count"]
    assert kinds["fill_price"] == rec.matched == rec.backtest_orders
    assert kinds["fees"] == rec.matched
    assert kinds[["signal_time", "rejected_order", "missing_order", "extra_order"]].sum() == 0
    price = rec.differences[rec.differences["kind"] == "fill_price"]
    buys = price["side"] == "buy"
    np.testing.assert_allclose(price.loc[buys, "live_value"],
                               price.loc[buys, "backtest_value"] * 1.001, rtol=1e-12)
    assert (price["impact"] < 0).all()  # slippage costs money on every fill
    fig = rec.plot()
    assert len(fig.axes[0].collections) >= 2  # markers of two kinds


def test_next_open_fills_show_as_signal_time(bars, backtest):
    rec = reconcile(run(bars, PaperBroker(fees=0.001, execution="next_open")), backtest)
    st = rec.differences[rec.differences["kind"] == "signal_time"]
    assert len(st) == rec.matched > 0 and (st["value"] == 1).all()


class RejectEveryThird(PaperBroker):
    """A paper broker that refuses every third order, as a broker would (buying power)."""

    def submit(self, request):
        self.seen = getattr(self, "seen", 0) + 1
        if self.seen % 3 == 0:
            raise OrderRejected("paper: insufficient buying power",
                                reason="insufficient_buying_power",
                                client_order_id=request.client_order_id)
        return super().submit(request)


def test_rejected_orders_are_attributed(bars, backtest):
    rec = reconcile(run(bars, RejectEveryThird(fees=0.001)), backtest)
    rej = rec.differences[rec.differences["kind"] == "rejected_order"]
    assert len(rej) >= 3
    counts = rec.summary().set_index("kind")["count"]
    assert counts["rejected_order"] == len(rej)  # kinds without a cash impact count too
    assert (rej["detail"] == "insufficient_buying_power").all()


def test_a_run_id_needs_its_store(backtest):
    with pytest.raises(atl.errors.DataError, match="needs the store"):
        reconcile("some-run", backtest)


def test_rejections_are_alerted_through_a_real_sink(bars):
    """A rejected order is a recorded event and an alert that reaches the webhook (a local
    server), and the run goes on to its end."""
    from alphatrade_lab.alerts import AlertManager, WebhookAlerter
    from alphatrade_lab.testing import LocalReceiver

    with LocalReceiver() as rx:
        manager = AlertManager([WebhookAlerter(rx.url + "/hook")], dedupe_window=0)
        result = run(bars, RejectEveryThird(fees=0.001), alerts=manager)
        manager.flush()
        manager.close()
        got = [r.json for r in rx.requests("/hook")]
    rejected = result.events[result.events["kind"] == "rejected"]
    assert len(rejected) >= 3 and result.bars == len(bars)
    titles = [str(g) for g in got]
    assert sum("order rejected" in t for t in titles) == len(rejected)


def test_reconciliation_is_stored_and_replaced(bars, backtest):
    store = atl.store.LabStore(":memory:")
    engine = Engine(ReplayFeed(bars), SignalStrategy(cross, 13),
                    PaperBroker(fees=0.002, slippage=0.001), store=store, run_id="rec")
    result = engine.run()
    rec = reconcile("rec", backtest, store=store, record=True)
    stored = store.reconciliation("rec")
    assert len(stored) == len(rec.differences) > 0
    assert sorted(stored["kind"].unique()) == ["fees", "fill_price", "size"]
    np.testing.assert_allclose(stored["value"].to_numpy(), rec.differences["value"].to_numpy())
    assert reconcile(result, backtest).differences.shape == rec.differences.shape
    reconcile("rec", backtest, store=store, record=True)  # again: replaced, not doubled
    assert len(store.reconciliation("rec")) == len(stored)
