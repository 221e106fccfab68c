"""The settings shared by :class:`~alphatrade_lab.rl.TradingEnv` and
:class:`~alphatrade_lab.rl.VecTradingEnv`, validated once, and the check of actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from alphatrade_lab.backtest import kernels as backtest_nb
from alphatrade_lab.backtest._inputs import cost_fraction, granularity
from alphatrade_lab.rl import kernels as nb

__all__ = ["ACTIONS", "REWARDS", "EnvConfig"]

ACTIONS = {"discrete": nb.DISCRETE, "continuous": nb.CONTINUOUS}
REWARDS = {"log": nb.LOG, "simple": nb.SIMPLE}
_DIRECTIONS = {"both": backtest_nb.BOTH, "longonly": backtest_nb.LONGONLY}


def _choice(value: Any, options: dict[str, int], name: str) -> int:
    try:
        return options[value]
    except (KeyError, TypeError):
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}") from None


@dataclass(frozen=True)
class EnvConfig:
    """Validated environment settings; ``fees``, ``slippage`` and ``gran`` hold one value
    per environment (``k`` of them)."""

    mode: int
    direction: int
    fees: np.ndarray
    slippage: np.ndarray
    gran: np.ndarray
    init_cash: float
    reward: int
    risk_penalty: float
    include_position: bool

    @classmethod
    def build(cls, k: int, *, action: str, direction: str, fees: Any, slippage: Any,
              init_cash: float, size_granularity: Any, reward: str, risk_penalty: float,
              include_position: bool) -> EnvConfig:
        """Check every setting; errors name the setting and the value given."""
        cash = float(init_cash)
        if not np.isfinite(cash) or cash <= 0:
            raise ValueError(f"init_cash must be finite and > 0, got {init_cash!r}")
        penalty = float(risk_penalty)
        if not np.isfinite(penalty) or penalty < 0:
            raise ValueError(f"risk_penalty must be finite and >= 0, got {risk_penalty!r}")
        return cls(_choice(action, ACTIONS, "action"), _choice(direction, _DIRECTIONS,
                                                              "direction"),
                   cost_fraction(fees, "fees", k, stacklevel=5),
                   cost_fraction(slippage, "slippage", k, stacklevel=5),
                   granularity(size_granularity, k), cash, _choice(reward, REWARDS, "reward"),
                   penalty, bool(include_position))

    @property
    def n_choices(self) -> int:
        """Discrete actions: 3 (short, flat, long) or 2 (flat, long) with longonly."""
        return 3 if self.direction == backtest_nb.BOTH else 2

    @property
    def low(self) -> float:
        """Lowest continuous target weight: -1, or 0 with longonly."""
        return -1.0 if self.direction == backtest_nb.BOTH else 0.0

    def targets(self, actions: Any, k: int) -> np.ndarray:
        """``k`` actions as the kernels' float64 targets (a sign, or a weight).

        Discrete: integers ``0..n_choices - 1`` (0 short, 1 flat, 2 long; with
        longonly 0 flat, 1 long). Continuous: target weights in ``[low, 1]``.
        Anything else raises ValueError naming the action (and its environment).
        """
        arr = np.asarray(actions)
        if self.mode == nb.CONTINUOUS and arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.shape != (k,):
            arr = arr.reshape(-1) if arr.size == k and k == 1 else arr
        if arr.shape != (k,):
            raise ValueError(f"actions: expected {k} action(s), got shape {np.shape(actions)}: "
                             f"{_short(actions)}")
        if self.mode == nb.DISCRETE:
            if arr.dtype.kind not in "iu":
                raise ValueError(f"action {_short(actions)}: expected integer(s) in "
                                 f"0..{self.n_choices - 1} ({self._meaning()}), got dtype "
                                 f"{arr.dtype}")
            bad = (arr < 0) | (arr >= self.n_choices)
            if bad.any():
                raise ValueError(self._bad(arr, bad, f"not in 0..{self.n_choices - 1} "
                                                     f"({self._meaning()})"))
            return arr.astype(np.float64) - (1.0 if self.n_choices == 3 else 0.0)
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"action {_short(actions)}: expected target weight(s) in "
                             f"[{self.low:g}, 1], got dtype {arr.dtype}")
        w = arr.astype(np.float64)
        bad = ~((w >= self.low) & (w <= 1.0))
        if bad.any():
            raise ValueError(self._bad(w, bad, f"not a target weight in [{self.low:g}, 1]"))
        return w

    def _meaning(self) -> str:
        return "short, flat, long" if self.n_choices == 3 else "flat, long"

    @staticmethod
    def _bad(arr: np.ndarray, bad: np.ndarray, what: str) -> str:
        i = int(np.flatnonzero(bad)[0])
        where = f" of environment {i}" if len(arr) > 1 else ""
        return f"action {arr[i].item()!r}{where}: {what}"


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."
