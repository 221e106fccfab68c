"""The PPO baseline: a few hundred steps of training on a small environment (the learning
machinery works), the export as a bundle (same probabilities as the torch policy,
tampering refused) and the live engine's replay of the exported policy (the same trades
as ``from_signals`` and as the environment on the policy's actions)."""

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import BundleIntegrityError, DataError
from alphatrade_lab.live import Engine, ModelStrategy, PaperBroker, ReplayFeed
from alphatrade_lab.rl.agents import (
    export_policy,
    policy_pipeline,
    policy_proba,
    train_ppo,
)
from alphatrade_lab.rl.env import TradingEnv

FEES = 0.001
PPO_SMALL = dict(total_timesteps=512, n_steps=128, batch_size=64, n_epochs=4)


@pytest.fixture(scope="module")
def hourly():
    return atl.data.resample(atl.data.load_sample(["AAA"]), "1h")


@pytest.fixture(scope="module")
def train_bars(hourly):
    return hourly.head(900).reset_index(drop=True)


@pytest.fixture(scope="module")
def agent(train_bars):
    return train_ppo(train_bars, seed=3, env_kwargs={"fees": FEES, "episode_length": 120},
                     **PPO_SMALL)


@pytest.fixture(scope="module")
def bundle_path(agent, tmp_path_factory):
    return export_policy(agent, tmp_path_factory.mktemp("ppo") / "ppo.atlb")


def test_training_moves_the_policy_and_records_its_curve(agent, train_bars):
    assert agent.timesteps >= PPO_SMALL["total_timesteps"]
    assert len(agent.losses) == 4  # one row per PPO update
    assert agent.losses["loss"].nunique() > 1
    assert (agent.losses["approx_kl"] > 0).all()  # each update changed the policy
    assert len(agent.episodes) >= 3 and (agent.episodes["length"] == 120).all()
    assert np.isfinite(agent.episodes["reward"]).all()
    fresh = train_ppo(train_bars, seed=3, env_kwargs={"fees": FEES, "episode_length": 120},
                      total_timesteps=1, n_steps=128, batch_size=64, n_epochs=4)
    w0 = fresh.model.policy.action_net.weight.detach().numpy()
    w1 = agent.model.policy.action_net.weight.detach().numpy()
    assert not np.allclose(w0, w1)  # same seed, same start: learning moved the weights
    assert agent.steps_per_second > 0


def test_the_same_seed_gives_the_same_agent(agent, train_bars):
    again = train_ppo(train_bars, seed=3, env_kwargs={"fees": FEES, "episode_length": 120},
                      **PPO_SMALL)
    np.testing.assert_array_equal(again.model.policy.action_net.weight.detach().numpy(),
                                  agent.model.policy.action_net.weight.detach().numpy())
    pd.testing.assert_frame_equal(again.episodes, agent.episodes)


def test_export_round_trips_with_the_torch_probabilities(agent, bundle_path, hourly):
    X = atl.features.technical(hourly.iloc[900:1500])
    rows = X[agent.feature_names].dropna()
    torch_p = policy_proba(agent, rows)
    assert torch_p.shape == (len(rows), 2)
    bundle = atl.models.load_bundle(bundle_path)
    assert bundle.classes == [0, 1] and bundle.meta["rule"] == "argmax"
    got = bundle.predict_proba(rows).to_numpy()
    np.testing.assert_allclose(got, torch_p, atol=1e-6, rtol=0)
    np.testing.assert_allclose(policy_pipeline(agent).predict_proba(rows.to_numpy()),
                               torch_p, atol=1e-6, rtol=0)
    actions, _ = agent.model.predict(agent.scaled(rows).astype(np.float32),
                                     deterministic=True)
    sig = atl.models.signals(bundle, rows, rule="argmax")
    assert sig.frame["direction"].tolist() == actions.tolist()  # long = 1, flat = 0


def test_a_both_directions_agent_exports_three_classes(train_bars, tmp_path, hourly):
    agent = train_ppo(train_bars, direction="both", seed=0,
                      env_kwargs={"fees": FEES, "episode_length": 100}, total_timesteps=128,
                      n_steps=64, batch_size=32, n_epochs=1)
    bundle = atl.models.load_bundle(export_policy(agent, tmp_path / "both.atlb"))
    assert bundle.classes == [-1, 0, 1]
    rows = atl.features.technical(hourly.iloc[900:1300])[agent.feature_names].dropna()
    np.testing.assert_allclose(bundle.predict_proba(rows).to_numpy(),
                               policy_proba(agent, rows), atol=1e-6, rtol=0)
    actions, _ = agent.model.predict(agent.scaled(rows).astype(np.float32),
                                     deterministic=True)
    direction = atl.models.signals(bundle, rows, rule="argmax").frame["direction"]
    assert (direction.to_numpy() + 1).tolist() == actions.tolist()  # 0 short, 1 flat, 2 long


def test_a_tampered_policy_file_is_refused(bundle_path, tmp_path):
    import zipfile

    bad = tmp_path / "tampered.atlb"
    with zipfile.ZipFile(bundle_path) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "model.skops":
                data = data[:-40] + bytes(40)  # edited weights
            dst.writestr(item, data)
    with pytest.raises(BundleIntegrityError):
        atl.models.load_bundle(bad)
    flipped = tmp_path / "flipped.atlb"  # the whole file no longer matches its sidecar
    raw = bytearray(bundle_path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    flipped.write_bytes(bytes(raw))
    (tmp_path / "flipped.atlb.sha256").write_text(
        (bundle_path.parent / (bundle_path.name + ".sha256")).read_text())
    with pytest.raises(BundleIntegrityError):
        atl.models.load_bundle(flipped)


def test_the_engine_replays_the_policy_as_the_backtest_and_the_env_trade(agent, bundle_path,
                                                                         hourly):
    held = hourly.iloc[900:1300].reset_index(drop=True)  # 400 bars never trained on
    bundle = atl.models.load_bundle(bundle_path)
    sig = atl.models.signals(bundle, atl.features.technical(held), rule="argmax")
    close = atl.data.to_wide(held, "close")
    pf = sig.backtest(close, fees=FEES)
    result = Engine(ReplayFeed(held), ModelStrategy(bundle_path, rule="argmax"),
                    PaperBroker(100.0, fees=FEES)).run()
    assert len(pf.trades) > 3
    a, b = pf.trades.reset_index(drop=True), result.trades.reset_index(drop=True)
    assert len(a) == len(b)
    for c in ("entry_time", "exit_time"):
        assert (a[c].to_numpy() == b[c].to_numpy()).all(), c
    for c in ("size", "entry_price", "exit_price", "pnl"):
        np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy(), err_msg=c)
    np.testing.assert_allclose(result.equity[list(close.columns)].to_numpy(),
                               pf.equity.to_numpy(), rtol=1e-9)
    # the environment, stepped with the policy's actions from its first bar after the
    # warm-up, ends with the value from_signals gives those bars and actions
    env = TradingEnv(held, fees=FEES, direction="longonly")
    obs, info = env.reset(options={"start": 0})
    first = int(close.index.get_loc(info["timestamp"]))
    direction = sig.frame["direction"].to_numpy()
    done = False
    while not done:
        t = int(close.index.get_loc(info["timestamp"]))
        obs, _, term, trunc, info = env.step(int(direction[t]))
        done = term or trunc
    sub = close.iloc[first:]
    d = direction[first:]
    entries, exits = d == 1, d != 1
    entries[-1] = exits[-1] = False  # the episode ends at the last close, without a trade
    ref = atl.backtest.from_signals(sub, pd.DataFrame({"AAA": entries}, index=sub.index),
                                    pd.DataFrame({"AAA": exits}, index=sub.index), fees=FEES)
    assert info["equity"] == pytest.approx(float(ref.equity["AAA"].iloc[-1]), rel=1e-12)


def test_argmax_rule_in_signals_and_the_streaming_scorer(hourly):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bars = hourly.head(1200)
    X, y = atl.models.align(atl.features.technical(bars), atl.models.labels(bars))
    bundle = atl.models.train(X, y, make_pipeline(StandardScaler(), LogisticRegression()),
                              n_splits=2, progress=False)
    assert bundle.classes == [-1, 0, 1]
    feats = atl.features.technical(bars)
    p = bundle.predict_proba(feats).to_numpy()
    want = p.argmax(axis=1) - 1
    sig = atl.models.signals(bundle, feats, rule="argmax").frame
    assert sig["direction"].tolist() == want.tolist()
    np.testing.assert_array_equal(sig["confidence"].to_numpy(), p.max(axis=1))
    assert (sig["exit"] == (want != 1)).all()
    assert sig["direction"].nunique() == 3  # the flat class wins somewhere
    scorer = atl.models.StreamingScorer(bundle, rule="argmax")
    out = scorer.update(bars.iloc[:-1])
    assert out["direction"].tolist() == want[:-1].tolist()
    last = bars.iloc[-1].to_dict()
    one = scorer.update_one(**last)
    assert one["direction"] == want[-1]
    again = atl.models.StreamingScorer(bundle, rule="argmax")
    d, conf, _ = again.update_arrays(bars["symbol"].tolist(),
                                     pd.DatetimeIndex(bars["timestamp"]).asi8, bars["high"],
                                     bars["low"], bars["close"], bars["volume"])
    assert d.tolist() == want.tolist()
    with pytest.raises(ValueError, match="rule must be one of"):
        atl.models.signals(bundle, feats, rule="max")
    with pytest.raises(ValueError, match="rule must be one of"):
        ModelStrategy(bundle, rule="best")


def test_bad_training_input_is_refused(train_bars):
    with pytest.raises(ValueError, match="env_kwargs\\['action'\\]"):
        train_ppo(train_bars, env_kwargs={"action": "continuous"}, total_timesteps=8)
    with pytest.raises(ValueError, match="total_timesteps"):
        train_ppo(train_bars, total_timesteps=0)
    with pytest.raises(DataError):
        train_ppo(train_bars.head(150), total_timesteps=8)  # all warm-up
