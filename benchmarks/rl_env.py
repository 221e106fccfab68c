"""Environment steps per second: the numba VecTradingEnv against a plain-Python Gymnasium loop.

Run with ``.venv/bin/python benchmarks/rl_env.py`` (``--help`` for the sizes). Both sides
trade the sample market's minute bars (``atl.data.load_sample()``, default technical
features, fees 0.1%, slippage 0.05%) by the same kernels and rules:

* the peer is the loop a Gymnasium user writes: ``TradingEnv`` over one symbol,
  ``obs, reward, terminated, truncated, info = env.step(action)`` one step at a time, a
  ``reset()`` at each episode's end;
* ours is ``VecTradingEnv`` with ``--envs`` environments over the 5 symbols (random
  starts), one ``step(actions)`` call per batch of actions, automatic resets.

Actions are drawn beforehand (uniform over the action space) and the same episode
length is used on both sides. Each side is run once to warm up (numba caches), then the
two are timed alternately ``--repeats`` times; min and median of the steps per second
are printed, with the ratios of the medians and of the best runs, and the load average
before and after. The vectorised side is timed on all numba threads and on one: on a
shared machine whose cores are busy, a parallel region waits for its slowest thread and
one thread can be the faster.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numba
import numpy as np

import alphatrade_lab as atl
from alphatrade_lab.rl import TradingEnv, VecTradingEnv

TARGET_RATIO = 100.0
TARGET_RATE = 1_000_000.0
COSTS = {"fees": 0.001, "slippage": 0.0005}


def single_loop(env: TradingEnv, actions: np.ndarray) -> float:
    """Seconds for ``len(actions)`` steps of a plain Gymnasium loop."""
    t0 = time.perf_counter()
    env.reset(seed=0)
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return time.perf_counter() - t0


def vec_loop(env: VecTradingEnv, actions: np.ndarray) -> float:
    """Seconds for ``len(actions)`` batched steps (``actions[i]``: one per environment)."""
    t0 = time.perf_counter()
    env.reset(seed=0)
    for a in actions:
        env.step(a)
    return time.perf_counter() - t0


def _draw(mode: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if mode == "discrete":
        return rng.integers(0, 3, size=shape)
    return rng.uniform(-1, 1, size=shape + (1,)).astype(np.float32)


def _spread(rates: list[float]) -> str:
    return f"min {min(rates):>12,.0f}  median {statistics.median(rates):>12,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=4096, help="vectorised environments")
    parser.add_argument("--batches", type=int, default=500, help="vectorised step calls")
    parser.add_argument("--single-steps", type=int, default=50_000,
                        help="steps of the plain-Python loop")
    parser.add_argument("--episode-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bars = atl.data.load_sample()
    rng = np.random.default_rng(0)
    print("load average before (1, 5, 15 min): "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg())
          + f"; {os.cpu_count()} CPUs, {numba.get_num_threads()} numba threads")
    verdicts: dict[int, list[bool]] = {}
    for mode in ("discrete", "continuous"):
        single = TradingEnv(bars, symbol="AAA", action=mode,
                            episode_length=args.episode_length, **COSTS)
        vec = VecTradingEnv(bars, n_envs=args.envs, action=mode,
                            episode_length=args.episode_length, **COSTS)
        one = _draw(mode, (args.single_steps,), rng)
        many = _draw(mode, (args.batches, args.envs), rng)
        if mode == "continuous":
            many = many[..., 0]
        single_loop(single, one[:1000])
        vec_loop(vec, many[:5])
        threads = sorted({numba.get_num_threads(), 1}, reverse=True)
        rates: dict[str, list[float]] = {"single": [], **{f"vec{t}": [] for t in threads}}
        default = numba.get_num_threads()
        for _ in range(args.repeats):
            rates["single"].append(len(one) / single_loop(single, one))
            for t in threads:
                numba.set_num_threads(t)
                rates[f"vec{t}"].append(many.size / vec_loop(vec, many))
            numba.set_num_threads(default)
        print(f"{mode}: {len(vec.close):,} bars of {len(vec.symbols)} symbols, "
              f"{vec.n_features} features, episodes of {args.episode_length} steps, "
              f"{args.repeats} repeats, steps/s")
        print(f"  TradingEnv, Python loop ({len(one):,} steps):   {_spread(rates['single'])}")
        single_med = statistics.median(rates["single"])
        for t in threads:
            r = rates[f"vec{t}"]
            med = statistics.median(r) / single_med
            best = max(r) / max(rates["single"])
            print(f"  VecTradingEnv, {args.envs} envs x {args.batches} calls, {t} thread(s): "
                  f"{_spread(r)}  ratio {med:,.0f}x (medians), {best:,.0f}x (best runs)")
            verdicts.setdefault(t, []).append(min(med, best) >= TARGET_RATIO
                                              and statistics.median(r) >= TARGET_RATE)
    print("load average after (1, 5, 15 min): "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    for t, ok in verdicts.items():
        print(f"goal (>= {TARGET_RATIO:.0f}x and >= {TARGET_RATE:,.0f} steps/s vectorised, both "
              f"modes) with {t} numba thread(s): {'met' if all(ok) else 'NOT met'}")

if __name__ == "__main__":
    main()
