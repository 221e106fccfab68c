"""The baseline agent: PPO (stable-baselines3, PyTorch on the CPU) and its export.

:func:`train_ppo` trains SB3's ``MlpPolicy`` on a :class:`~alphatrade_lab.rl.TradingEnv`
whose observations are standardised with the training bars' feature means and standard
deviations (fixed before training, so the deployed policy sees the same numbers).

:func:`export_policy` writes the trained actor as a model bundle, without pickle: the
actor (an MLP from the observation to the logits of the three discrete actions, short,
flat and long, or flat and long for a long-only agent) becomes a scikit-learn
``MLPClassifier`` whose ``coefs_`` and ``intercepts_`` are the torch weights and whose
classes are the actions' targets (``[-1, 0, 1]``, or ``[0, 1]``), behind a
``StandardScaler`` holding the observation scaling. :func:`atl.models.save_bundle` stores
it in the skops format, hash-checked; :func:`atl.models.load_bundle`,
:func:`atl.models.signals` and :class:`atl.live.ModelStrategy` use it unchanged with
``rule="argmax"`` (act on the most probable action, as SB3's deterministic
``predict`` does).

Needs the optional extra ``rl``: ``pip install 'alphatrade-lab[rl]'``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
except ImportError as exc:  # pragma: no cover - exercised by tests/test_project.py
    raise ImportError("alphatrade_lab.rl.agents needs gymnasium, stable-baselines3 and "
                      "PyTorch: pip install 'alphatrade-lab[rl]'") from exc

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.features import FeatureSpec
from alphatrade_lab.models.bundle import ModelBundle, save_bundle
from alphatrade_lab.rl.env import TradingEnv

__all__ = ["PPOAgent", "export_policy", "policy_bundle", "policy_pipeline", "policy_proba",
           "train_ppo"]

# The classes of an exported policy, in the order of the discrete actions.
_CLASSES = {"both": [-1, 0, 1], "longonly": [0, 1]}
_ACTIVATIONS = {torch.nn.Tanh: "tanh", torch.nn.ReLU: "relu", torch.nn.Sigmoid: "logistic",
                torch.nn.Identity: "identity"}


class _Scaled(gym.ObservationWrapper):
    """Observations standardised with fixed means and scales: ``(obs - mean) / scale``."""

    def __init__(self, env: gym.Env, mean: np.ndarray, scale: np.ndarray):
        super().__init__(env)
        self.mean = mean.astype(np.float32)
        self.scale = scale.astype(np.float32)
        shape = env.observation_space.shape
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=shape, dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return ((np.asarray(observation, dtype=np.float32) - self.mean) / self.scale)


class _Record(BaseCallback):
    """Episode rewards (from the Monitor wrapper) and the losses of every update."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[dict[str, float]] = []
        self.losses: list[dict[str, float]] = []

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            ep = info.get("episode")
            if ep is not None:
                self.episodes.append({"timestep": float(self.num_timesteps),
                                      "reward": float(ep["r"]), "length": float(ep["l"])})
        return True

    def _take_losses(self) -> None:
        values = self.model.logger.name_to_value
        if "train/loss" in values:
            self.losses.append({"timestep": float(self.num_timesteps),
                                **{k[6:]: float(v) for k, v in values.items()
                                   if k.startswith("train/")}})

    def _on_rollout_start(self) -> None:  # the last update's numbers are still logged
        self._take_losses()

    def _on_training_end(self) -> None:
        self._take_losses()


@dataclass
class PPOAgent:
    """A trained PPO agent with what its export needs.

    Attributes
    ----------
    model
        The ``stable_baselines3.PPO`` model.
    feature_names, spec
        The observation's feature columns (in order) and the FeatureSpec that makes them.
    mean, scale
        The observation scaling: the policy sees ``(features - mean) / scale``.
    direction
        The environment's direction (``"longonly"`` or ``"both"``).
    episodes, losses
        Training curve: one row per finished episode (``timestep``, ``reward``,
        ``length``) and per PPO update (``timestep``, ``loss``, ``entropy_loss``, ...).
    seconds, timesteps
        Wall time of ``learn`` and the number of environment steps taken.
    """

    model: Any
    feature_names: list[str]
    spec: FeatureSpec
    mean: np.ndarray
    scale: np.ndarray
    direction: str = "longonly"
    episodes: pd.DataFrame = field(default_factory=pd.DataFrame)
    losses: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: float = 0.0
    timesteps: int = 0

    @property
    def steps_per_second(self) -> float:
        """Environment steps per second of wall time while training."""
        return self.timesteps / self.seconds if self.seconds > 0 else float("nan")

    def scaled(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Feature rows (a frame is read by name) as the policy's observations."""
        A = (X[self.feature_names].to_numpy(dtype=np.float64) if isinstance(X, pd.DataFrame)
             else np.asarray(X, dtype=np.float64))
        return (A - self.mean) / self.scale


def _observation_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means and standard deviations (ddof=0; 1 where constant) of the observations."""
    A = np.asarray(features, dtype=np.float64)
    A = A[np.isfinite(A).all(axis=1)]
    if len(A) < 2:
        raise DataError(f"train_ppo: {len(A)} bar(s) with every feature known; the "
                        "observation scaling needs at least 2")
    mean, std = A.mean(axis=0), A.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def train_ppo(bars: pd.DataFrame, *, spec: FeatureSpec | None = None,
              direction: str = "longonly", env_kwargs: dict | None = None, seed: int = 0,
              total_timesteps: int = 100_000,
              progress: bool = False, net_arch: Sequence[int] = (64, 64),
              **ppo_kwargs: Any) -> PPOAgent:
    """Train PPO on a trading environment over ``bars``, on the CPU, seeded.

    Parameters
    ----------
    bars
        Long-form bars of one symbol (the training period only).
    spec
        The observation's :class:`~alphatrade_lab.features.FeatureSpec` (default:
        ``FeatureSpec()``).
    direction
        ``"longonly"`` (actions flat, long: what ``from_signals`` and the live engine
        replay exactly) or ``"both"`` (short, flat, long).
    env_kwargs
        Passed to :class:`~alphatrade_lab.rl.TradingEnv` (``fees``, ``episode_length``,
        ``reward``, ...); the actions are discrete and the observation is the feature row.
    seed
        Seeds torch, the environment and PPO: the same seed gives the same agent.
    total_timesteps
        Environment steps to train for.
    progress
        Show SB3's progress bar.
    net_arch
        Hidden layer sizes of the actor and of the critic (tanh activations).
    ppo_kwargs
        Passed to ``stable_baselines3.PPO`` (``n_steps``, ``batch_size``,
        ``learning_rate``, ``ent_coef``, ...).

    Returns
    -------
    PPOAgent

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> bars = atl.data.resample(atl.data.load_sample(["AAA"]), "1h").head(800)
    >>> agent = train_ppo(bars, total_timesteps=256, n_steps=128, batch_size=64,
    ...                   seed=1)  # doctest: +SKIP
    >>> len(agent.losses) > 0  # doctest: +SKIP
    True
    """
    spec = FeatureSpec() if spec is None else spec
    env_kwargs = dict(env_kwargs or {})
    if int(total_timesteps) < 1:
        raise ValueError(f"train_ppo: total_timesteps must be >= 1, got {total_timesteps!r}")
    for key in ("action", "include_position", "spec", "direction"):
        if key in env_kwargs:
            raise ValueError(f"train_ppo: env_kwargs[{key!r}] is set by train_ppo (discrete "
                             "actions, observations without the position; pass spec= and "
                             "direction= themselves)")
    env = TradingEnv(bars, spec=spec, action="discrete", direction=direction,
                     include_position=False, **env_kwargs)
    names = list(env.columns)
    mean, scale = _observation_stats(env.data.features)
    torch.manual_seed(seed)
    wrapped = Monitor(_Scaled(env, mean, scale))
    wrapped.reset(seed=seed)
    policy_kwargs = {"net_arch": {"pi": list(net_arch), "vf": list(net_arch)},
                     "activation_fn": torch.nn.Tanh}
    policy_kwargs.update(ppo_kwargs.pop("policy_kwargs", {}))
    model = PPO("MlpPolicy", wrapped, seed=seed, device="cpu", verbose=0,
                policy_kwargs=policy_kwargs, **ppo_kwargs)
    record = _Record()
    t0 = time.perf_counter()
    model.learn(total_timesteps=int(total_timesteps), callback=record, progress_bar=progress)
    seconds = time.perf_counter() - t0
    return PPOAgent(model, names, spec, mean, scale,
                    direction=direction,
                    episodes=pd.DataFrame(record.episodes,
                                          columns=["timestep", "reward", "length"]),
                    losses=pd.DataFrame(record.losses), seconds=seconds,
                    timesteps=int(model.num_timesteps))


def _actor_layers(policy: Any) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """Weights (in, out), biases and the activation of a discrete MlpPolicy's actor."""
    linear: list[torch.nn.Linear] = []
    acts = set()
    for layer in policy.mlp_extractor.policy_net:
        if isinstance(layer, torch.nn.Linear):
            linear.append(layer)
        elif type(layer) in _ACTIVATIONS:
            acts.add(_ACTIVATIONS[type(layer)])
        else:
            raise ValueError(f"export_policy: cannot export a {type(layer).__name__} layer "
                             "of the policy network (Linear and tanh/relu/sigmoid only)")
    if len(acts) > 1 or not linear:
        raise ValueError("export_policy: the policy network needs Linear layers with one "
                         f"activation, got {sorted(acts) or 'none'}")
    if not isinstance(policy.features_extractor, torch.nn.Flatten | type(None)) and \
            type(policy.features_extractor).__name__ != "FlattenExtractor":
        raise ValueError("export_policy: only the default FlattenExtractor can be exported")
    linear.append(policy.action_net)
    coefs = [lay.weight.detach().cpu().double().numpy().T.copy() for lay in linear]
    intercepts = [lay.bias.detach().cpu().double().numpy().copy() for lay in linear]
    return coefs, intercepts, acts.pop() if acts else "identity"


def policy_pipeline(agent: PPOAgent) -> Any:
    """The agent's actor as a scikit-learn pipeline (scaler, then ``MLPClassifier``)
    whose ``predict_proba`` is the policy's action probabilities.

    The classes are the actions' targets: ``[-1, 0, 1]`` (short, flat, long) for
    ``direction="both"``, ``[0, 1]`` (flat, long) for ``"longonly"``, where the two logits
    ``l0, l1`` become one logistic output of ``l1 - l0`` (softmax of two is the logistic
    of their difference).

    Examples
    --------
    >>> pipe = policy_pipeline(agent)  # doctest: +SKIP
    >>> pipe.classes_.tolist()  # doctest: +SKIP
    [0, 1]
    """
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import LabelBinarizer, StandardScaler

    classes = np.array(_CLASSES[agent.direction])
    n_actions = int(getattr(agent.model.action_space, "n", 0))
    if n_actions != len(classes):
        raise ValueError(f"policy_pipeline: a {agent.direction!r} agent needs "
                         f"Discrete({len(classes)}) actions, got {agent.model.action_space}")
    coefs, intercepts, activation = _actor_layers(agent.model.policy)
    k = len(agent.feature_names)
    if coefs[0].shape[0] != k:
        raise DataError(f"policy_pipeline: the policy takes {coefs[0].shape[0]} inputs, the "
                        f"agent has {k} feature names")
    if len(classes) == 2:  # one logistic output: the difference of the two logits
        coefs[-1] = coefs[-1][:, 1:] - coefs[-1][:, :1]
        intercepts[-1] = intercepts[-1][1:] - intercepts[-1][:1]
    clf = MLPClassifier(hidden_layer_sizes=tuple(c.shape[1] for c in coefs[:-1]),
                        activation=activation)
    clf.coefs_, clf.intercepts_ = coefs, intercepts
    clf.n_layers_ = len(coefs) + 1
    clf.n_outputs_ = coefs[-1].shape[1]
    clf.out_activation_ = "softmax" if len(classes) > 2 else "logistic"
    clf.n_features_in_ = k
    clf.classes_ = classes
    clf._label_binarizer = LabelBinarizer().fit(classes)
    scaler = StandardScaler()
    scaler.mean_, scaler.scale_ = agent.mean.astype(np.float64), agent.scale.astype(np.float64)
    scaler.var_ = scaler.scale_ ** 2
    scaler.n_features_in_, scaler.n_samples_seen_ = k, np.int64(0)
    return Pipeline([("scale", scaler), ("policy", clf)])


def policy_proba(agent: PPOAgent, X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The torch policy's action probabilities of feature rows (one column per action:
    short, flat, long; or flat, long for a long-only agent).

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> X = atl.features.technical(bars)[agent.feature_names].dropna()  # doctest: +SKIP
    >>> policy_proba(agent, X).sum(axis=1).round(6).min()  # doctest: +SKIP
    1.0
    """
    obs = torch.as_tensor(agent.scaled(X), dtype=torch.float32)
    with torch.no_grad():
        dist = agent.model.policy.get_distribution(obs)
        return dist.distribution.probs.double().numpy()


def policy_bundle(agent: PPOAgent) -> ModelBundle:
    """The agent's policy as a :class:`~alphatrade_lab.models.ModelBundle` (in memory).

    Its features are the agent's, its classes the actions' targets (see
    :func:`policy_pipeline`), its means and stds the observation scaling (``nan_policy``
    ``"mean"``: a missing feature, as in a symbol's first bars, is its training mean),
    and ``meta`` says ``{"kind": "ppo_policy", "rule": "argmax", "direction": ...}``.
    Score it with ``atl.models.signals(bundle, X, rule="argmax")``.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> bundle = policy_bundle(agent)  # doctest: +SKIP
    >>> sig = atl.models.signals(bundle, atl.features.technical(bars),
    ...                          rule="argmax")  # doctest: +SKIP
    >>> sorted(set(sig.frame["direction"])) <= [0, 1]  # doctest: +SKIP
    True
    """
    return ModelBundle(policy_pipeline(agent), list(agent.feature_names), agent.mean,
                       agent.scale, list(_CLASSES[agent.direction]),
                       feature_spec=agent.spec.to_dict(), nan_policy="mean",
                       meta={"kind": "ppo_policy", "rule": "argmax",
                             "direction": agent.direction, "timesteps": int(agent.timesteps)})


def export_policy(agent: PPOAgent, path: str | Path) -> Path:
    """Write :func:`policy_bundle` of the agent to ``path`` (skops, hash-checked, no
    pickle). Score the file with ``atl.live.ModelStrategy(path, rule="argmax")`` or
    ``atl.models.signals(atl.models.load_bundle(path), X, rule="argmax")``.

    Returns
    -------
    pathlib.Path
        The bundle's path (its ``.sha256`` sidecar is next to it).

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> path = export_policy(agent, "runs/ppo.atlb")  # doctest: +SKIP
    >>> atl.models.load_bundle(path).classes  # doctest: +SKIP
    [0, 1]
    """
    return save_bundle(policy_bundle(agent), path)
