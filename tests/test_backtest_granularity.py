"""``size_granularity``: order sizes rounded down to a multiple (1 = whole shares).

Checked against vectorbt's ``size_granularity`` on random markets (fees, shorts,
reversals, next-open fills, stops, cash sharing, target weights) and by hand for
float noise, sizes that round to zero and invalid values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.backtest import from_signals, from_signals_chunked, from_weights

N, K = 1500, 6
COSTS = {"fees": 0.002, "fixed_fees": 0.5, "slippage": 0.001}
CASH = 1_000.0
RTOL = 1e-9


@pytest.fixture(scope="module")
def market(random_market):
    # Prices of 20-80 against 1,000 of cash: positions of a few dozen shares, where
    # rounding to whole shares changes every order.
    return random_market(N, K, seed=15, freq="1h", start=np.linspace(20, 80, K), p=0.04,
                         open_sd=0.003)


def assert_same(pf, vpf, min_orders=100):
    np.testing.assert_allclose(pf.equity.to_numpy().ravel(), vpf.value().to_numpy().ravel(),
                               rtol=RTOL, atol=1e-9, err_msg="equity")
    theirs = vpf.orders.records_readable.sort_values(["Column", "Timestamp"], kind="stable")
    ours = pf.orders.sort_values(["column", "timestamp"], kind="stable")
    assert len(ours) == len(theirs) >= min_orders
    np.testing.assert_array_equal(ours["timestamp"].to_numpy(), theirs["Timestamp"].to_numpy())
    np.testing.assert_allclose(ours["size"].to_numpy(), theirs["Size"].to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(ours["fees"].to_numpy(), theirs["Fees"].to_numpy(), rtol=RTOL)


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["longonly", "shortonly", "both"])
def test_whole_shares_match_vectorbt(market, direction, vbt):
    close, _, entries, exits = market
    pf = from_signals(close, entries, exits, direction=direction, size_granularity=1,
                      init_cash=CASH, **COSTS)
    vpf = vbt.Portfolio.from_signals(close, entries, exits, direction=direction,
                                     size_granularity=1, init_cash=CASH, freq="1h", **COSTS)
    assert_same(pf, vpf)
    sizes = pf.orders["size"].to_numpy()
    np.testing.assert_array_equal(sizes, np.round(sizes))
    # Without rounding the sizes differ: the test above is not vacuous.
    assert not np.allclose(from_signals(close, entries, exits, direction=direction,
                                        init_cash=CASH, **COSTS).equity, pf.equity)


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["longonly", "shortonly", "both"])
def test_whole_shares_next_open_match_vectorbt(market, direction, vbt):
    close, open_, entries, exits = market
    pf = from_signals(close, entries, exits, direction=direction, execution="next_open",
                      open=open_, size_granularity=1, init_cash=CASH, **COSTS)
    vpf = vbt.Portfolio.from_signals(close, entries.shift(1, fill_value=False),
                                     exits.shift(1, fill_value=False), price=open_,
                                     direction=direction, size_granularity=1, init_cash=CASH,
                                     freq="1h", **COSTS)
    assert_same(pf, vpf)


@pytest.mark.slow
def test_per_column_granularity_with_stops_match_vectorbt(market, vbt):
    close, _, entries, exits = market
    # Granularities whose multiples are exact in binary: vectorbt's plain `size // g * g`
    # loses a unit to float noise otherwise (see test_float_noise_does_not_leave_a_residue).
    gran = np.array([1.0, 0.5, 10.0, np.nan, 0.25, 3.0])
    kw = dict(direction="both", sl_stop=0.02, tp_stop=0.03, init_cash=CASH, **COSTS)
    pf = from_signals(close, entries, exits, size_granularity=gran, **kw)
    vpf = vbt.Portfolio.from_signals(close, entries, exits, size_granularity=gran, freq="1h",
                                     **kw)
    assert_same(pf, vpf)
    size = pf.orders.set_index("column")["size"]
    assert (size["s2"] % 10 == 0).all()
    assert (size["s3"] % 1 != 0).any()


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["longonly", "both"])
def test_cash_sharing_whole_shares_match_vectorbt(market, direction, vbt):
    close, _, entries, exits = market
    pf = from_signals(close, entries, exits, direction=direction, size_granularity=1,
                      cash_sharing=True, init_cash=CASH, **COSTS)
    vpf = vbt.Portfolio.from_signals(close, entries, exits, direction=direction,
                                     size_granularity=1, cash_sharing=True, group_by=True,
                                     init_cash=CASH, freq="1h", **COSTS)
    assert_same(pf, vpf)


@pytest.mark.slow
def test_from_weights_whole_shares_match_vectorbt_target_percent(market, vbt):
    close = market[0]
    rng = np.random.default_rng(3)
    rows = rng.random(N) < 0.03
    # Weights sum to 0.95 so every buy is affordable (where the two cash rules coincide).
    w = pd.DataFrame(np.where(rows[:, None], 0.95 * rng.dirichlet(np.ones(K), N), np.nan),
                     index=close.index, columns=close.columns)
    pf = from_weights(close, w, fees=0.001, slippage=0.0005, size_granularity=1,
                      init_cash=10_000)
    vpf = vbt.Portfolio.from_orders(close, w, size_type="targetpercent", fees=0.001,
                                    slippage=0.0005, size_granularity=1, init_cash=10_000,
                                    group_by=True, cash_sharing=True, call_seq="auto",
                                    freq="1h")
    np.testing.assert_allclose(pf.equity["portfolio"].to_numpy(), vpf.value().to_numpy(),
                               rtol=RTOL)
    assert len(pf.orders) == len(vpf.orders.records) > 100
    np.testing.assert_array_equal(pf.orders["size"], np.round(pf.orders["size"]))


def test_from_weights_scaled_buys_are_whole_shares():
    # Targets of 50 and 30 shares cost 110 > 100 of cash: both are scaled by 100 / 110
    # (to 45.45 and 27.27 shares), then rounded down to 45 and 27.
    close = pd.DataFrame({"a": [1.0, 1.0], "b": [2.0, 2.0]})
    w = pd.DataFrame({"a": [0.5, np.nan], "b": [0.6, np.nan]})
    pf = from_weights(close, w, size_granularity=1)
    assert pf.orders["size"].tolist() == [45.0, 27.0]
    assert pf.cash["portfolio"].iloc[0] == pytest.approx(100 - 45 - 54)


def test_float_noise_does_not_lose_a_share():
    close = pd.Series([10.0, 10.0, 10.0])
    # 999.9999999999 / 10 = 99.99999999999 shares: 100 up to float noise.
    pf = from_signals(close, [True, False, False], False, init_cash=999.9999999999,
                      size_granularity=1)
    assert pf.orders["size"].tolist() == [100.0]
    assert pf.cash.iloc[0] == 0.0
    # A real shortfall (0.01 of cash) still rounds down.
    pf = from_signals(close, [True, False, False], False, init_cash=999.99, size_granularity=1)
    assert pf.orders["size"].tolist() == [99.0]
    assert pf.cash.iloc[0] == pytest.approx(9.99)


def test_float_noise_does_not_leave_a_residue():
    # A 0.01 granularity short of 146.6 / 10 = 14.66 shares. In floats 14.66 // 0.01 is
    # 1465.0 (0.01 is stored slightly above 1/100): a plain floor division (vectorbt's)
    # would cover 14.65 and leave 0.01 shares short.
    close = pd.Series([10.0, 10.0, 10.0])
    pf = from_signals(close, [True, False, False], [False, True, False], direction="shortonly",
                      init_cash=146.6, size_granularity=0.01)
    assert pf.orders["size"].tolist() == pytest.approx([14.66, 14.66], rel=1e-15)
    assert pf.positions.tolist() == [pytest.approx(-14.66, rel=1e-15), 0.0, 0.0]
    assert (pf.trades["status"] == "closed").all() and len(pf.trades) == 1


@pytest.mark.slow
def test_size_below_one_unit_places_no_order():
    close = pd.Series([10.0, 11.0, 12.0])
    for execution in ("close", "next_open"):
        pf = from_signals(close, True, False, init_cash=9.0, size_granularity=1, fees=0.001,
                          execution=execution, open=close)
        assert pf.orders.empty
        assert pf.equity.tolist() == [9.0, 9.0, 9.0]


def test_hand_computed_whole_share_round_trip():
    # 10,000 / (100 * 1.002) = 99.8 -> 99 shares; fees 0.2% of 9,900 = 19.8.
    close = pd.Series([100.0, 110.0, 120.0])
    pf = from_signals(close, [True, False, False], [False, True, False], fees=0.002,
                      init_cash=10_000, size_granularity=1)
    assert pf.orders["size"].tolist() == [99.0, 99.0]
    cash0 = 10_000 - 9_900 - 19.8
    assert pf.equity.tolist() == pytest.approx([cash0 + 9_900, cash0 + 99 * 110 * 0.998,
                                                cash0 + 99 * 110 * 0.998])


def test_none_and_nan_mean_no_rounding(market):
    close, _, entries, exits = market
    base = from_signals(close, entries, exits, direction="both", **COSTS)
    for gran in (None, np.nan):
        pf = from_signals(close, entries, exits, direction="both", size_granularity=gran,
                          **COSTS)
        np.testing.assert_array_equal(pf.equity.to_numpy(), base.equity.to_numpy())


@pytest.mark.slow
def test_chunked_matches_one_shot(market):
    close, open_, entries, exits = market
    kw = dict(direction="both", execution="next_open", size_granularity=1, init_cash=CASH,
              **COSTS)
    whole = from_signals(close, entries, exits, open=open_, record="summary", **kw)
    cuts = [0, 400, 401, 1100, N]
    chunks = [(close.iloc[a:b], entries.iloc[a:b], exits.iloc[a:b], open_.iloc[a:b])
              for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    chunked = from_signals_chunked(chunks, **kw)
    np.testing.assert_allclose(chunked["end_value"].to_numpy(), whole["end_value"].to_numpy(),
                               rtol=1e-12)


@pytest.mark.parametrize("bad", [0, -1.0, np.inf, [1.0, 0.0]])
def test_invalid_granularity_is_refused(bad):
    close = pd.DataFrame({"a": [10.0, 11.0], "b": [5.0, 6.0]})
    with pytest.raises(ValueError, match=r"size_granularity must be None/NaN .* finite and > 0"):
        from_signals(close, True, False, size_granularity=bad)
    with pytest.raises(ValueError, match="size_granularity"):
        from_weights(close, 0.5, size_granularity=bad)


def test_granularity_shape_is_checked():
    close = pd.DataFrame({"a": [10.0, 11.0], "b": [5.0, 6.0]})
    with pytest.raises(ValueError, match=r"size_granularity must be a scalar or have one value "
                                         r"per column \(2\)"):
        from_signals(close, True, False, size_granularity=[1.0, 1.0, 1.0])
