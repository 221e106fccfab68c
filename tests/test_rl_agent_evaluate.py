"""Walk-forward comparison of the PPO agent with its baselines: the table's numbers are
the backtest's on the test blocks, choices use the training part only, bad input is
refused with clear errors."""

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.rl.agents import policy_bundle, train_ppo
from alphatrade_lab.rl.evaluate import (
    DEFAULT_CONFIG,
    STRATEGY_NAMES,
    load_config,
    plot_folds,
    plot_training_curve,
    walk_forward_compare,
)

FEES = 0.001
TINY = dict(total_timesteps=128, n_steps=64, batch_size=32, n_epochs=2)
SETTINGS = dict(n_splits=2, min_train_bars=300, fees=FEES, ma_fast=[5, 10],
                ma_slow=[30, 60])


@pytest.fixture(scope="module")
def bars():
    return atl.data.resample(atl.data.load_sample(["AAA"]), "1h").head(2000)


def tiny_trainer(train_bars, fold=0):
    return train_ppo(train_bars, seed=fold, env_kwargs={"fees": FEES, "episode_length": 60},
                     **TINY)


@pytest.fixture(scope="module")
def result(bars):
    return walk_forward_compare(bars, train_agent=tiny_trainer, **SETTINGS)


def test_the_table_has_every_fold_and_strategy(result):
    t = result.table
    assert t.index.names == ["fold", "strategy"]
    assert t.index.tolist() == [(f, s) for f in (0, 1) for s in STRATEGY_NAMES]
    for c in ("total_return", "sharpe", "max_drawdown", "trades", "test_start", "test_end"):
        assert c in t.columns
    assert np.isfinite(t["total_return"]).all()
    assert (t.xs("buy_and_hold", level="strategy")["trades"] == 1).all()
    assert len(result.agents) == 2
    assert set(result.summary().index) == set(STRATEGY_NAMES)


def test_each_row_is_the_backtest_of_its_test_block(result, bars):
    close = atl.data.to_wide(bars, "close")["AAA"]
    for fold in (0, 1):
        row = result.table.loc[(fold, "buy_and_hold")]
        test = close.loc[row["test_start"]:row["test_end"]]
        entries = pd.Series(False, index=test.index)
        entries.iloc[0] = True
        pf = atl.backtest.from_signals(test, entries, False, fees=FEES)
        assert row["total_return"] == pytest.approx(pf.total_return, rel=1e-12)
        agent = result.agents[fold]
        hist = bars[bars["timestamp"] <= row["test_end"]]
        X = atl.features.technical(hist, agent.spec)
        X = X[X["timestamp"] >= row["test_start"]]
        d = atl.models.signals(policy_bundle(agent), X, rule="argmax").frame["direction"]
        pf = atl.backtest.from_signals(test, pd.Series(d.to_numpy() == 1, index=test.index),
                                       pd.Series(d.to_numpy() != 1, index=test.index),
                                       fees=FEES)
        got = result.table.loc[(fold, "agent")]
        assert got["total_return"] == pytest.approx(pf.total_return, rel=1e-12)
        assert got["trades"] == pf.stats()["trade_count"]


def test_choices_do_not_see_the_test_blocks(result, bars):
    """Prices after fold 0's training part changed: fold 0's MA pair, its deflated Sharpe
    and the agent trained on it stay the same."""
    start = result.table.loc[(0, "agent"), "test_start"]
    changed = bars.copy()
    later = changed["timestamp"] >= start
    factor = np.linspace(1.0, 1.5, int(later.sum()))
    for c in ("open", "high", "low", "close"):
        changed.loc[later, c] = changed.loc[later, c] * factor
    again = walk_forward_compare(changed, train_agent=tiny_trainer, **SETTINGS)
    for c in ("params", "deflated_sharpe"):
        assert again.table.loc[(0, "ma_cross"), c] == result.table.loc[(0, "ma_cross"), c]
    np.testing.assert_array_equal(
        again.agents[0].model.policy.action_net.weight.detach().numpy(),
        result.agents[0].model.policy.action_net.weight.detach().numpy())
    assert again.table.loc[(0, "buy_and_hold"), "total_return"] != \
        result.table.loc[(0, "buy_and_hold"), "total_return"]
    ds = result.table.loc[(0, "ma_cross"), "deflated_sharpe"]
    assert 0.0 <= ds <= 1.0


def test_the_default_trainer_is_seeded(bars):
    kw = dict(SETTINGS, min_train_bars=200, ppo=TINY, env={"episode_length": 60}, seed=5)
    a = walk_forward_compare(bars.head(1400), **kw)
    b = walk_forward_compare(bars.head(1400), **kw)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.agents[1].timesteps >= TINY["total_timesteps"]


def test_too_short_data_and_bad_input_are_refused(bars):
    with pytest.raises(DataError, match="fold 0 of 4 has .* training bars"):
        walk_forward_compare(bars.head(600), n_splits=4, min_train_bars=300,
                             train_agent=tiny_trainer)
    two = atl.data.resample(atl.data.load_sample(["AAA", "BBB"]), "1h")
    two = two[two["timestamp"] < two["timestamp"].min() + pd.Timedelta("5D")]
    with pytest.raises(DataError, match="2 symbols"):
        walk_forward_compare(two, train_agent=tiny_trainer)
    with pytest.raises(DataError, match="symbol 'ZZZ' is not in the bars"):
        walk_forward_compare(bars, symbol="ZZZ", train_agent=tiny_trainer)


def test_load_config_refuses_unknown_keys(tmp_path):
    assert load_config() == DEFAULT_CONFIG
    path = tmp_path / "rl.toml"
    path.write_text("[ppo]\ntotal_timesteps = 10\nlearning_rat = 0.1\n")
    with pytest.raises(DataError, match=r"rl\.toml: ppo: unknown key 'learning_rat'"):
        load_config(path)
    path.write_text("[ppoo]\n")
    with pytest.raises(DataError, match="unknown key 'ppoo'"):
        load_config(path)
    path.write_text("[ppo\n")
    with pytest.raises(DataError, match="cannot read the config"):
        load_config(path)
    with pytest.raises(DataError, match=r"config \[ppo\]: expected a table"):
        load_config({"ppo": 3})
    got = load_config({"ppo": {"total_timesteps": 10}, "features": {"ma_windows": [5]}})
    assert got["ppo"]["total_timesteps"] == 10 and got["ppo"]["n_steps"] == 1024
    assert got["features"] == {"ma_windows": [5]}


def test_plots(result):
    fig = plot_folds(result.table, "sharpe")
    assert len(fig.axes[0].patches) == 2 * len(STRATEGY_NAMES)
    fig = plot_training_curve(result.agents)
    assert len(fig.axes[0].get_legend().get_texts()) == 2
    with pytest.raises(DataError, match="metric 'alpha'"):
        plot_folds(result.table, "alpha")
