"""Mistakes a researcher makes get the library's error, saying what to do instead."""

import numpy as np
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError, UnknownNameError

GRID = {"fast": [5, 10], "slow": [20, 40]}


@pytest.fixture(scope="module")
def close():
    return atl.data.to_wide(atl.data.load_sample(["AAA", "BBB"]), "close").iloc[:1500]


def test_heatmap_metric_in_the_wrong_case_suggests_the_right_one(close):
    res = atl.backtest.sweep("ma_cross", GRID, close, progress=False)
    with pytest.raises(UnknownNameError, match="did you mean 'sharpe'"):
        atl.backtest.heatmap(res, "Sharpe")
    with pytest.raises(KeyError):  # still a KeyError for code that caught one
        atl.backtest.top_k(res, "Sharpe")


def test_plot_of_a_group_in_the_wrong_case_suggests_the_right_one(close):
    bar = np.arange(len(close))[:, None]
    pf = atl.backtest.from_signals(close, bar % 50 == 0, bar % 50 == 25)
    with pytest.raises(UnknownNameError, match="did you mean 'AAA'.*AAA, BBB"):
        pf.plot("aaa")


@pytest.mark.parametrize("split", [70, 70.0, 0, 1, 1.5])
def test_split_sample_refuses_a_bare_number_that_is_not_a_fraction(close, split):
    with pytest.raises(DataError, match=r"fraction in \(0, 1\).*split=0.7"):
        atl.backtest.split_sample("ma_cross", GRID, close, split=split, progress=False)


def test_split_sample_still_takes_a_timestamp(close):
    at = close.index[1000]
    table = atl.backtest.split_sample("ma_cross", GRID, close, split=at, progress=False)
    assert table.attrs["split"] == 1000
