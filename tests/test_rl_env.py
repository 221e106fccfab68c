"""The trading environment: Gymnasium's checker, the backtest's accounting step by step,
the vectorised environment against single ones, no lookahead, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.testing import assert_no_lookahead

gym = pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402

from alphatrade_lab.rl import TradingEnv, VecTradingEnv  # noqa: E402

FEES, SLIP = 0.001, 0.0005


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    full = atl.data.load_sample(["AAA", "BBB"])
    return full.groupby("symbol", observed=True).head(700).reset_index(drop=True)


def _market(n: int = 300, seed: int = 0) -> tuple[pd.Series, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), index=ts, name="X")
    feats = pd.DataFrame(rng.normal(size=(n, 3)), index=ts, columns=["a", "b", "c"])
    return close, feats


def _play(env: TradingEnv, actions, start: int = 0) -> list[dict]:
    env.reset(options={"start": start})
    out = []
    for a in actions:
        *_, terminated, truncated, info = env.step(a)
        out.append(info)
    assert truncated and not terminated
    return out


def _assert_same_books(infos: list[dict], pf, close: pd.Series) -> None:
    """Env step t (a fill at bar t's close, then bar t + 1) against the backtest's bar t."""
    cash = pf.cash.to_numpy().ravel()
    pos = pf.positions.to_numpy().ravel()
    fees = np.cumsum(pf.orders["fees"].to_numpy())
    order_bars = pf.orders["timestamp"].map(close.index.get_loc).to_numpy()
    c = close.to_numpy()
    for t, info in enumerate(infos):
        np.testing.assert_allclose(info["cash"], cash[t], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(info["position"], pos[t], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(info["equity"], cash[t] + pos[t] * c[t + 1], rtol=1e-9)
        done = int((order_bars <= t).sum())
        assert info["orders"] == done
        np.testing.assert_allclose(info["fees"], fees[done - 1] if done else 0.0, rtol=1e-9,
                                   atol=1e-12)
    np.testing.assert_allclose(infos[-1]["equity"], pf.equity.to_numpy().ravel()[-1], rtol=1e-9)


@pytest.mark.parametrize("kw", [{}, {"direction": "longonly"}, {"action": "continuous"},
                                {"action": "continuous", "direction": "longonly",
                                 "include_position": True}])
def test_check_env_passes(bars, kw):
    env = TradingEnv(bars, symbol="AAA", fees=FEES, episode_length=50, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the checker's notes on inf bounds
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_discrete_both_equals_from_signals(seed):
    close, feats = _market(seed=seed)
    rng = np.random.default_rng(seed)
    target = rng.choice([-1, 1], size=len(close) - 1)
    target[5:40] = 1  # long runs too, not only flips
    env = TradingEnv(close=close, features=feats, fees=FEES, slippage=SLIP)
    infos = _play(env, target + 1)
    entries = np.append(target == 1, False)
    exits = np.append(target == -1, False)
    pf = atl.backtest.from_signals(close, entries, exits, fees=FEES, slippage=SLIP,
                                   direction="both")
    assert len(pf.orders) > 50
    _assert_same_books(infos, pf, close)


@pytest.mark.parametrize("gran", [None, 0.01])
def test_discrete_longonly_equals_from_signals(gran):
    close, feats = _market(seed=3)
    actions = np.random.default_rng(3).integers(0, 2, size=len(close) - 1)
    env = TradingEnv(close=close, features=feats, direction="longonly", fees=FEES,
                     slippage=SLIP, init_cash=1000.0, size_granularity=gran)
    infos = _play(env, actions)
    pf = atl.backtest.from_signals(close, np.append(actions == 1, False),
                                   np.append(actions == 0, False), fees=FEES, slippage=SLIP,
                                   init_cash=1000.0, size_granularity=gran)
    _assert_same_books(infos, pf, close)


@pytest.mark.parametrize("gran", [None, 0.1])
def test_continuous_equals_from_weights(gran):
    close, feats = _market(seed=4)
    rng = np.random.default_rng(4)
    w = rng.uniform(-1, 1, size=len(close) - 1)
    w[::7] = 1.0  # all in: the buys are scaled down to the cash
    env = TradingEnv(close=close, features=feats, action="continuous", fees=FEES,
                     slippage=SLIP, size_granularity=gran)
    infos = _play(env, [np.array([x], dtype=np.float32) for x in w])
    weights = np.append(w.astype(np.float32).astype(np.float64), np.nan)[:, None]
    pf = atl.backtest.from_weights(close.to_frame(), weights, fees=FEES, slippage=SLIP,
                                   size_granularity=gran)
    _assert_same_books(infos, pf, close)


def test_flat_in_both_closes_the_position():
    """Long, flat, short, flat: each target is one order at the close, fees on its value."""
    ts = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    close = pd.Series([10.0, 11.0, 12.0, 12.0, 10.0, 10.0], index=ts)
    env = TradingEnv(close=close, features=pd.DataFrame({"x": 0.0}, index=ts), fees=0.01)
    infos = _play(env, [2, 1, 0, 0, 1])
    size = 100 / 1.01 / 10
    cash = size * 11 * 0.99
    assert infos[0]["position"] == pytest.approx(size)
    assert infos[1]["position"] == 0 and infos[1]["cash"] == pytest.approx(cash)
    short = cash / (12 * 1.01)  # the largest short the cash covers, fees included
    assert infos[2]["position"] == pytest.approx(-short)
    assert infos[4]["position"] == 0
    expected = cash + short * 12 * 0.99 - short * 10 * 1.01
    assert infos[4]["equity"] == pytest.approx(expected)
    assert infos[4]["orders"] == 4


def test_rewards_log_simple_and_risk_penalty():
    close, feats = _market(seed=5)
    actions = np.random.default_rng(5).integers(0, 3, size=40)
    runs = {}
    for kind, lam in (("log", 0.0), ("simple", 0.0), ("simple", 2.0)):
        env = TradingEnv(close=close, features=feats, fees=FEES, reward=kind, risk_penalty=lam,
                         episode_length=40)
        env.reset(options={"start": 10})
        rewards, values = [], [100.0]
        for a in actions:
            _, r, _, _, info = env.step(a)
            rewards.append(r)
            values.append(info["equity"])
        runs[kind, lam] = np.array(rewards)
    v = np.array(values)
    r = v[1:] / v[:-1] - 1
    np.testing.assert_allclose(runs["log", 0.0], np.log(v[1:] / v[:-1]), rtol=1e-12)
    np.testing.assert_allclose(runs["simple", 0.0], r, rtol=1e-12)
    np.testing.assert_allclose(runs["simple", 2.0], r - 2.0 * r * r, rtol=1e-12)
    assert np.exp(runs["log", 0.0].sum()) == pytest.approx(v[-1] / 100.0)


def test_random_starts_follow_the_seed_and_range(bars):
    env = TradingEnv(bars, symbol="BBB", episode_length=20, start_range=(10, 30))
    first = [env.reset(seed=7)[1]["bar"] for _ in range(2)]
    assert first[0] == first[1] and 10 <= first[0] <= 30
    seen = {env.reset()[1]["bar"] for _ in range(30)}
    assert min(seen) >= 10 and max(seen) <= 30 and len(seen) > 5
    obs, info = env.reset(options={"start": env.data.timestamps[12]})
    assert info["bar"] == 12
    np.testing.assert_array_equal(obs, env.data.features[12].astype(np.float32))


@pytest.mark.parametrize("action", ["discrete", "continuous"])
def test_vec_env_equals_single_envs_step_by_step(bars, action):
    n_envs, length = 4, 30
    kw = dict(action=action, fees=FEES, slippage=SLIP, include_position=True)
    vec = VecTradingEnv(bars, n_envs=n_envs, episode_length=length, seed=3, **kw)
    starts = np.array([0, 5, 100, 37])
    obs, info = vec.reset(starts=starts)
    singles = [TradingEnv(bars, symbol=vec.symbols[e % 2], episode_length=length, **kw)
               for e in range(n_envs)]
    first = [s.reset(options={"start": int(b)})[0] for s, b in zip(singles, starts, strict=True)]
    np.testing.assert_array_equal(obs, np.stack(first))
    rng = np.random.default_rng(0)
    for _ in range(length):
        acts = (rng.integers(0, 3, n_envs) if action == "discrete"
                else rng.uniform(-1, 1, n_envs).astype(np.float32))
        obs, reward, term, trunc, info = vec.step(acts)
        for e, env in enumerate(singles):
            o, r, te, tr, inf = env.step(acts[e] if action == "discrete" else acts[e:e + 1])
            assert (te, tr) == (term[e], trunc[e])
            assert r == reward[e] and inf["equity"] == info["equity"][e]
            assert inf["fees"] == info["fees"][e]
            if tr:
                row = list(info["ended"]).index(e)
                np.testing.assert_array_equal(info["final_observation"][row], o)
            else:
                np.testing.assert_array_equal(obs[e], o)
                assert inf["position"] == info["position"][e]
    assert trunc.all()
    # Every environment started a new episode at a drawn bar: its row's features.
    for e in range(n_envs):
        d = singles[e].data
        np.testing.assert_array_equal(obs[e, :-1], d.features[info["bar"][e]].astype(np.float32))
        assert obs[e, -1] == 0 and info["position"][e] == 0


def test_vec_env_restarts_are_seeded(bars):
    vec = VecTradingEnv(bars, n_envs=3, episode_length=5)

    def run(seed):
        vec.reset(seed=seed)
        bars_seen = [vec.step(np.ones(3, dtype=np.int64))[4]["bar"] for _ in range(25)]
        return np.array(bars_seen)

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def _observations(b: pd.DataFrame) -> pd.DataFrame:
    env = TradingEnv(b, include_position=True)
    obs, info = env.reset(options={"start": 0})
    rows, stamps = [obs], [info["timestamp"]]
    rng = np.random.default_rng(0)
    truncated = False
    while not truncated:
        obs, _, _, truncated, info = env.step(int(rng.integers(0, 3)))
        rows.append(obs)
        stamps.append(info["timestamp"])
    return pd.DataFrame(np.array(rows), index=pd.DatetimeIndex(stamps, name="timestamp"),
                        columns=env.columns)


def test_observations_have_no_lookahead(bars):
    one = bars[bars["symbol"] == "AAA"].reset_index(drop=True)
    assert assert_no_lookahead(_observations, one, n_cuts=3) > 0


def test_bad_actions_are_named():
    close, feats = _market()
    env = TradingEnv(close=close, features=feats)
    env.reset(options={"start": 0})
    for bad, text in ((3, "action 3: not in 0..2"), (-1, "action -1"), (1.0, "dtype float64"),
                      ("long", "action 'long'"), (np.array([1, 2]), "shape (2,)")):
        with pytest.raises(ValueError, match=text.replace("(", r"\(").replace(")", r"\)")):
            env.step(bad)
    cont = TradingEnv(close=close, features=feats, action="continuous", direction="longonly")
    cont.reset(options={"start": 0})
    for bad in (np.array([np.nan]), np.array([1.5]), np.array([-0.2])):
        with pytest.raises(ValueError, match=r"not a target weight in \[0, 1\]"):
            cont.step(bad)
    vec = VecTradingEnv(close=close.to_frame(), features=feats.assign(symbol="X"), n_envs=2,
                        episode_length=10)
    vec.reset()
    with pytest.raises(ValueError, match="action 5 of environment 1"):
        vec.step(np.array([1, 5]))


def test_nan_features_are_refused_at_reset_with_column_and_timestamp():
    close, feats = _market()
    feats.iloc[50, 1] = np.nan
    env = TradingEnv(close=close, features=feats, episode_length=20)
    env.reset(options={"start": 0})  # ends before the NaN
    with pytest.raises(DataError, match=r"column 'b', timestamp 2024-01-03 02:00:00\+00:00"):
        env.reset(options={"start": 40})
    with pytest.raises(DataError, match="column 'b'"):
        VecTradingEnv(close=close.to_frame(), features=feats.assign(symbol="X"),
                      episode_length=20)


def test_stepping_past_the_end_or_before_reset_is_refused():
    close, feats = _market(n=30)
    env = TradingEnv(close=close, features=feats)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(1)
    _play(env, [1] * 29)
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(1)
    with pytest.raises(ValueError, match="start 29 leaves no room"):
        env.reset(options={"start": 29})
    with pytest.raises(ValueError, match="episode_length must be in 1..29"):
        TradingEnv(close=close, features=feats, episode_length=30)


def test_ruin_terminates_the_episode():
    ts = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    close = pd.Series([10.0, 30.0, 30.0, 30.0], index=ts)
    env = TradingEnv(close=close, features=pd.DataFrame({"x": 0.0}, index=ts))
    env.reset(options={"start": 0})
    _, reward, terminated, truncated, info = env.step(0)  # all-in short, price triples
    assert terminated and not truncated and info["equity"] < 0
    assert reward == pytest.approx(np.log(1e-12))
