"""The specialised one-column kernel gives exactly the numbers of the general kernel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.backtest import from_signals, from_signals_chunked
from alphatrade_lab.backtest import simulate as S

N, K = 1500, 5


@pytest.fixture(scope="module")
def market(random_market):
    close, _, entries, exits = random_market(N, K, seed=11, freq="1h", start=50, p=0.03)
    close.iloc[:7, 1] = np.nan          # no price at the start
    close.iloc[300:340, 2] = np.nan     # a gap
    close.iloc[-5:, 3] = np.nan         # no price at the end
    entries.iloc[100:110] = True        # same-bar conflicts
    exits.iloc[105:115] = True
    return close, entries, exits


def run_both(monkeypatch, *args, **kwargs):
    fast = from_signals(*args, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(S, "_use_fast_path", lambda *a: False)
        general = from_signals(*args, **kwargs)
    return fast, general


def assert_same(fast, general):
    pd.testing.assert_frame_equal(fast.stats(), general.stats(), check_exact=True)
    for name in ("equity", "cash", "positions", "orders", "trades"):
        pd.testing.assert_frame_equal(getattr(fast, name), getattr(general, name),
                                      check_exact=True, obj=name)


@pytest.mark.parametrize("direction", ["longonly", "shortonly", "both"])
@pytest.mark.parametrize("costs", [dict(fees=0.001, slippage=0.0005),
                                   dict(fees=[0.0, 0.001, 0.002, 0.0, 0.01], fixed_fees=0.5,
                                        size=0.5, init_cash=10.0)])
def test_fast_path_equals_general_kernel(market, monkeypatch, direction, costs):
    close, entries, exits = market
    assert_same(*run_both(monkeypatch, close, entries, exits, direction=direction, **costs))


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["row", "column", "scalar"])
def test_fast_path_broadcast_signals(market, monkeypatch, shape):
    close, entries, exits = market
    if shape == "row":
        e, x = entries.iloc[:, 0], exits.iloc[:, 0]
    elif shape == "column":
        e, x = entries.to_numpy()[:1], exits.to_numpy()[:1]
    else:
        e, x = True, False
    assert_same(*run_both(monkeypatch, close, e, x, direction="both", fees=0.001))


@pytest.mark.slow
def test_fast_path_c_order_arrays_and_series(market, monkeypatch):
    close, entries, exits = market
    arrs = [np.ascontiguousarray(f.to_numpy()) for f in (close, entries, exits)]
    assert_same(*run_both(monkeypatch, *arrs, fees=0.001))
    fast, general = run_both(monkeypatch, close["s2"], entries["s2"], exits["s2"], fees=0.001)
    pd.testing.assert_series_equal(fast.equity, general.equity, check_exact=True)
    assert fast.stats().equals(general.stats())


def test_fast_path_chunked(market, monkeypatch):
    close, entries, exits = market
    chunks = [tuple(f.iloc[a:b] for f in (close, entries, exits))
              for a, b in [(0, 301), (301, 900), (900, N)]]
    fast = from_signals_chunked(chunks, direction="both", fees=0.001)
    with monkeypatch.context() as m:
        m.setattr(S, "_use_fast_path", lambda *a: False)
        general = from_signals_chunked(chunks, direction="both", fees=0.001)
    pd.testing.assert_frame_equal(fast, general, check_exact=True)


@pytest.mark.parametrize("single", [True, False])
def test_user_writes_to_the_series_leave_the_portfolio_unchanged(market, single):
    # pf.equity, cash and positions share the portfolio's arrays (no copy): a user's
    # assignment must copy first (pandas copy-on-write), never write into them.
    close, entries, exits = market
    if single:
        close, entries, exits = close.iloc[:, 0], entries.iloc[:, 0], exits.iloc[:, 0]
    pf = from_signals(close, entries, exits, fees=0.001)
    expected = [pf.equity.copy(deep=True), pf.cash.copy(deep=True),
                pf.positions.copy(deep=True), pf.returns.copy(deep=True)]
    eq, cash, pos = pf.equity, pf.cash, pf.positions
    eq.iloc[:] = -1.0
    cash.iloc[0] = 12345.0
    pos[pos != 0] = 7.0
    assert (eq == -1.0).all(axis=None)
    got = [pf.equity, pf.cash, pf.positions, pf.returns]
    for g, e in zip(got, expected, strict=True):
        if single:
            pd.testing.assert_series_equal(g, e)
        else:
            pd.testing.assert_frame_equal(g, e)
    np.testing.assert_array_equal(np.atleast_1d(pf.final_value), np.asarray(expected[0])[-1])
    with pytest.raises(ValueError, match="read-only"):
        pf.equity.to_numpy()[0] = 0.0
