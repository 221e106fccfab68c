#!/usr/bin/env python3
"""Train the PPO baseline agent, judge it in walk-forward against simple baselines, export
it and replay it through the live engine, from a TOML config.

Usage, from the repository root with the project's environment active
(``source .venv/bin/activate``)::

    research/rl_ppo.py --config research/configs/rl_ppo.toml

or without activating it: ``.venv/bin/python research/rl_ppo.py --config ...``.
``research/rl_ppo.py --help`` lists the options. Needs the optional extra ``rl``.

Steps (one symbol of the embedded sample, resampled to ``[data] timeframe``):

1. The last ``holdout`` share of time is set aside: never trained, chosen or validated on.
2. On the rest (the training period), :func:`alphatrade_lab.rl.evaluate.walk_forward_compare`:
   purged walk-forward folds, an agent trained on each fold's training part, against
   buy and hold, the best MA crossover of the training part (with its deflated Sharpe)
   and a random policy.
3. A final agent is trained on the whole training period and exported
   (``ppo.atlb``, skops, hash-checked); the file is reloaded, its probabilities checked
   against the torch policy's, and it is replayed bar by bar over the holdout through
   ``live.Engine`` + ``PaperBroker``, checked equal to ``from_signals`` on its actions.

Writes ``report.md``, ``walk_forward.csv``, ``training_curve.png``, ``folds.png`` and
the bundle to a new folder under ``out`` (``runs/`` by default, git-ignored), and prints
the wall time of each step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

import alphatrade_lab as atl
from alphatrade_lab.pipeline import md_table, new_run_dir
from alphatrade_lab.rl.evaluate import (
    load_config,
    plot_folds,
    plot_training_curve,
    walk_forward_compare,
)

ROOT = Path(__file__).resolve().parents[1]


def _split(config: dict) -> tuple:
    data = config["data"]
    bars = atl.data.resample(atl.data.load_sample([data["symbol"]]), data["timeframe"])
    holdout = float(data["holdout"])
    if not 0.0 < holdout < 1.0:
        raise atl.DataError(f"config [data] holdout must be in (0, 1), got {holdout!r}")
    cut = bars["timestamp"].quantile(1.0 - holdout)
    train = bars[bars["timestamp"] < cut].reset_index(drop=True)
    held = bars[bars["timestamp"] >= cut].reset_index(drop=True)
    return train, held


def _first(stats):
    """The one symbol's row of a stats frame (a Series stays as it is)."""
    return stats.iloc[0] if isinstance(stats, pd.DataFrame) else stats


def _replay(path: Path, agent, held, fees: float) -> tuple[list[str], dict]:
    """The exported file reloaded, checked, and replayed through the live engine."""
    from alphatrade_lab.live import Engine, ModelStrategy, PaperBroker, ReplayFeed
    from alphatrade_lab.rl.agents import policy_proba

    bundle = atl.models.load_bundle(path)
    X = atl.features.technical(held, agent.spec)
    rows = X[agent.feature_names].dropna()
    gap = float(np.abs(bundle.predict_proba(rows).to_numpy() - policy_proba(agent, rows)).max())
    sig = atl.models.signals(bundle, X, rule="argmax")
    close = atl.data.to_wide(held, "close")
    pf = sig.backtest(close, fees=fees)
    t0 = time.perf_counter()
    live = Engine(ReplayFeed(held), ModelStrategy(path, rule="argmax"),
                  PaperBroker(100.0, fees=fees)).run()
    seconds = time.perf_counter() - t0
    same = (len(live.trades) == len(pf.trades) and np.array_equal(
        live.trades["pnl"].to_numpy(), pf.trades["pnl"].to_numpy()))
    entries = np.zeros(len(close), dtype=bool)
    entries[0] = True
    hold = atl.backtest.from_signals(close, entries, False, fees=fees)
    stats = {"agent": _first(pf.stats()), "buy_and_hold": _first(hold.stats())}
    lines = [f"- largest |bundle - torch| action probability on {len(rows)} holdout rows: "
             f"{gap:.2e}",
             f"- live engine replay of {len(held)} holdout bars in {seconds:.1f} s: "
             f"{len(live.trades)} trades, equal to from_signals on the policy's actions: "
             f"{same}"]
    return lines, stats


def main(argv: list[str] | None = None) -> Path:
    """Run the study of a config file; returns the run folder."""
    parser = argparse.ArgumentParser(
        prog="research/rl_ppo.py",
        description="Train PPO on the embedded sample market, compare it in purged "
                    "walk-forward with buy and hold, the best MA crossover and a random "
                    "policy, export the final policy as a bundle and replay it through "
                    "the live engine on a held-out stretch.")
    parser.add_argument("--config", type=Path,
                        default=ROOT / "research" / "configs" / "rl_ppo.toml",
                        help="TOML settings: data, features, env, ppo, validation, "
                             "baselines (default: research/configs/rl_ppo.toml)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder that receives the run folder (default: the config's "
                             "out, else runs/)")
    args = parser.parse_args(argv)
    matplotlib.use("Agg")
    from alphatrade_lab.rl.agents import export_policy, train_ppo

    config = load_config(args.config)
    start = time.perf_counter()
    run_dir = new_run_dir(Path(args.out or config["out"]), "rl-ppo")
    (run_dir / "config.toml").write_text(args.config.read_text())
    train, held = _split(config)
    spec = atl.features.FeatureSpec(**config["features"])
    env, ppo, val = config["env"], dict(config["ppo"]), config["validation"]
    ppo["net_arch"] = tuple(ppo["net_arch"])
    fees, slippage = float(env["fees"]), float(env["slippage"])
    env_kwargs = {k: v for k, v in env.items() if k not in ("fees", "slippage")}
    print(f"{len(train)} training bars, {len(held)} holdout bars of {config['data']['symbol']}")

    t0 = time.perf_counter()
    wf = walk_forward_compare(
        train, spec=spec, n_splits=int(val["n_splits"]), embargo=val["embargo"],
        min_train_bars=int(val["min_train_bars"]), fees=fees, slippage=slippage,
        ma_fast=config["baselines"]["ma_fast"], ma_slow=config["baselines"]["ma_slow"],
        ppo=ppo, env=env_kwargs, seed=int(config["seed"]), progress=bool(config["progress"]))
    wf_seconds = time.perf_counter() - t0
    print(f"walk-forward: {wf_seconds:.1f} s")
    wf.table.to_csv(run_dir / "walk_forward.csv")
    plot_folds(wf.table).savefig(run_dir / "folds.png", dpi=110)

    final = train_ppo(train, spec=spec, seed=int(config["seed"]),
                      env_kwargs={"fees": fees, "slippage": slippage, **env_kwargs},
                      progress=bool(config["progress"]), **ppo)
    print(f"final agent: {final.timesteps} steps in {final.seconds:.1f} s "
          f"({final.steps_per_second:,.0f} steps/s)")
    plot_training_curve([final]).savefig(run_dir / "training_curve.png", dpi=110)
    path = export_policy(final, run_dir / "ppo.atlb")
    replay_lines, holdout = _replay(path, final, held, fees)
    seconds = time.perf_counter() - start
    cols = ["total_return", "sharpe", "max_drawdown", "trades"]
    hold_table = md_table(pd.DataFrame(holdout).T[["total_return", "sharpe", "max_drawdown",
                                                   "trade_count"]].astype(float))
    report = [
        "# PPO baseline agent", "",
        f"Config: `{args.config.name}` (copied to `config.toml`). Symbol "
        f"{config['data']['symbol']}, {config['data']['timeframe']} bars: {len(train)} in "
        f"the training period, {len(held)} held out.", "",
        "## Walk-forward on the training period", "",
        f"{val['n_splits']} purged walk-forward folds (embargo {val['embargo']}), an agent "
        f"of {ppo['total_timesteps']} steps trained on each fold's training part "
        f"({wf_seconds:.0f} s).", "",
        md_table(wf.table[cols + ["params", "deflated_sharpe"]]), "",
        "Mean and standard deviation over the folds:", "",
        md_table(wf.summary()), "",
        "![folds](folds.png)", "",
        "## Final agent, exported and replayed on the holdout", "",
        f"Trained on the whole training period: {final.timesteps} steps in "
        f"{final.seconds:.1f} s ({final.steps_per_second:,.0f} steps/s).", "",
        "![training curve](training_curve.png)", "",
        *replay_lines, "",
        hold_table, "",
        f"Finished in {seconds:.1f} s.", ""]
    (run_dir / "report.md").write_text("\n".join(report))
    print(f"report written to {run_dir / 'report.md'} ({seconds:.1f} s wall time)")
    return run_dir


if __name__ == "__main__":
    main()
