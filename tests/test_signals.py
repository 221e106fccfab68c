"""atl.signals crossovers: one definition, used by the sweeps, without lookahead."""

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.backtest.sweeps import api as sweep_api
from alphatrade_lab.errors import DataError
from alphatrade_lab.testing import assert_no_lookahead

STATS = ["total_return", "sharpe", "max_drawdown", "trade_count", "win_rate"]


def _loop_above(a, b):
    """The rule written out bar by bar, in plain Python."""
    out = [False] * len(a)
    for t in range(1, len(a)):
        vals = (a[t - 1], b[t - 1], a[t], b[t])
        if not any(np.isnan(v) for v in vals):
            out[t] = a[t] > b[t] and a[t - 1] <= b[t - 1]
    return out


def _loop_below(a, b):
    out = [False] * len(a)
    for t in range(1, len(a)):
        vals = (a[t - 1], b[t - 1], a[t], b[t])
        if not any(np.isnan(v) for v in vals):
            out[t] = a[t] < b[t] and a[t - 1] >= b[t - 1]
    return out


def _random_pair(seed, n=400, k=3):
    """Small integers (many ties) with NaNs, as a frame pair."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, (n, k)).astype(float)
    b = rng.integers(0, 4, (n, k)).astype(float)
    a[rng.random((n, k)) < 0.08] = np.nan
    b[rng.random((n, k)) < 0.08] = np.nan
    idx = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    cols = ["x", "y", "z"][:k]
    return pd.DataFrame(a, idx, cols), pd.DataFrame(b, idx, cols)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crossed_matches_pandas_and_loop_reference(seed):
    a, b = _random_pair(seed)
    assert (a == b).to_numpy().sum() > 50  # ties are exercised
    up, dn = atl.signals.crossed_above(a, b), atl.signals.crossed_below(a, b)
    pandas_up = (a > b) & (a.shift(1) <= b.shift(1))
    pandas_dn = (a < b) & (a.shift(1) >= b.shift(1))
    pd.testing.assert_frame_equal(up, pandas_up)
    pd.testing.assert_frame_equal(dn, pandas_dn)
    for c in a.columns:
        assert up[c].tolist() == _loop_above(a[c].to_numpy(), b[c].to_numpy())
        assert dn[c].tolist() == _loop_below(a[c].to_numpy(), b[c].to_numpy())
    assert up.to_numpy().any() and dn.to_numpy().any()
    assert not (up & dn).to_numpy().any()


def test_crossed_hand_cases_ties_and_nan():
    a = pd.Series([1.0, 2.0, 3.0, 4.0, 3.0, 4.0, np.nan, 5.0, 2.0, 3.0, 3.0, 2.0])
    #  b = 3:      <    <    =    >    =    >    NaN   >    <    =    =    <
    up = atl.signals.crossed_above(a, 3.0)
    dn = atl.signals.crossed_below(a, 3.0)
    # Up through a tie (bar 3); a touch from above and back (bar 5); nothing right
    # after the NaN (bar 7) although a is above there.
    assert np.flatnonzero(up).tolist() == [3, 5]
    # Down from above (bar 8); down again after a flat run on b (bar 11).
    assert np.flatnonzero(dn).tolist() == [8, 11]


def test_inputs_broadcast_and_types():
    a, b = _random_pair(3)
    row = b["x"]
    pd.testing.assert_frame_equal(
        atl.signals.crossed_above(a, row),
        pd.DataFrame({c: atl.signals.crossed_above(a[c], row).to_numpy() for c in a},
                     index=a.index))
    level = pd.Series({"x": 1.0, "y": 2.0, "z": 3.0})
    pd.testing.assert_frame_equal(
        atl.signals.crossed_below(a, level),
        pd.DataFrame({c: atl.signals.crossed_below(a[c], level[c]).to_numpy() for c in a},
                     index=a.index))
    arr = atl.signals.crossed_above(a.to_numpy(), b.to_numpy())
    assert isinstance(arr, np.ndarray) and arr.dtype == bool
    np.testing.assert_array_equal(arr, atl.signals.crossed_above(a, b).to_numpy())
    per_row = atl.signals.crossed_above(a.to_numpy(), b["x"].to_numpy())
    np.testing.assert_array_equal(per_row, atl.signals.crossed_above(a, row).to_numpy())
    per_col = atl.signals.crossed_below(a.to_numpy(), level.to_numpy())
    np.testing.assert_array_equal(per_col, atl.signals.crossed_below(a, level).to_numpy())
    one = atl.signals.crossed_above(a["x"].to_numpy(), 2.0)
    assert one.shape == (len(a),)
    s = atl.signals.crossed_above(a["x"].rename("fast"), 2.0)
    assert s.name == "fast" and s.index.equals(a.index)


def test_bad_inputs_raise_data_error():
    a, b = _random_pair(4)
    bars = atl.data.load_sample(["AAA"]).head(50)
    with pytest.raises(DataError, match="to_wide"):
        atl.signals.crossed_above(bars, 1.0)
    with pytest.raises(DataError, match="align"):
        atl.signals.crossed_above(a, b.iloc[1:])
    with pytest.raises(DataError, match="align"):
        atl.signals.crossed_above(a["x"], b["x"].iloc[::-1].reset_index(drop=True))
    with pytest.raises(DataError, match="time"):
        atl.signals.crossed_above(a.iloc[::-1], 1.0)
    with pytest.raises(DataError, match="real numbers"):
        atl.signals.crossed_above(pd.Series(["a", "b"]), 1.0)
    with pytest.raises(DataError, match="broadcast"):
        atl.signals.crossed_above(a.to_numpy(), np.ones(7))


@pytest.fixture(scope="module")
def hourly_close(sample_bars):
    return atl.data.to_wide(atl.data.resample(sample_bars, "1h"), "close")


def _reference(close, fast, slow, **kwargs):
    f, s = close.rolling(fast).mean(), close.rolling(slow).mean()
    return atl.backtest.from_signals(close, atl.signals.crossed_above(f, s),
                                     atl.signals.crossed_below(f, s), **kwargs).stats()


def _assert_same(res, ref):
    # Trade counts and the trades' outcomes exactly; the rest to float rounding of the
    # fused path's block sums (it never changes a signal).
    assert res["trade_count"].tolist() == ref["trade_count"].tolist()
    np.testing.assert_array_equal(res["win_rate"].to_numpy(), ref["win_rate"].to_numpy())
    for m in ("total_return", "sharpe", "max_drawdown"):
        np.testing.assert_allclose(res[m].to_numpy(), ref[m].to_numpy(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("direction", ["longonly", "both"])
@pytest.mark.parametrize("fast,slow", [(24, 96), (5, 60), (12, 13)])
def test_sweep_ma_cross_equals_from_signals_on_crossed(hourly_close, fast, slow, direction):
    """The sample's hourly closes have gaps (NaN bars), so the rule after a NaN matters."""
    assert hourly_close.isna().to_numpy().any()
    res = atl.backtest.sweep_ma_cross(hourly_close, fast=[fast], slow=[slow], fees=0.001,
                                      direction=direction, progress=False, metrics=STATS)
    ref = _reference(hourly_close, fast, slow, fees=0.001, direction=direction)
    _assert_same(res.loc[(fast, slow)], ref.loc[hourly_close.columns, STATS])


@pytest.mark.slow
def test_generic_ma_path_and_ties_agree(monkeypatch):
    """Integer closes on flat stretches make the two averages tie often; the generic
    path (each task computes its own signals) gives the same as the fused one."""
    rng = np.random.default_rng(7)
    steps = rng.choice([-1.0, 0.0, 0.0, 1.0], size=(1500, 2))
    close = pd.DataFrame(100.0 + np.cumsum(steps, axis=0), columns=["p", "q"],
                         index=pd.date_range("2024-01-01", periods=1500, freq="h", tz="UTC"))
    f, s = close.rolling(2).mean(), close.rolling(4).mean()
    assert (f == s).to_numpy().sum() > 100
    ref = _reference(close, 2, 4, fees=0.001)[STATS]
    fused = atl.backtest.sweep_ma_cross(close, fast=[2], slow=[4], fees=0.001,
                                        progress=False, metrics=STATS)
    monkeypatch.setattr(sweep_api, "_MA_TABLE_CELLS", 0)
    generic = atl.backtest.sweep_ma_cross(close, fast=[2], slow=[4], fees=0.001,
                                          progress=False, metrics=STATS)
    _assert_same(fused.loc[(2, 4)], ref)
    _assert_same(generic.loc[(2, 4)], ref)
    entries, exits = atl.backtest.STRATEGIES["ma_cross"].signals(close.to_numpy(), [2, 4])
    np.testing.assert_array_equal(entries, atl.signals.crossed_above(f, s).to_numpy())
    np.testing.assert_array_equal(exits, atl.signals.crossed_below(f, s).to_numpy())


def test_out_of_sample_start_uses_the_warm_up_bar(hourly_close):
    """With ``start``, the first traded bar crosses from the bar before it."""
    close = hourly_close[["AAA", "BBB"]]
    cut = 3000
    res = atl.backtest.sweep_ma_cross(close, fast=[10], slow=[30], fees=0.001, start=cut,
                                      progress=False, metrics=STATS)
    f, s = close.rolling(10).mean(), close.rolling(30).mean()
    ref = atl.backtest.from_signals(close.iloc[cut:], atl.signals.crossed_above(f, s).iloc[cut:],
                                    atl.signals.crossed_below(f, s).iloc[cut:],
                                    fees=0.001).stats()
    _assert_same(res.loc[(10, 30)], ref.loc[close.columns, STATS])


@pytest.mark.slow
def test_notebook_crossover_differed_only_after_nan_bars(hourly_close):
    """Notebook 02's ``above & ~above.shift(1, fill_value=False)`` read a NaN previous bar
    as "not above": it fired on the first bar of the slow average and after each gap.
    Everywhere else it is the one definition."""
    fast, slow = hourly_close.rolling(24).mean(), hourly_close.rolling(96).mean()
    above = fast > slow
    old = above & ~above.shift(1, fill_value=False)
    new = atl.signals.crossed_above(fast, slow)
    prev_nan = (fast.shift(1).isna() | slow.shift(1).isna()) & fast.notna() & slow.notna()
    differs = old != new
    assert differs.to_numpy().any()
    assert (differs <= prev_nan).to_numpy().all()
    assert ((old & ~prev_nan) == new).to_numpy().all()
    aaa = atl.backtest.from_signals(hourly_close["AAA"], new["AAA"],
                                    atl.signals.crossed_below(fast, slow)["AAA"],
                                    fees=0.001).total_return
    assert round(float(aaa), 4) == -0.2393


def _ma_cross_signals(bars):
    close = atl.data.to_wide(bars, "close")
    f, s = close.rolling(5).mean(), close.rolling(20).mean()
    up = atl.signals.crossed_above(f, s)
    dn = atl.signals.crossed_below(f, s)
    return pd.concat({"up": up, "down": dn}, axis=1)


def test_crossovers_have_no_lookahead():
    bars = atl.data.load_sample(["AAA", "BBB"]).groupby("symbol").head(1500).reset_index(drop=True)
    assert assert_no_lookahead(_ma_cross_signals, bars, n_cuts=4) > 0


def test_a_crossover_on_the_next_bar_is_caught():
    bars = atl.data.load_sample(["AAA"]).head(1500)

    def peeks(b):  # "the close is above the next close": True on about a quarter of bars
        close = atl.data.to_wide(b, "close")
        return atl.signals.crossed_above(close, close.shift(-1))

    with pytest.raises(AssertionError, match="lookahead"):
        assert_no_lookahead(peeks, bars)


@pytest.mark.slow
def test_rsi_sweep_uses_the_feature_rsi_and_the_crossover():
    """One RSI: the sweep's ``rsi_reversal`` signals are ``crossed_below(rsi, lower)`` and
    ``crossed_above(rsi, upper)`` of the ``rsi_14`` feature of the long-form bars (a
    missing bar is NaN in the wide frame and absent from the long form)."""
    hourly = atl.data.resample(atl.data.load_sample(["DDD", "EEE"]), "1h")
    close = atl.data.to_wide(hourly, "close")
    assert close.isna().to_numpy().any()
    X = atl.features.technical(hourly)
    rsi = X.pivot(index="timestamp", columns="symbol", values="rsi_14").reindex(close.index)
    entries = atl.signals.crossed_below(rsi, 30.0)
    exits = atl.signals.crossed_above(rsi, 70.0)
    e, x = atl.backtest.STRATEGIES["rsi_reversal"].signals(close.to_numpy(), [14, 30.0, 70.0])
    np.testing.assert_array_equal(e, entries.to_numpy())
    np.testing.assert_array_equal(x, exits.to_numpy())
    assert e.sum() > 10 and x.sum() > 10
    res = atl.backtest.sweep(close, "rsi_reversal",
                             {"window": [14], "lower": [30.0], "upper": [70.0]},
                             fees=0.001, progress=False, metrics=STATS)
    ref = atl.backtest.from_signals(close, entries, exits, fees=0.001).stats()
    _assert_same(res.loc[(14, 30.0, 70.0)], ref.loc[close.columns, STATS])


def test_rsi_sweep_on_flat_prices_never_signals():
    close = pd.Series(np.full(300, 10.0), name="flat",
                      index=pd.date_range("2024-01-01", periods=300, freq="h", tz="UTC"))
    e, x = atl.backtest.STRATEGIES["rsi_reversal"].signals(close.to_numpy(), [14, 50.0, 50.0])
    assert not e.any() and not x.any()  # RSI is exactly 50: neither below nor above 50
