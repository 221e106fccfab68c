"""Parameter sweeps: fused results equal the unfused path, vectorbt's signals, Dask, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.backtest import STAT_NAMES, STRATEGIES, from_signals, sweep, sweep_ma_cross

COMPARED = [m for m in STAT_NAMES if m != "max_drawdown_duration"]
COSTS = {"fees": 0.001, "fixed_fees": 0.01, "slippage": 0.0005}


@pytest.fixture(scope="module")
def hourly(sample_bars):
    return atl.data.to_wide(atl.data.resample(sample_bars, "1h"), "close")


def assert_rows_equal(result, row, reference):
    ours = result.loc[row, COMPARED].astype(float).to_numpy()
    ref = reference[COMPARED].iloc[0].astype(float).to_numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=str(row))
    assert result.loc[row, "max_drawdown_duration"] == reference["max_drawdown_duration"].iloc[0]


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["longonly", "shortonly", "both"])
def test_ma_sweep_equals_from_signals_on_vectorbts_signals(hourly, direction):
    import vectorbt as vbt

    close = hourly.iloc[:4000]
    res = sweep_ma_cross(close, fast=[3, 8, 21], slow=[13, 34, 89], direction=direction,
                         metrics=STAT_NAMES, progress=False, **COSTS)
    assert len(res) == 8 * close.shape[1]  # every fast < slow pair (not 21/13), every symbol
    for (fast, slow, sym) in res.index[::4]:
        ma_f = vbt.MA.run(close[sym], fast).ma
        ma_s = vbt.MA.run(close[sym], slow).ma
        entries = ma_f.vbt.crossed_above(ma_s).to_numpy()
        exits = ma_f.vbt.crossed_below(ma_s).to_numpy()
        ref = from_signals(close[sym], entries, exits, direction=direction, record="summary",
                           **COSTS)
        assert_rows_equal(res, (fast, slow, sym), ref)


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["longonly", "shortonly", "both"])
@pytest.mark.parametrize("costs", [
    COSTS, {"fees": 0.002, "size": 0.5},
    # No fixed fees, all in: long only fills with all_in_fill_nb inside the stretches;
    # with 1e-6 of cash and 5% fees the account soon falls under the minimum order and
    # its entries are rejected.
    {"fees": 0.001, "slippage": 0.0005}, {"fees": 0.05, "init_cash": 1e-6},
], ids=["all-in", "half", "all-in-no-fixed-fees", "rejected"])
def test_ma_sweep_between_signals_equals_from_signals(direction, costs):
    # Bars between two signals run in one tight loop (all-in longs take their return
    # sums from running sums of the close's returns) that must stop at a NaN close.
    # Prices on a 0.1 grid make the averages tie: a tie is "not crossed yet" both in
    # atl.signals' rule and in vectorbt's, which agree here.
    import vectorbt as vbt

    rng = np.random.default_rng(11)
    close = pd.DataFrame({
        "tick": np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.005, 3000))), 1),
        "smooth": 50 * np.exp(np.cumsum(rng.normal(0, 0.02, 3000))),
    }, index=pd.date_range("2024-01-01", periods=3000, freq="1h", tz="UTC"))
    close["gaps"] = close["smooth"].where(~close.index.isin(close.index[[700, 701, 1500, 2400]]))
    fast, slow = [2, 3, 5, 9], [3, 4, 13, 40]
    ties = (vbt.MA.run(close["tick"], 2).ma == vbt.MA.run(close["tick"], 4).ma).sum()
    assert ties > 10
    cut = 200
    res = sweep_ma_cross(close, fast, slow, direction=direction, start=cut, metrics=STAT_NAMES,
                         progress=False, **costs)
    assert len(res) == 11 * 3
    for (f, s, sym) in res.index:
        ma_f = vbt.MA.run(close[sym], f).ma
        ma_s = vbt.MA.run(close[sym], s).ma
        entries = ma_f.vbt.crossed_above(ma_s).to_numpy()[cut:]
        exits = ma_f.vbt.crossed_below(ma_s).to_numpy()[cut:]
        ref = from_signals(close[sym].iloc[cut:], entries, exits, direction=direction,
                           record="summary", **costs)
        if "init_cash" not in costs:
            assert ref["trade_count"].iloc[0] > 10 and np.isfinite(ref["sortino"].iloc[0])
        assert_rows_equal(res, (f, s, sym), ref)


@pytest.mark.slow
def test_ma_signals_match_vectorbt_with_gaps(hourly):
    import vectorbt as vbt

    close = hourly["DDD"].copy()
    close.iloc[500:530] = np.nan  # a gap inside the windows
    ours_e, ours_x = STRATEGIES["ma_cross"].signals(close.to_numpy(), [5, 40])
    ma_f, ma_s = vbt.MA.run(close, 5).ma, vbt.MA.run(close, 40).ma
    np.testing.assert_array_equal(ours_e[:, 0], ma_f.vbt.crossed_above(ma_s).to_numpy())
    np.testing.assert_array_equal(ours_x[:, 0], ma_f.vbt.crossed_below(ma_s).to_numpy())
    res = sweep_ma_cross(close, [5], [40], metrics=STAT_NAMES, progress=False, **COSTS)
    ref = from_signals(close, ours_e[:, 0], ours_x[:, 0], record="summary", **COSTS)
    assert_rows_equal(res, (5, 40), ref)


def wilder_rsi(close: np.ndarray, w: int) -> np.ndarray:
    """Textbook Wilder RSI by hand (no NaNs in the input)."""
    out = np.full(len(close), np.nan)
    d = np.diff(close)
    gain, loss = np.clip(d, 0, None), np.clip(-d, 0, None)
    ag, al = gain[:w].mean(), loss[:w].mean()
    for t in range(w, len(close)):
        if t > w:
            ag = (ag * (w - 1) + gain[t - 1]) / w
            al = (al * (w - 1) + loss[t - 1]) / w
        if ag == al == 0:
            out[t] = 50.0  # flat prices
        else:
            out[t] = 100.0 if al == 0 else 100.0 - 100.0 / (1.0 + ag / al)
    return out


def reference_signals(name: str, close: pd.Series, params: dict):
    if name == "rsi_reversal":
        rsi = pd.Series(wilder_rsi(close.to_numpy(), params["window"]), index=close.index)
        prev = rsi.shift()
        return ((prev >= params["lower"]) & (rsi < params["lower"]),
                (prev <= params["upper"]) & (rsi > params["upper"]))
    if name == "bollinger_reversion":
        mean = close.rolling(params["window"]).mean()
        std = close.rolling(params["window"]).std()
        return close < mean - params["k"] * std, close > mean
    if name == "donchian_breakout":
        past = close.shift()
        return (close > past.rolling(params["window"]).max(),
                close < past.rolling(params["window"]).min())
    raise KeyError(name)


GRIDS = {
    "rsi_reversal": {"window": [7, 14], "lower": [25.0, 30.0], "upper": [70.0, 75.0]},
    "bollinger_reversion": {"window": [20, 50], "k": [1.5, 2.0]},
    "donchian_breakout": {"window": [24, 96]},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GRIDS))
def test_builtin_strategies_equal_the_unfused_path(hourly, name):
    close = hourly[["AAA", "CCC"]].iloc[:3000].dropna()
    res = sweep(close, name, GRIDS[name], direction="both", metrics=STAT_NAMES, progress=False,
                **COSTS)
    params = list(GRIDS[name])
    for row in res.index:
        p = dict(zip(params, row[:-1], strict=True))
        entries, exits = reference_signals(name, close[row[-1]], p)
        ours_e, ours_x = STRATEGIES[name].signals(close[row[-1]].to_numpy(), list(p.values()))
        np.testing.assert_array_equal(ours_e[:, 0], entries.to_numpy())
        np.testing.assert_array_equal(ours_x[:, 0], exits.to_numpy())
        ref = from_signals(close[row[-1]], entries, exits, direction="both", record="summary",
                           **COSTS)
        assert_rows_equal(res, row, ref)


@pytest.mark.slow
def test_user_strategy_and_trading_window(hourly):
    from numba import njit

    @njit
    def momentum_nb(close, params, entries, exits):
        lag = int(params[0])
        for i in range(close.shape[0]):
            change = close[i] / close[i - lag] - 1.0 if i >= lag else np.nan
            entries[i] = change > params[1]
            exits[i] = change < -params[1]

    strat = atl.backtest.Strategy("momentum", ("lag", "threshold"), momentum_nb)
    close = hourly["BBB"].ffill()
    cut = 5000
    res = sweep(close, strat, {"lag": [24], "threshold": [0.02]}, start=cut, metrics=STAT_NAMES,
                progress=False)
    change = close / close.shift(24) - 1
    ref = from_signals(close.iloc[cut:], (change > 0.02).iloc[cut:], (change < -0.02).iloc[cut:],
                       record="summary")
    assert_rows_equal(res, (24, 0.02), ref)
    by_time = sweep(close, strat, {"lag": [24], "threshold": [0.02]}, start=close.index[cut],
                    metrics=STAT_NAMES, progress=False)
    pd.testing.assert_frame_equal(by_time, res)


def test_split_sample(hourly):
    close = hourly[["AAA"]]
    grid = {"fast": [6, 12, 24], "slow": [48, 96, 192]}
    table = atl.backtest.split_sample(close, "ma_cross", grid, split=0.6, top=4, progress=False)
    cut = int(0.6 * len(close))
    is_ = sweep(close, "ma_cross", grid, end=cut, progress=False)
    oos = sweep(close, "ma_cross", grid, start=cut, progress=False)
    assert len(table) == 4 and table.attrs["split"] == cut
    top = is_["sharpe"].sort_values(ascending=False).index[:4]
    assert list(table.index) == list(top)
    pd.testing.assert_frame_equal(table["out_of_sample"], oos.loc[top], check_names=False)
    assert -1 <= table.attrs["rank_correlation"] <= 1


@pytest.mark.slow
def test_grid_filter_vectorised_or_per_combination(hourly):
    close = hourly["BBB"].iloc[:600]
    calls = []

    def per_combination(p):
        calls.append(p)
        return p["window"] != 20  # `!=` on an array would not raise: check the count too

    def scalar_only(p):
        return int(p["window"]) % 20 != 0  # int() of an array raises TypeError

    strat = atl.backtest.Strategy("d", ("window",), STRATEGIES["donchian_breakout"].signals_nb,
                                  per_combination)
    res = sweep(close, strat, {"window": [10, 20, 30]}, progress=False)
    assert list(res.index) == [10, 30] and len(calls) == 1  # one call on whole columns
    strat = atl.backtest.Strategy("d", ("window",), STRATEGIES["donchian_breakout"].signals_nb,
                                  scalar_only)
    res = sweep(close, strat, {"window": [10, 20, 30, 40]}, progress=False)
    assert list(res.index) == [10, 30]


def test_deflated_sharpe_of_noise_is_not_significant():
    rng = np.random.default_rng(5)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 4000))),
                      index=pd.date_range("2024-01-01", periods=4000, freq="1h", tz="UTC"))
    res = sweep_ma_cross(close, fast=range(2, 30, 2), slow=range(10, 120, 10), progress=False)
    assert res.attrs["best"] == res["sharpe"].idxmax()
    assert res.attrs["n_trials"] == len(res)
    assert res.attrs["deflated_sharpe"] < 0.9


def test_expected_max_sharpe_matches_simulation():
    rng = np.random.default_rng(1)
    draws = rng.standard_normal((4000, 200)).max(axis=1).mean()
    from alphatrade_lab.backtest.sweeps.stats import expected_max_sharpe

    assert abs(expected_max_sharpe(200, 1.0) - draws) < 0.05


def test_plots(hourly):
    import matplotlib.collections

    res = sweep_ma_cross(hourly.iloc[:2000], fast=[5, 10, 20], slow=[30, 60], progress=False)
    fig = atl.backtest.heatmap(res, "total_return", symbol="BBB")
    (ax,) = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    assert any(isinstance(c, matplotlib.collections.QuadMesh) for c in ax.collections)
    assert ax.get_xlabel() == "fast" and ax.get_ylabel() == "slow"
    top = atl.backtest.top_k(res, "sharpe", k=3)
    assert len(top) == 3 and top["sharpe"].is_monotonic_decreasing
    with pytest.raises(KeyError, match="no metric 'alpha'"):
        atl.backtest.top_k(res, "alpha")


def test_bad_input(hourly):
    close = hourly.iloc[:500]
    with pytest.raises(ValueError, match="unknown strategy 'magic'"):
        sweep(close, "magic", {})
    with pytest.raises(ValueError, match=r"missing \['slow'\]"):
        sweep(close, "ma_cross", {"fast": [2]})
    with pytest.raises(ValueError, match="no valid combination"):
        sweep_ma_cross(close, fast=[50], slow=[10])
    with pytest.raises(ValueError, match="unknown metrics"):
        sweep_ma_cross(close, fast=[5], slow=[10], metrics=["alpha"])
    with pytest.raises(ValueError, match="needs client"):
        sweep_ma_cross(close, fast=[5], slow=[10], backend="dask")
    with pytest.raises(ValueError, match="at least 1"):
        sweep_ma_cross(close, fast=[0], slow=[10])
    with pytest.raises(ValueError, match="fees"):
        sweep_ma_cross(close, fast=[5], slow=[10], fees=-0.1)
    with pytest.raises(ValueError, match="bars to trade"):
        sweep_ma_cross(close, fast=[5], slow=[10], start=499)


def test_dask_backend_without_dask_names_the_extra(hourly, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(ImportError, match=r'pip install "alphatrade-lab\[cluster\]"'):
        sweep_ma_cross(hourly.iloc[:500], fast=[5], slow=[10], backend="dask", client=object(),
                       progress=False)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dask_backend_gives_identical_results(hourly):
    import distributed

    close = hourly.iloc[:3000]
    local = sweep_ma_cross(close, fast=range(2, 20, 3), slow=range(10, 60, 10), progress=False,
                           fees=0.001, chunk_size=7)
    small = hourly.iloc[:500, :2]
    small_local = sweep(small, "donchian_breakout", {"window": [5, 10]}, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = sweep_ma_cross(close, fast=range(2, 20, 3), slow=range(10, 60, 10),
                                progress=False, fees=0.001, backend="dask", client=client,
                                chunk_size=7)
        generic = sweep(close, "donchian_breakout", {"window": [10, 20, 40]}, backend="dask",
                        client=client, progress=False)
        # Back-to-back sweeps of the same prices: each scatters them while the previous
        # sweep's copy is being released (scattering under a hashed key hung or lost it).
        for _ in range(40):
            again = sweep(small, "donchian_breakout", {"window": [5, 10]}, backend="dask",
                          client=client, progress=False, chunk_size=1)
            pd.testing.assert_frame_equal(again, small_local, check_exact=True)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    pd.testing.assert_frame_equal(
        generic, sweep(close, "donchian_breakout", {"window": [10, 20, 40]}, progress=False))


def run_python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_memory_stays_flat_with_many_combinations():
    # 20,000 bars x 4,950 pairs would be 790 MB for one float array of bars x combinations.
    proc = run_python("""
        import resource, numpy as np, pandas as pd
        import alphatrade_lab as atl
        rng = np.random.default_rng(0)
        close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 20_000))))
        atl.backtest.sweep_ma_cross(close, fast=[2, 3], slow=[4, 5], progress=False)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        res = atl.backtest.sweep_ma_cross(close, fast=range(2, 102), slow=range(2, 102),
                                          progress=False)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(len(res), (after - before) / 1024)
    """)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    rows, grown_mb = out.split()
    assert int(rows) == 4950
    assert float(grown_mb) < 100, grown_mb


@pytest.mark.slow
def test_ctrl_c_keeps_what_finished():
    proc = run_python("""
        import sys, warnings, numpy as np, pandas as pd
        import alphatrade_lab as atl
        rng = np.random.default_rng(0)
        close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200_000))))
        atl.backtest.sweep_ma_cross(close.iloc[:300], fast=[2], slow=[5], progress=False)
        print("ready", flush=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = atl.backtest.sweep_ma_cross(close, fast=range(2, 200), slow=range(2, 200),
                                              chunk_size=20)
        print(len(res), res.attrs["interrupted"], res.attrs["completed"], caught[0].message)
    """, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout.readline().strip() == "ready"
    import time

    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    rows, interrupted, completed, *message = out.split()
    assert interrupted == "True" and 0 < int(rows) == int(completed) < 19503
    assert "interrupted" in " ".join(message)
    assert "combo" in err  # the progress bar was drawn


def test_the_old_argument_order_is_refused_by_name(hourly):
    close = hourly.iloc[:300]
    with pytest.raises(TypeError, match=r"sweep\(close, strategy, grid"):
        sweep("ma_cross", {"fast": [2], "slow": [5]}, close)
    with pytest.raises(TypeError, match=r"split_sample\(close, strategy, grid"):
        atl.backtest.split_sample("ma_cross", {"fast": [2], "slow": [5]}, close)


def test_fees_are_checked_as_from_signals_checks_them(hourly):
    close = hourly.iloc[:300]
    with pytest.warns(UserWarning, match=r"fees=0\.1 means 10\.0% on every fill"):
        sweep_ma_cross(close, fast=[2], slow=[5], fees=0.1, progress=False)
    with pytest.warns(UserWarning, match=r"fees=0\.1 means 10\.0% on every fill"):
        atl.backtest.from_signals(close, close > close.shift(), close < close.shift(), fees=0.1)
    with pytest.raises(ValueError, match="fees"):
        sweep_ma_cross(close, fast=[2], slow=[5], fees=1.0, progress=False)


def test_sweep_statistics_agree_with_scipy():
    from scipy import stats as st

    from alphatrade_lab.backtest.sweeps.stats import (
        expected_max_sharpe,
        probabilistic_sharpe_ratio,
        skew_kurtosis,
    )

    r = np.random.default_rng(3).standard_t(4, 5000)
    np.testing.assert_allclose(skew_kurtosis(r), (st.skew(r), st.kurtosis(r, fisher=False)),
                               rtol=1e-12)
    assert np.isnan(skew_kurtosis(np.ones(10))).all()
    gamma = 0.5772156649015329
    for n in (2, 10, 1000, 10**6):
        want = ((1 - gamma) * st.norm.ppf(1 - 1 / n) + gamma * st.norm.ppf(1 - 1 / (n * np.e)))
        assert expected_max_sharpe(n, 1.0) == pytest.approx(want, rel=1e-12)
    for sr in (-0.2, 0.0, 0.05, 0.3):
        z = sr * np.sqrt(252) / np.sqrt(1 - 0.1 * sr + (4.0 - 1) / 4 * sr**2)
        assert probabilistic_sharpe_ratio(sr, 0.0, 253, 0.1, 4.0) == pytest.approx(
            st.norm.cdf(z), rel=1e-12, abs=1e-15)
