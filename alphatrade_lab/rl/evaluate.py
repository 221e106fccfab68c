"""Walk-forward comparison of a trained agent with simple baselines.

On purged walk-forward folds of one symbol's bars (:func:`atl.models.purged_splits`),
each fold trains the agent on its training part only and tests, on the fold's test
block, four long-only strategies with the same fees, all scored by
:func:`atl.backtest.from_signals` rules:

- ``agent``: the exported policy (:func:`~alphatrade_lab.rl.agents.policy_bundle`) acting
  on the argmax of its action probabilities (long, or flat), as the live engine's
  ``ModelStrategy(rule="argmax")`` would;
- ``buy_and_hold``: long from the test block's first bar;
- ``ma_cross``: the best moving-average crossover of :func:`atl.backtest.sweep_ma_cross`
  on the training part (highest Sharpe), with that sweep's deflated Sharpe ratio
  (:func:`atl.backtest.deflated_sharpe_ratio`, every pair a trial);
- ``random``: a seeded coin flip (long or flat) on every bar.

Features and moving averages of the test block warm up on the bars before it (they are
causal); nothing of the test block is seen while training or choosing.

The agent is trained by :func:`~alphatrade_lab.rl.agents.train_ppo` (optional extra
``rl``), or by any ``train_agent(train_bars) -> PPOAgent``. :data:`DEFAULT_CONFIG` holds
the settings of a run; :func:`load_config` merges a TOML file over them.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.backtest import from_signals, sweep_ma_cross
from alphatrade_lab.data import bar_length, to_wide
from alphatrade_lab.errors import DataError
from alphatrade_lab.features import FeatureSpec, technical
from alphatrade_lab.models import purged_splits, signals

__all__ = ["DEFAULT_CONFIG", "STRATEGY_NAMES", "WalkForward", "load_config",
           "plot_folds", "plot_training_curve", "walk_forward_compare"]

STRATEGY_NAMES: tuple[str, ...] = ("agent", "buy_and_hold", "ma_cross", "random")
_METRICS = ("total_return", "sharpe", "max_drawdown", "trade_count")

#: Settings of a comparison (the layout of ``research/configs/rl_ppo.toml``).
DEFAULT_CONFIG: dict[str, Any] = {
    "data": {"symbol": "AAA", "timeframe": "1h", "holdout": 0.25},
    "features": {},
    "env": {"fees": 0.001, "slippage": 0.0, "reward": "log", "risk_penalty": 0.0,
            "episode_length": 256},
    "ppo": {"total_timesteps": 100_000, "n_steps": 1024, "batch_size": 256,
            "n_epochs": 10, "learning_rate": 3e-4, "gamma": 0.99, "ent_coef": 0.01,
            "net_arch": [64, 64]},
    "validation": {"n_splits": 4, "embargo": "1D", "min_train_bars": 500},
    "baselines": {"ma_fast": [5, 10, 20, 40], "ma_slow": [50, 100, 200]},
    "seed": 0,
    "progress": False,
    "out": "runs",
}


def _merge(base: dict, override: Mapping, where: str) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key not in base and where != "features":
            raise DataError(f"{where or 'config'}: unknown key {key!r}; known keys: "
                            f"{sorted(base)}")
        if isinstance(base.get(key), dict) and key != "features":
            if not isinstance(value, Mapping):
                raise DataError(f"config [{key}]: expected a table, got {value!r}")
            out[key] = _merge(base[key], value, key)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(source: str | Path | Mapping | None = None) -> dict:
    """:data:`DEFAULT_CONFIG` updated by a TOML file or a mapping, key by key.

    An unknown key (a typo) raises :class:`~alphatrade_lab.errors.DataError` naming it
    and its section; the ``[features]`` table holds FeatureSpec fields, checked by it.

    >>> load_config({"ppo": {"total_timesteps": 2048}})["ppo"]["n_steps"]
    1024
    >>> load_config({"ppo": {"total_timestep": 2048}})
    Traceback (most recent call last):
    ...
    alphatrade_lab.errors.DataError: ppo: unknown key 'total_timestep'; known keys: [...]
    """
    if source is None:
        return copy.deepcopy(DEFAULT_CONFIG)
    if isinstance(source, Mapping):
        return _merge(DEFAULT_CONFIG, source, "")
    path = Path(source)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"{path}: cannot read the config: {exc}") from exc
    try:
        return _merge(DEFAULT_CONFIG, data, "")
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


@dataclass
class WalkForward:
    """Result of :func:`walk_forward_compare`.

    Attributes
    ----------
    table
        One row per (fold, strategy): ``total_return``, ``sharpe``, ``max_drawdown``,
        ``trades``, ``test_start``, ``test_end``, ``train_bars``, ``test_bars``, and for
        ``ma_cross`` its ``params`` and ``deflated_sharpe``.
    agents
        The agent trained on each fold (with its training curve).
    """

    table: pd.DataFrame
    agents: list = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """Mean and standard deviation over the folds of each strategy's metrics."""
        cols = ["total_return", "sharpe", "max_drawdown", "trades"]
        return self.table.groupby(level="strategy")[cols].agg(["mean", "std"])


def _row(stats: pd.Series | Mapping) -> dict[str, float]:
    return {"total_return": float(stats["total_return"]), "sharpe": float(stats["sharpe"]),
            "max_drawdown": float(stats["max_drawdown"]),
            "trades": int(stats["trade_count"])}


def _test_stats(close: pd.Series, entries: np.ndarray, exits: np.ndarray,
                fees: float, slippage: float) -> dict[str, float]:
    pf = from_signals(close, pd.Series(entries, index=close.index),
                      pd.Series(exits, index=close.index), fees=fees, slippage=slippage)
    return _row(pf.stats())


def _one_symbol(bars: pd.DataFrame, symbol: Any) -> tuple[pd.DataFrame, str]:
    if not isinstance(bars, pd.DataFrame) or "symbol" not in bars.columns:
        raise DataError("walk_forward_compare: expected long-form bars with a symbol column")
    names = list(pd.unique(bars["symbol"]))
    if symbol is None:
        if len(names) != 1:
            raise DataError(f"walk_forward_compare: the bars hold {len(names)} symbols "
                            f"{names[:5]}; pick one with symbol=")
        symbol = names[0]
    one = bars[bars["symbol"] == symbol].reset_index(drop=True)
    if one.empty:
        raise DataError(f"walk_forward_compare: symbol {symbol!r} is not in the bars "
                        f"({names[:5]})")
    return one, str(symbol)


def walk_forward_compare(bars: pd.DataFrame, *, symbol: Any = None,
                         spec: FeatureSpec | None = None, n_splits: int = 4,
                         embargo: Any = "1D", min_train_bars: int = 500,
                         fees: float = 0.001, slippage: float = 0.0,
                         ma_fast: Any = (5, 10, 20, 40), ma_slow: Any = (50, 100, 200),
                         train_agent: Callable[..., Any] | None = None,
                         ppo: Mapping[str, Any] | None = None,
                         env: Mapping[str, Any] | None = None, seed: int = 0,
                         progress: bool = False) -> WalkForward:
    """Train and test the agent and the baselines on purged walk-forward folds.

    Parameters
    ----------
    bars
        Long-form bars (one symbol, or pick one with ``symbol``).
    spec
        The agent's :class:`~alphatrade_lab.features.FeatureSpec` (default ``FeatureSpec()``).
    n_splits, embargo
        As in :func:`atl.models.purged_splits` (walk-forward, expanding training set).
    min_train_bars
        Fewest training bars with every feature known a fold needs (fewer raise
        :class:`~alphatrade_lab.errors.DataError` before anything is trained).
    fees, slippage
        Costs of every strategy (and of the agent's environment).
    ma_fast, ma_slow
        The moving-average windows swept on each training part.
    train_agent
        ``train_agent(train_bars) -> PPOAgent`` (called with ``fold=i`` too when it takes
        a ``fold`` argument); default: :func:`train_ppo` with ``ppo``
        (its keyword arguments, e.g. ``total_timesteps``) and ``env`` (the environment's,
        e.g. ``episode_length``), long-only, seeded with ``seed + fold``.
    seed
        Seeds the agents and the random policy.
    progress
        Print one line per fold.

    Returns
    -------
    WalkForward

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> bars = atl.data.resample(atl.data.load_sample(["AAA"]), "1h").head(2000)
    >>> wf = walk_forward_compare(bars, n_splits=2, min_train_bars=200,
    ...                           ppo={"total_timesteps": 256, "n_steps": 128},
    ...                           env={"episode_length": 100})  # doctest: +SKIP
    >>> sorted(set(wf.table.index.get_level_values("strategy")))  # doctest: +SKIP
    ['agent', 'buy_and_hold', 'ma_cross', 'random']
    """
    one, name = _one_symbol(bars, symbol)
    spec = FeatureSpec() if spec is None else spec
    close = to_wide(one, "close")[name]
    t0 = close.index
    step = bar_length(one) if len(one) > 1 else pd.Timedelta(0)
    folds = purged_splits(pd.Series(t0), pd.Series(t0 + step), n_splits=n_splits,
                          embargo=embargo)
    X = technical(one, spec)
    names = list(spec.feature_names)
    known = X[names].notna().all(axis=1).to_numpy()
    for i, fold in enumerate(folds):
        n_known = int(known[fold.train].sum())
        if n_known < min_train_bars or len(fold.test) < 2:
            raise DataError(
                f"walk_forward_compare: fold {i} of {len(folds)} has {n_known} training "
                f"bars with every feature known (min_train_bars={min_train_bars}) and "
                f"{len(fold.test)} test bars, from {len(one)} bars of {name!r}; give more "
                "bars, fewer splits or a smaller min_train_bars")
    if train_agent is None:
        train_agent = _default_trainer(spec, fees, slippage, dict(ppo or {}), dict(env or {}),
                                       seed)
    fast, slow = [int(f) for f in ma_fast], [int(s) for s in ma_slow]
    rows, agents = [], []
    for i, fold in enumerate(folds):
        train_bars = one.iloc[fold.train].reset_index(drop=True)
        lo, hi = int(fold.test[0]), int(fold.test[-1]) + 1
        test_close = close.iloc[lo:hi]
        info = {"test_start": test_close.index[0], "test_end": test_close.index[-1],
                "train_bars": len(fold.train), "test_bars": hi - lo}
        agent = (train_agent(train_bars, fold=i) if _takes_fold(train_agent)
                 else train_agent(train_bars))
        agents.append(agent)
        rows.append({"fold": i, "strategy": "agent", **info,
                     **_agent_stats(agent, one.iloc[:hi], lo, test_close, fees, slippage)})
        entries = np.zeros(hi - lo, dtype=bool)
        entries[0] = True
        rows.append({"fold": i, "strategy": "buy_and_hold", **info,
                     **_test_stats(test_close, entries, np.zeros(hi - lo, dtype=bool), fees,
                                   slippage)})
        rows.append({"fold": i, "strategy": "ma_cross", **info,
                     **_ma_stats(close, fold.train, lo, hi, fast, slow, fees, slippage)})
        coin = np.random.default_rng([seed, i]).integers(0, 2, hi - lo).astype(bool)
        rows.append({"fold": i, "strategy": "random", **info,
                     **_test_stats(test_close, coin, ~coin, fees, slippage)})
        if progress:
            got = {r["strategy"]: r["total_return"] for r in rows[-4:]}
            print(f"fold {i}: test {info['test_start']} .. {info['test_end']}: " +
                  ", ".join(f"{k} {v:+.2%}" for k, v in got.items()))
    table = pd.DataFrame(rows).set_index(["fold", "strategy"])
    return WalkForward(table, agents)


def _takes_fold(fn: Callable) -> bool:
    import inspect

    try:
        return "fold" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _default_trainer(spec: FeatureSpec, fees: float, slippage: float, ppo: dict, env: dict,
                     seed: int) -> Callable[..., Any]:
    from alphatrade_lab.rl.agents import train_ppo  # the rl extra, only when training

    def train(train_bars: pd.DataFrame, fold: int = 0) -> Any:
        kwargs = dict(ppo)
        if "net_arch" in kwargs:
            kwargs["net_arch"] = tuple(kwargs["net_arch"])
        return train_ppo(train_bars, spec=spec, seed=seed + fold,
                         env_kwargs={"fees": fees, "slippage": slippage, **env}, **kwargs)

    return train


def _agent_stats(agent: Any, history: pd.DataFrame, lo: int, test_close: pd.Series,
                 fees: float, slippage: float) -> dict[str, float]:
    from alphatrade_lab.rl.agents import policy_bundle

    if agent.direction != "longonly":
        raise ValueError("walk_forward_compare: the agent must be long-only (the backtest "
                         "and the live engine have no flat target for direction='both')")
    X = technical(history, agent.spec).iloc[lo:]
    d = signals(policy_bundle(agent), X, rule="argmax").frame["direction"].to_numpy()
    return _test_stats(test_close, d == 1, d != 1, fees, slippage)


def _ma_stats(close: pd.Series, train: np.ndarray, lo: int, hi: int, fast: list[int],
              slow: list[int], fees: float, slippage: float) -> dict[str, Any]:
    a, b = int(train[0]), int(train[-1]) + 1
    grid = sweep_ma_cross(close.iloc[:b], fast=fast, slow=slow, start=a, fees=fees,
                          slippage=slippage, progress=False)
    best = grid.attrs["best"]
    if best is None:
        raise DataError("walk_forward_compare: no moving-average pair traded on the training "
                        "part; give more bars or shorter windows")
    test = sweep_ma_cross(close.iloc[:hi], fast=[best[0]], slow=[best[1]], start=lo,
                          fees=fees, slippage=slippage, progress=False)
    return {**_row(test.iloc[0]), "params": f"fast={best[0]}, slow={best[1]}",
            "deflated_sharpe": float(grid.attrs["deflated_sharpe"])}


def plot_training_curve(agents: Any, ax: Any = None, window: int = 10) -> Any:
    """Episode rewards against training steps, one line per agent (fold), with their
    rolling mean over ``window`` episodes; a Figure.

    >>> import pandas as pd
    >>> from types import SimpleNamespace
    >>> ep = pd.DataFrame({"timestep": [100, 200, 300], "reward": [-0.1, 0.0, 0.05]})
    >>> fig = plot_training_curve([SimpleNamespace(episodes=ep)])
    >>> fig.axes[0].get_xlabel()
    'training steps'
    """
    from alphatrade_lab._figure import NotebookFigure

    agents = list(agents) if isinstance(agents, list | tuple) else [agents]
    if ax is None:
        fig = NotebookFigure(figsize=(8, 4))
        ax = fig.subplots()
    else:
        fig = ax.figure
    for i, agent in enumerate(agents):
        ep = agent.episodes
        if ep is None or ep.empty:
            continue
        line = ax.plot(ep["timestep"], ep["reward"], alpha=0.3, lw=0.8)[0]
        ax.plot(ep["timestep"], ep["reward"].rolling(window, min_periods=1).mean(),
                color=line.get_color(), lw=1.8, label=f"fold {i}")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("training steps")
    ax.set_ylabel("episode reward (sum of log returns)")
    ax.set_title("PPO training curve")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return fig


def plot_folds(table: pd.DataFrame, metric: str = "total_return", ax: Any = None) -> Any:
    """Bars of ``metric`` per fold, one bar per strategy; a Figure.

    >>> import pandas as pd
    >>> t = pd.DataFrame({"fold": [0, 0], "strategy": ["agent", "random"],
    ...                   "total_return": [0.01, -0.02]}).set_index(["fold", "strategy"])
    >>> plot_folds(t).axes[0].get_ylabel()
    'total_return'
    """
    from alphatrade_lab._figure import NotebookFigure

    if metric not in table.columns:
        raise DataError(f"plot_folds: metric {metric!r} is not a column of the table "
                        f"({list(table.columns)})")
    wide = table[metric].unstack("strategy")
    if ax is None:
        fig = NotebookFigure(figsize=(8, 4))
        ax = fig.subplots()
    else:
        fig = ax.figure
    width = 0.8 / max(len(wide.columns), 1)
    x = np.arange(len(wide.index))
    for j, strategy in enumerate(wide.columns):
        ax.bar(x + j * width, wide[strategy].to_numpy(dtype=float), width, label=str(strategy))
    ax.set_xticks(x + width * (len(wide.columns) - 1) / 2)
    ax.set_xticklabels([f"fold {f}" for f in wide.index])
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylabel(metric)
    ax.set_title(f"Walk-forward test folds: {metric}")
    ax.legend(loc="best", fontsize="small")
    return fig
