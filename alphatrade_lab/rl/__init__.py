"""Reinforcement learning on the backtest's rules: trading environments.

:class:`TradingEnv` (a Gymnasium environment, optional extra ``rl``) trades one symbol
bar by bar; :class:`VecTradingEnv` steps many symbols and start dates at once in numba
kernels and needs no Gymnasium. Both fill orders with the backtest engine's own
functions, so an agent's trades equal ``from_signals`` / ``from_weights`` on the same
actions. ``TradingEnv`` is loaded when first asked for, so that ``import
alphatrade_lab.rl`` works without the extra.

>>> import alphatrade_lab as atl
>>> bars = atl.data.load_sample(["AAA"]).head(500)
>>> env = atl.rl.VecTradingEnv(bars, n_envs=2, episode_length=20)
>>> env.reset(seed=0)[0].shape
(2, 18)
"""

from importlib import import_module
from typing import Any

from alphatrade_lab.rl.vec import VecTradingEnv

__all__ = ["TradingEnv", "VecTradingEnv"]

_LAZY = {"TradingEnv": "alphatrade_lab.rl.env"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'alphatrade_lab.rl' has no attribute {name!r}")
