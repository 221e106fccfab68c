"""The MA sweep kernel steps groups of pairs through blocks of bars and skips quiet bars:
its results equal from_signals' across block edges, NaN gaps and both drawdown paths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.backtest import STAT_NAMES, STRATEGIES, from_signals, sweep_ma_cross
from alphatrade_lab.backtest.sweeps import ma_kernels

BLOCK = ma_kernels.BAR_BLOCK
CUT = 137  # trading starts off the grid of BLOCK; blocks run from CUT


def prices() -> pd.DataFrame:
    """Three columns over three and a half blocks of bars: a steady rise (an all-in long
    sets new peaks inside its stretches), a random walk (it mostly does not), and a
    random walk with NaN closes on and around the edges of the blocks (from ``CUT``)."""
    rng = np.random.default_rng(5)
    n = 3 * BLOCK + BLOCK // 2
    walk = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    gaps = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    gaps[CUT + np.array([BLOCK - 1, BLOCK, 2 * BLOCK, 2 * BLOCK + 3, 3 * BLOCK - 40])] = np.nan
    gaps[CUT + 3 * BLOCK - 5:CUT + 3 * BLOCK + 50] = np.nan  # across an edge, longer than windows
    return pd.DataFrame({
        "rise": 10 * np.exp(np.cumsum(rng.normal(0.002, 0.004, n))),
        "walk": walk,
        "gaps": gaps,
    }, index=pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC"))


@pytest.mark.slow
@pytest.mark.parametrize("costs", [{"fees": 0.0}, {"fees": 0.001, "slippage": 0.0005},
                                   {"fees": 0.002, "size": 0.5}],
                         ids=["no-fees", "all-in", "half"])
def test_blocks_and_quiet_bars_equal_from_signals(costs):
    close = prices()
    cut = CUT
    fast, slow = range(2, 13), range(3, 15)
    res = sweep_ma_cross(close, fast, slow, start=cut, metrics=STAT_NAMES, progress=False,
                         **costs)
    pairs = [(f, s) for f in fast for s in slow if f < s]
    assert len(res) == len(pairs) * 3  # 78 pairs x 3 columns: tasks of 3 pairs each
    compared = [m for m in STAT_NAMES if m != "max_drawdown_duration"]
    peaks = 0
    for f, s in pairs:
        for sym in close.columns:
            entries, exits = STRATEGIES["ma_cross"].signals(close[sym].to_numpy(), [f, s])
            ref = from_signals(close[sym].iloc[cut:], entries[cut:, 0], exits[cut:, 0],
                               record="summary", **costs)
            row = res.loc[(f, s, sym)]
            np.testing.assert_allclose(row[compared].astype(float).to_numpy(),
                                       ref[compared].iloc[0].astype(float).to_numpy(),
                                       rtol=1e-9, atol=1e-12, equal_nan=True,
                                       err_msg=str((f, s, sym)))
            assert row["max_drawdown_duration"] == ref["max_drawdown_duration"].iloc[0]
            peaks += sym == "rise" and ref["total_return"].iloc[0] > 1
    if costs["fees"] == 0.0:
        assert peaks > 0.9 * len(pairs)  # the rising column's accounts keep making peaks


def test_next_cross_finds_what_the_bar_by_bar_rule_finds():
    rng = np.random.default_rng(2)
    a = np.round(rng.normal(0, 1, 500), 1)  # ties between a and b on a 0.1 grid
    b = np.round(rng.normal(0, 1, 500), 1)
    a[100:160] = 5.0  # a long run above: whole search blocks without a cross
    for i in range(1, 500, 7):
        for stop in (i, i + 1, i + 17, 500):
            stop = min(stop, 500)
            want = next((j for j in range(i, stop) if a[j] > b[j] and a[j - 1] <= b[j - 1]),
                        stop)
            assert ma_kernels.next_cross_nb(a, b, i, stop) == want, (i, stop)
