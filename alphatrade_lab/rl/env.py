"""A Gymnasium environment that trades one symbol by the backtest engine's own rules.

At each step the agent sees the features of bar t (known at t's close), chooses a
target, which fills at t's close as a ``from_signals`` (discrete) or ``from_weights``
(continuous) order would, with the same fees and slippage; the environment then moves
to bar t + 1 and pays the reward: the return of the value at t + 1's close over the
value before the trade at t (fees and slippage included), as a log return (default) or a
simple return ``r``, minus ``risk_penalty * r ** 2`` when that is set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

try:
    import gymnasium as gym
    from gymnasium import spaces
except ImportError as exc:  # pragma: no cover - exercised by tests/test_project.py
    raise ImportError("alphatrade_lab.rl.env needs gymnasium: pip install "
                      "'alphatrade-lab[rl]'") from exc

from alphatrade_lab.backtest import kernels as backtest_nb
from alphatrade_lab.errors import DataError
from alphatrade_lab.features import FeatureSpec
from alphatrade_lab.rl import kernels as nb
from alphatrade_lab.rl.config import EnvConfig
from alphatrade_lab.rl.panel import first_nan, symbol_data

__all__ = ["TradingEnv"]


class TradingEnv(gym.Env):
    """Trade one symbol, bar by bar, with the backtest's order and fee rules.

    Parameters
    ----------
    bars
        Long-form bars (one symbol, or several and ``symbol``). Without ``features``
        the observations are ``atl.features.technical(bars, spec)``.
    symbol
        The symbol to trade, when ``bars``, ``close`` or ``features`` hold several.
    close, features
        Instead of bars: a close Series (or wide frame and ``symbol``) and a feature
        frame (long form, or indexed by timestamp), matched by timestamp.
    spec
        The :class:`~alphatrade_lab.features.FeatureSpec` of the technical features.
    action
        ``"discrete"``: ``Discrete(3)``, 0 short, 1 flat, 2 long (``direction=
        "longonly"``: ``Discrete(2)``, 0 flat, 1 long); each is a target, traded as
        ``from_signals`` trades (all the cash on an entry, a reversal in one order).
        ``"continuous"``: ``Box(-1, 1, (1,))`` target weight of the value (``Box(0, 1)``
        with longonly), rebalanced as ``from_weights`` does.
    direction
        ``"both"`` or ``"longonly"``.
    fees, slippage, init_cash, size_granularity
        As in :func:`alphatrade_lab.backtest.from_signals` (fills at the close).
    reward
        ``"log"`` (``log(V[t+1] / V[t])``; ``log(1e-12)`` when the value falls to 0 or
        below) or ``"simple"`` (``V[t+1] / V[t] - 1``).
    risk_penalty
        ``lambda`` >= 0: the reward minus ``lambda`` times the squared simple return.
    episode_length
        Steps per episode (None: to the last bar).
    start_range
        ``(lo, hi)``: a random start (drawn by ``reset(seed=...)``'s generator) among
        the bars ``lo..hi`` after the warm-up (default: any that leaves a full episode).
    include_position
        Append the position's weight to the observation (off: the observation is only
        the feature row, so a policy is a plain function of the features).

    Notes
    -----
    The rows before the first bar with a finite close and finite features (the
    features' warm-up) are dropped. An episode whose rows hold a NaN is refused at
    ``reset`` with a DataError naming the column and timestamp (fill the features
    first with :func:`alphatrade_lab.features.handle_nan` to choose another policy).
    The episode terminates when the value falls to 0 or below and is truncated at its
    last bar; a step after that (or before ``reset``) raises RuntimeError.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> bars = atl.data.load_sample(["AAA"]).head(600)
    >>> env = TradingEnv(bars, fees=0.001, episode_length=50)
    >>> obs, info = env.reset(seed=0, options={"start": 0})
    >>> obs.shape == env.observation_space.shape, info["equity"]
    (True, 100.0)
    >>> obs, reward, terminated, truncated, info = env.step(2)   # go long
    >>> info["orders"], round(info["fees"], 6) == round(100 / 1.001 * 0.001, 6)
    (1, True)
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, bars: pd.DataFrame | None = None, *, symbol: Any = None,
                 close: Any = None, features: pd.DataFrame | None = None,
                 spec: FeatureSpec | None = None, action: str = "discrete",
                 direction: str = "both", fees: float = 0.0, slippage: float = 0.0,
                 init_cash: float = 100.0, size_granularity: float | None = None,
                 reward: str = "log", risk_penalty: float = 0.0,
                 episode_length: int | None = None, start_range: tuple[int, int] | None = None,
                 include_position: bool = False) -> None:
        self.config = EnvConfig.build(1, action=action, direction=direction, fees=fees,
                                      slippage=slippage, init_cash=init_cash,
                                      size_granularity=size_granularity, reward=reward,
                                      risk_penalty=risk_penalty,
                                      include_position=include_position)
        self.data = symbol_data(bars, symbol=symbol, close=close, features=features, spec=spec)
        n = len(self.data.close)
        if n < 2:
            raise DataError(f"symbol {self.data.symbol!r}: {n} bar(s) after the warm-up; an "
                            "episode needs at least 2")
        if episode_length is not None:
            episode_length = int(episode_length)
            if not 1 <= episode_length <= n - 1:
                raise ValueError(f"episode_length must be in 1..{n - 1} (the bars after the "
                                 f"warm-up, minus one), got {episode_length}")
        self.episode_length = episode_length
        last = n - 1 - (episode_length or 1)
        lo, hi = (0, last) if start_range is None else (int(start_range[0]),
                                                       int(start_range[1]))
        if not 0 <= lo <= hi <= last:
            raise ValueError(f"start_range must satisfy 0 <= lo <= hi <= {last}, got "
                             f"{start_range}")
        self.start_range = (lo, hi)
        self.columns = list(self.data.columns) + (["position_weight"] if include_position
                                                  else [])
        c = self.config
        self.action_space: spaces.Space = (
            spaces.Discrete(c.n_choices) if c.mode == nb.DISCRETE
            else spaces.Box(c.low, 1.0, (1,), dtype=np.float32))
        self.observation_space = spaces.Box(-np.inf, np.inf, (len(self.columns),),
                                            dtype=np.float32)
        self._cstate, self._gstate = backtest_nb.init_state_nb(1, 1, np.full(1, c.init_cash))
        self._counts = np.zeros((3, 1), dtype=np.int64)
        self._rec_o, self._rec_t = nb.empty_records()
        self._rows = np.zeros(1, dtype=np.int64)
        self._ends = np.zeros(1, dtype=np.int64)
        self._prev = np.zeros(1)
        self._obs = np.zeros((1, len(self.columns)), dtype=np.float32)
        self._reward = np.zeros(1)
        self._term = np.zeros(1, dtype=np.bool_)
        self._trunc = np.zeros(1, dtype=np.bool_)
        self._value = c.init_cash
        self._done = True

    def _start(self, options: dict[str, Any] | None) -> int:
        start = None if options is None else options.get("start")
        if start is None:
            lo, hi = self.start_range
            return int(self.np_random.integers(lo, hi + 1))
        if isinstance(start, pd.Timestamp | str):
            stamp = pd.Timestamp(start)
            stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp
            i = int(self.data.timestamps.searchsorted(stamp))
            if i >= len(self.data.timestamps) or self.data.timestamps[i] != stamp:
                raise ValueError(f"reset: start {start} is not a bar after the warm-up "
                                 f"({self.data.timestamps[0]} .. {self.data.timestamps[-1]})")
            start = i
        start = int(start)
        last = len(self.data.close) - 1 - (self.episode_length or 1)
        if not 0 <= start <= last:
            raise ValueError(f"reset: start {start} leaves no room for an episode of "
                             f"{self.episode_length or 'at least 1'} step(s): it must be in "
                             f"0..{last}")
        return start

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode at ``options["start"]`` (a bar number after the warm-up or a
        timestamp) or at a random bar of ``start_range``."""
        super().reset(seed=seed)
        start = self._start(options)
        end = len(self.data.close) - 1 if self.episode_length is None \
            else start + self.episode_length
        problem = first_nan(self.data, start, end + 1)
        if problem is not None:
            raise DataError(f"TradingEnv.reset: the episode from bar {start} holds a "
                            f"non-finite value: {problem}; fill the features first "
                            "(atl.features.handle_nan) or start elsewhere")
        nb.reset_env_nb(0, start, self.config.init_cash, self.data.close, self._cstate,
                        self._gstate, self._counts, self._rows, self._prev)
        self._ends[0] = end
        nb.write_obs_nb(0, start, self.data.features, self._cstate, self._gstate,
                        self.config.include_position, self._obs)
        self._value = self.config.init_cash
        self._done = False
        return self._obs[0].copy(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Trade to ``action``'s target at the current bar's close and move one bar on."""
        if self._done:
            raise RuntimeError("TradingEnv.step: the episode has ended (or never started); "
                               "call reset() first")
        c = self.config
        target = float(c.targets(action, 1)[0])
        self._value = nb.step_env_nb(
            0, target, c.mode, c.direction, c.fees[0], c.slippage[0], c.gran[0],
            c.risk_penalty, c.reward, self.data.close, self.data.features,
            c.include_position, self._cstate, self._gstate, self._counts, self._rec_o,
            self._rec_t, self._rows, self._ends, self._prev, self._obs, self._reward,
            self._term, self._trunc)
        terminated, truncated = bool(self._term[0]), bool(self._trunc[0])
        self._done = terminated or truncated
        return (self._obs[0].copy(), float(self._reward[0]), terminated, truncated,
                self._info())

    def _info(self) -> dict[str, Any]:
        row = int(self._rows[0])
        pos = float(self._cstate[0, backtest_nb.C_POS])
        value = float(self._value)
        return {"bar": row, "timestamp": self.data.timestamps[row], "equity": value,
                "cash": float(self._gstate[0, backtest_nb.G_CASH]), "position": pos,
                "weight": pos * float(self.data.close[row]) / value if value > 0 else 0.0,
                "fees": float(self._gstate[0, backtest_nb.G_FEES]),
                "orders": int(self._counts[nb.ORDERS, 0])}
