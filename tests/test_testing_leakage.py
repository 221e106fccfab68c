"""The leakage harness itself: it passes honest functions and catches leaky ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.testing import assert_no_lookahead, perturb_after


@pytest.fixture(scope="module")
def bars(sample_bars):
    return sample_bars.groupby("symbol").head(3000).reset_index(drop=True)


def rolling_mean(b):  # honest: trailing window
    return b.assign(ma=b.groupby("symbol")["close"].transform(lambda s: s.rolling(30).mean()))[
        ["timestamp", "symbol", "ma"]]


def centered_mean(b):  # leaky: a centred window sees 15 bars ahead
    return b.assign(ma=b.groupby("symbol")["close"].transform(
        lambda s: s.rolling(31, center=True).mean()))[["timestamp", "symbol", "ma"]]


def next_close(b):  # leaky by one bar
    return b.assign(nxt=b.groupby("symbol")["close"].shift(-1))[["timestamp", "symbol", "nxt"]]


def full_sample_zscore(b):  # leaky through a statistic of the whole sample
    z = b.groupby("symbol")["close"].transform(lambda s: (s - s.mean()) / s.std())
    return b.assign(z=z)[["timestamp", "symbol", "z"]]


def test_honest_function_passes(bars):
    assert assert_no_lookahead(rolling_mean, bars, n_cuts=4) > 0


@pytest.mark.parametrize("leaky", [centered_mean, next_close, full_sample_zscore])
def test_leaky_functions_fail(bars, leaky):
    with pytest.raises(AssertionError, match=r"lookahead: with the bars after .* redrawn"):
        assert_no_lookahead(leaky, bars, n_cuts=2, modes=("perturb",))


def test_truncation_mode_catches_dropped_rows(bars):
    def drops_last_rows(b):  # the last value at each cut depends on what comes after it
        return next_close(b).dropna()

    with pytest.raises(AssertionError, match="removed"):
        assert_no_lookahead(drops_last_rows, bars, n_cuts=2, modes=("truncate",))


def test_series_with_datetime_index(bars):
    one = bars[bars["symbol"] == "AAA"].reset_index(drop=True)
    assert assert_no_lookahead(lambda b: b.set_index("timestamp")["close"].cumsum(), one) > 0
    with pytest.raises(AssertionError):
        assert_no_lookahead(lambda b: b.set_index("timestamp")["close"][::-1].cumsum(), one)


def test_perturbation_changes_every_field_and_keeps_bars_valid(bars):
    cut = bars["timestamp"].iloc[1500]
    out = perturb_after(bars, cut, seed=4)
    after = bars["timestamp"] > cut
    for col in ("open", "high", "low", "close", "volume"):
        assert (out.loc[after, col] != bars.loc[after, col]).all(), col
        pd.testing.assert_series_equal(out.loc[~after, col], bars.loc[~after, col])
    atl.data.validate(out)


def test_outputs_without_time_are_refused(bars):
    with pytest.raises(TypeError, match="timestamp"):
        assert_no_lookahead(lambda b: pd.Series(np.arange(len(b))), bars)
