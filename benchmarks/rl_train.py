"""Wall time to train the PPO baseline agent on the sample, and where the time goes.

Run with ``.venv/bin/python benchmarks/rl_train.py`` (``--help`` for the options). The
agent is the one of ``research/configs/rl_ppo.toml`` (long-only ``TradingEnv`` on AAA's
hourly bars of the training period, the first 75% of the year; fees 0.001; episodes of
256 bars; PPO with n_steps 1024, batch 256, 10 epochs, a 64x64 tanh actor and critic),
trained by :func:`alphatrade_lab.rl.agents.train_ppo` for ``--timesteps`` steps (default
20,000; the research config's 100,000 take five times as long, PPO's cost being linear
in the steps).

Each side runs ``--repeats`` times (after one untimed warm-up run of 2,048 steps that
compiles the kernels and loads torch) and reports the min and median wall time:

- **train**: ``train_ppo``'s ``learn`` (rollouts and PPO updates);
- **env only** (the peer): the same number of steps of the same wrapped environment
  (``Monitor`` over the scaled ``TradingEnv``) with actions drawn at random, resetting
  at each episode's end: the part of training that is the environment.

The ratio train / env only says how much of the wall time is the learner (torch's
forward and backward passes), not the environment.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import alphatrade_lab as atl
from alphatrade_lab.rl.agents import _observation_stats, _Scaled, train_ppo
from alphatrade_lab.rl.evaluate import load_config


def env_only(train, env_kwargs: dict, steps: int, seed: int) -> float:
    """Seconds for ``steps`` random-action steps of the wrapped training environment."""
    from stable_baselines3.common.monitor import Monitor

    from alphatrade_lab.rl.env import TradingEnv

    env = TradingEnv(train, action="discrete", direction="longonly", **env_kwargs)
    mean, scale = _observation_stats(env.data.features)
    wrapped = Monitor(_Scaled(env, mean, scale))
    wrapped.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, 2, steps)
    t0 = time.perf_counter()
    for a in actions.tolist():
        _, _, term, trunc, _ = wrapped.step(a)
        if term or trunc:
            wrapped.reset()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    config = load_config(os.path.join(os.path.dirname(__file__), "..", "research",
                                      "configs", "rl_ppo.toml"))
    bars = atl.data.resample(atl.data.load_sample(["AAA"]), "1h")
    cut = bars["timestamp"].quantile(1.0 - config["data"]["holdout"])
    train = bars[bars["timestamp"] < cut].reset_index(drop=True)
    ppo = dict(config["ppo"], total_timesteps=args.timesteps)
    ppo["net_arch"] = tuple(ppo["net_arch"])
    env_kwargs = dict(config["env"])
    import torch

    print(f"{len(train)} hourly training bars of AAA; {args.timesteps:,} steps; "
          f"{args.repeats} repeats; torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    train_ppo(train, env_kwargs=env_kwargs, **dict(ppo, total_timesteps=2048))  # warm-up
    env_only(train, env_kwargs, 2048, 0)
    times: dict[str, list[float]] = {"train": [], "env only": []}
    for r in range(args.repeats):
        agent = train_ppo(train, seed=r, env_kwargs=env_kwargs, **ppo)
        times["train"].append(agent.seconds)
        times["env only"].append(env_only(train, env_kwargs, agent.timesteps, r))
    for side, t in times.items():
        print(f"{side:>9}: min {min(t):7.2f} s, median {statistics.median(t):7.2f} s "
              f"({args.timesteps / min(t):,.0f} steps/s at the min)")
    ratio_min = min(times["train"]) / min(times["env only"])
    ratio_med = statistics.median(times["train"]) / statistics.median(times["env only"])
    print(f"train / env only: {ratio_min:.1f}x at the min, {ratio_med:.1f}x at the median")
    per_100k = min(times["train"]) * 100_000 / args.timesteps
    print(f"the research config's 100,000 steps: about {per_100k:.0f} s per agent "
          f"(load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
