"""Many trading environments stepped at once by numba kernels (no Gymnasium needed).

Each environment trades one symbol from its own start bar, by exactly the rules of
:class:`~alphatrade_lab.rl.TradingEnv` (the same kernels), so environment ``e`` of a
:class:`VecTradingEnv` gives, step by step, the numbers of a ``TradingEnv`` over that
symbol started at the same bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.backtest import kernels as backtest_nb
from alphatrade_lab.errors import DataError
from alphatrade_lab.features import FeatureSpec
from alphatrade_lab.rl import kernels as nb
from alphatrade_lab.rl.config import EnvConfig
from alphatrade_lab.rl.panel import SymbolData, first_nan, symbol_data

__all__ = ["VecTradingEnv"]


def _symbols(bars: pd.DataFrame | None, close: Any, symbols: Sequence[Any] | None
             ) -> list[Any]:
    if symbols is not None:
        return list(symbols)
    if bars is not None:
        return list(pd.unique(bars["symbol"])) if "symbol" in bars.columns else [None]
    if isinstance(close, pd.DataFrame):
        return list(close.columns)
    return [None]


class VecTradingEnv:
    """``n_envs`` trading environments over one or more symbols, stepped together.

    Parameters
    ----------
    bars, close, features, spec
        As in :class:`~alphatrade_lab.rl.TradingEnv`, for every symbol of ``symbols``
        (default: all of ``bars``, or the columns of a wide ``close``).
    symbols
        The symbols to trade.
    n_envs
        Number of environments (default: one per symbol).
    env_symbols
        The symbol of each environment, as positions in ``symbols`` (default
        ``e % len(symbols)``).
    episode_length
        Steps per episode (the same for all environments).
    seed
        Seed of the start bars drawn by :meth:`reset` and on every automatic reset.
    action, direction, fees, slippage, init_cash, size_granularity, reward,
    risk_penalty, include_position
        As in :class:`~alphatrade_lab.rl.TradingEnv` (``fees``, ``slippage`` and
        ``size_granularity`` may give one value per environment).
    copy
        Return fresh arrays from :meth:`step` (default). False: the environment's own
        buffers, overwritten by the next step (no allocation; like the ``copy`` option
        of Gymnasium's vector environments).

    Notes
    -----
    Actions are an array with one action per environment: integers for discrete
    actions (0 short, 1 flat, 2 long; longonly: 0 flat, 1 long), target weights for
    continuous ones. An environment whose episode ends is reset at once to a new start
    drawn from (seed, environment, episode number); its last observation is in
    ``info["final_observation"]`` (the row of its position in ``info["ended"]``). Every
    bar of every symbol after the warm-up must hold a finite close and finite features
    (DataError naming the symbol, column and timestamp otherwise).

    Examples
    --------
    >>> import numpy as np, alphatrade_lab as atl
    >>> bars = atl.data.load_sample(["AAA", "BBB"])
    >>> bars = bars.groupby("symbol", observed=True).head(500)
    >>> env = VecTradingEnv(bars, n_envs=4, episode_length=50, fees=0.001, seed=1)
    >>> obs, info = env.reset()
    >>> obs.shape, env.symbols
    ((4, 18), ['AAA', 'BBB'])
    >>> obs, reward, terminated, truncated, info = env.step(np.full(4, 2))   # all long
    >>> reward.shape, info["fees"].round(4).tolist()
    ((4,), [0.0999, 0.0999, 0.0999, 0.0999])
    """

    def __init__(self, bars: pd.DataFrame | None = None, *,
                 symbols: Sequence[Any] | None = None, close: Any = None,
                 features: pd.DataFrame | None = None, spec: FeatureSpec | None = None,
                 n_envs: int | None = None, env_symbols: Sequence[int] | None = None,
                 episode_length: int = 256, seed: int = 0, action: str = "discrete",
                 direction: str = "both", fees: Any = 0.0, slippage: Any = 0.0,
                 init_cash: float = 100.0, size_granularity: Any = None,
                 reward: str = "log", risk_penalty: float = 0.0,
                 include_position: bool = False, copy: bool = True) -> None:
        names = _symbols(bars, close, symbols)
        data = [symbol_data(bars, symbol=s, close=close, features=features, spec=spec)
                for s in names]
        self.symbols = [d.symbol for d in data]
        self.n_envs = len(names) if n_envs is None else int(n_envs)
        if self.n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs!r}")
        self.config = EnvConfig.build(self.n_envs, action=action, direction=direction,
                                      fees=fees, slippage=slippage, init_cash=init_cash,
                                      size_granularity=size_granularity, reward=reward,
                                      risk_penalty=risk_penalty,
                                      include_position=include_position)
        self.episode_length = int(episode_length)
        if self.episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length!r}")
        self.seed = int(seed)
        self._check(data)
        self.columns = list(data[0].columns) + (["position_weight"] if include_position
                                                else [])
        self.timestamps = [d.timestamps for d in data]
        self.offsets = np.concatenate([[0], np.cumsum([len(d.close) for d in data])])
        self.close = np.concatenate([d.close for d in data])
        # float32, as the observations: half the memory traffic of a step, the same values.
        self.features = np.concatenate([d.features for d in data]).astype(np.float32)
        which = (np.arange(self.n_envs) % len(data) if env_symbols is None
                 else np.asarray(env_symbols, dtype=np.int64))
        if which.shape != (self.n_envs,) or which.min() < 0 or which.max() >= len(data):
            raise ValueError(f"env_symbols must give each of the {self.n_envs} environments a "
                             f"position in symbols (0..{len(data) - 1}), got {env_symbols!r}")
        self.env_symbols = which
        self._lo = self.offsets[which].astype(np.int64)
        self._hi = (self.offsets[which + 1] - 1 - self.episode_length).astype(np.int64)
        k, f = self.n_envs, len(self.columns)
        self._cstate, self._gstate = backtest_nb.init_state_nb(k, k, np.full(k,
                                                                             init_cash * 1.0))
        self._counts = np.zeros((3, k), dtype=np.int64)
        self._rec_o, self._rec_t = nb.empty_records()
        self._rows = np.zeros(k, dtype=np.int64)
        self._ends = np.zeros(k, dtype=np.int64)
        self._prev = np.zeros(k)
        self._episodes = np.zeros(k, dtype=np.int64)
        self._obs = np.zeros((k, f), dtype=np.float32)
        self._final = np.zeros((k, f), dtype=np.float32)
        self._out = {"reward": np.zeros(k), "terminated": np.zeros(k, dtype=np.bool_),
                     "truncated": np.zeros(k, dtype=np.bool_), "equity": np.zeros(k),
                     "fees": np.zeros(k)}
        self.copy = bool(copy)
        self._started = False

    def _check(self, data: list[SymbolData]) -> None:
        first = data[0].columns
        for d in data:
            if d.columns != first:
                raise DataError(f"symbol {d.symbol!r}: feature columns {d.columns} differ "
                                f"from {data[0].symbol!r}'s {first}")
            if len(d.close) - 1 < self.episode_length:
                raise DataError(f"symbol {d.symbol!r}: {len(d.close)} bars after the warm-up, "
                                f"too few for episodes of {self.episode_length} steps")
            problem = first_nan(d)
            if problem is not None:
                raise DataError(f"VecTradingEnv: non-finite value after the warm-up: {problem};"
                                " fill the features first (atl.features.handle_nan)")

    @property
    def n_features(self) -> int:
        """Length of an observation row."""
        return len(self.columns)

    def reset(self, seed: int | None = None, starts: Any = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start every environment afresh: at ``starts[e]`` (a bar number after its
        symbol's warm-up; -1: drawn) or at a start drawn from ``seed`` (default: the
        constructor's). Returns the observations ``(n_envs, n_features)`` and info."""
        if seed is not None:
            self.seed = int(seed)
        self._episodes[:] = 0
        rows = np.full(self.n_envs, -1, dtype=np.int64)
        if starts is not None:
            given = np.asarray(starts, dtype=np.int64)
            if given.shape != (self.n_envs,):
                raise ValueError(f"starts: expected {self.n_envs} start bars, got shape "
                                 f"{given.shape}")
            span = self._hi - self._lo
            bad = (given != -1) & ((given < 0) | (given > span))
            if bad.any():
                e = int(np.flatnonzero(bad)[0])
                raise ValueError(f"starts: environment {e} ({self.symbols[self.env_symbols[e]]!r})"
                                 f" cannot start at bar {given[e]}: it must be in 0..{span[e]}")
            rows = np.where(given >= 0, given + self._lo, -1)
        nb.vec_reset_nb(rows, self.seed, self._episodes, self._lo, self._hi,
                        self.episode_length, self.config.init_cash, self.close, self.features,
                        self.config.include_position, self._cstate, self._gstate, self._counts,
                        self._rows, self._ends, self._prev, self._obs)
        self._started = True
        return self._obs.copy(), {"bar": self._rows - self._lo}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, np.ndarray]]:
        """Every environment acts and moves one bar; ended episodes restart at once.

        Returns ``(obs, reward, terminated, truncated, info)``: arrays with one row per
        environment; ``info`` holds ``equity`` and ``fees`` (of the episode, at the end
        of the step), ``position`` and ``bar`` (after any restart), ``ended`` (the
        environments whose episode ended) and ``final_observation`` (their last
        observations, one row per ``ended``).
        """
        if not self._started:
            raise RuntimeError("VecTradingEnv.step: call reset() first")
        c = self.config
        targets = c.targets(actions, self.n_envs)
        out = self._out
        nb.vec_step_nb(targets, c.mode, c.direction, c.fees, c.slippage, c.gran,
                       c.risk_penalty, c.reward, self.close, self.features,
                       c.include_position, c.init_cash, self.episode_length, self._lo,
                       self._hi, self.seed, self._episodes, self._cstate, self._gstate,
                       self._counts, self._rec_o, self._rec_t, self._rows, self._ends,
                       self._prev, self._obs, out["reward"], out["terminated"],
                       out["truncated"], out["equity"], out["fees"], self._final)
        ended = np.flatnonzero(np.logical_or(out["terminated"], out["truncated"]))
        if self.copy:
            out = {key: v.copy() for key, v in out.items()}
        info = {"equity": out["equity"], "fees": out["fees"],
                "position": self._cstate[:, backtest_nb.C_POS].copy(),
                "bar": self._rows - self._lo, "ended": ended,
                "final_observation": self._final[ended]}
        return (self._obs.copy() if self.copy else self._obs, out["reward"], out["terminated"],
                out["truncated"], info)
