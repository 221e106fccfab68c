"""Trading signals from a model bundle's class probabilities.

Rule (per row, using only that row's features, so a signal at bar t is known at t's
close): with ``p_up = P(label = 1)`` and ``p_down = P(label = -1)``,

- ``direction = 1`` if ``p_up >= threshold`` and ``p_up >= p_down``,
- ``direction = -1`` if ``p_down >= threshold`` and ``p_down > p_up``,
- ``direction = 0`` otherwise;

``confidence`` is the probability of the chosen direction (``max(p_up, p_down)`` when
the direction is 0).

Rule ``"argmax"`` (an exported policy, e.g. :func:`alphatrade_lab.rl.export_policy`): the
direction is the class of the largest of ``p_down, p_flat, p_up`` (the first on a tie, as
``numpy.argmax`` and ``torch.argmax`` break it), ``confidence`` its probability; the
threshold is not used. With ``exit_on_flat`` a flat direction closes a long (short).

For a long-only backtest, ``entries = direction == 1`` and
``exits = direction != 1`` (or ``direction == -1`` with ``exit_on_flat=False``); short
entries/exits mirror them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.models.bundle import ModelBundle

__all__ = ["Signals", "direction_from_argmax", "direction_from_proba", "signals"]

# How probabilities become a direction (see the module docstring).
_RULES = ("threshold", "argmax")


def direction_from_proba(p_up: np.ndarray, p_down: np.ndarray, threshold: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Direction (int64 in {-1, 0, 1}) and confidence from the up/down probabilities.

    >>> d, c = direction_from_proba(np.array([0.7, 0.2, 0.4]), np.array([0.1, 0.6, 0.3]), 0.55)
    >>> d.tolist(), c.tolist()
    ([1, -1, 0], [0.7, 0.6, 0.4])
    """
    up = (p_up >= threshold) & (p_up >= p_down)
    down = (p_down >= threshold) & (p_down > p_up) & ~up
    direction = np.where(up, 1, np.where(down, -1, 0)).astype(np.int64)
    confidence = np.where(up, p_up, np.where(down, p_down, np.maximum(p_up, p_down)))
    return direction, confidence


def direction_from_argmax(p_down: np.ndarray, p_flat: np.ndarray, p_up: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Direction (int64 in {-1, 0, 1}) of the most probable class, and its probability.

    A tie goes to the first of down, flat, up (as ``numpy.argmax`` breaks it).

    >>> d, c = direction_from_argmax(np.array([0.5, 0.2, 0.3]), np.array([0.2, 0.5, 0.3]),
    ...                              np.array([0.3, 0.3, 0.4]))
    >>> d.tolist(), c.tolist()
    ([-1, 0, 1], [0.5, 0.5, 0.4])
    """
    stacked = np.stack([p_down, p_flat, p_up])
    best = stacked.argmax(axis=0)
    direction = (best - 1).astype(np.int64)
    confidence = np.take_along_axis(stacked, best[None, :], axis=0)[0]
    return direction, confidence


def _check_rule(rule: str) -> str:
    """``rule`` if it is one of ``_RULES``, else a ValueError naming them."""
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {list(_RULES)}, got {rule!r}")
    return rule


def _class_column(proba: pd.DataFrame, cls: int) -> np.ndarray:
    for c in proba.columns:
        if c == cls:
            return proba[c].to_numpy(dtype=np.float64)
    return np.zeros(len(proba))


@dataclass
class Signals:
    """Long-form signals (``frame``) with wide views ready for ``backtest.from_signals``.

    ``frame`` has ``timestamp``, ``symbol`` (when the features had them), ``p_down``,
    ``p_flat``, ``p_up``, ``direction``, ``confidence``, ``entry``, ``exit``,
    ``short_entry`` and ``short_exit``, one row per input row.
    """

    frame: pd.DataFrame
    threshold: float

    def wide(self, column: str, like: pd.DataFrame | None = None, fill: Any = None
             ) -> pd.DataFrame:
        """``column`` as a timestamp × symbol frame, optionally reindexed like ``like``
        (e.g. the close frame; rows without a signal get ``fill``: False for booleans,
        0 for the direction, NaN otherwise)."""
        if not {"timestamp", "symbol"} <= set(self.frame.columns):
            raise DataError("Signals.wide: the features had no timestamp/symbol columns")
        w = self.frame.pivot(index="timestamp", columns="symbol", values=column)
        w.columns.name = None
        dtype = self.frame[column].dtype
        is_bool = pd.api.types.is_bool_dtype(dtype)
        if fill is None:
            fill = False if is_bool else (0 if column == "direction" else np.nan)
        if like is not None:
            w = w.reindex(index=like.index, columns=like.columns)
        if w.isna().to_numpy().any():
            w = w.fillna(fill)
        return w.astype(dtype) if is_bool or column == "direction" else w

    @property
    def entries(self) -> pd.DataFrame:
        """Long entries (``direction == 1``), timestamp × symbol."""
        return self.wide("entry")

    @property
    def exits(self) -> pd.DataFrame:
        """Long exits, timestamp × symbol."""
        return self.wide("exit")

    @property
    def direction(self) -> pd.DataFrame:
        """Target direction (-1/0/1), timestamp × symbol."""
        return self.wide("direction")

    @property
    def confidence(self) -> pd.DataFrame:
        """Confidence of the direction, timestamp × symbol."""
        return self.wide("confidence")

    def backtest(self, close: pd.DataFrame, *, direction: str = "longonly", **kwargs: Any):
        """``backtest.from_signals`` on ``close`` (timestamp × symbol) with these signals,
        reindexed to close (no signal where a row has no prediction)."""
        from alphatrade_lab.backtest import from_signals

        if direction == "longonly":
            entries, exits = self.wide("entry", close), self.wide("exit", close)
        elif direction == "shortonly":
            entries = self.wide("short_entry", close)
            exits = self.wide("short_exit", close)
        else:
            raise ValueError("Signals.backtest: direction must be 'longonly' or 'shortonly'")
        return from_signals(close, entries, exits, direction=direction, **kwargs)


def signals(bundle: ModelBundle, X: pd.DataFrame, threshold: float = 0.5, *,
            exit_on_flat: bool = True, proba: pd.DataFrame | None = None,
            rule: str = "threshold") -> Signals:
    """Entries, exits, target direction and confidence from a bundle's probabilities.

    Parameters
    ----------
    bundle
        A :class:`ModelBundle` whose classes include 1 and/or -1 (labels from
        :func:`~alphatrade_lab.models.labels`).
    X
        Features (aligned by name, see :meth:`ModelBundle.predict_proba`), with
        ``timestamp`` and ``symbol`` columns for the wide views.
    threshold
        Smallest probability of a direction that gives a signal (rule in the module
        docstring).
    exit_on_flat
        Exit a long (short) position when the direction is 0 too, not only when it flips.
    proba
        Precomputed ``bundle.predict_proba(X)`` (skips the model).
    rule
        ``"threshold"`` (the rule above) or ``"argmax"`` (the most probable class, for an
        exported policy; ``threshold`` is then not used).

    Returns
    -------
    Signals

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from alphatrade_lab.models import ModelBundle
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"f": rng.normal(size=300)})
    >>> y = np.where(X["f"] > 0.3, 1, np.where(X["f"] < -0.3, -1, 0))
    >>> b = ModelBundle(LogisticRegression().fit(X.to_numpy(), y), ["f"], [0.0], [1.0],
    ...                 [-1, 0, 1])
    >>> s = signals(b, pd.DataFrame({"f": [2.0, -2.0, 0.0]}), threshold=0.6)
    >>> s.frame["direction"].tolist(), s.frame["entry"].tolist()
    ([1, -1, 0], [True, False, False])
    >>> signals(b, pd.DataFrame({"f": [2.0, 0.0]}), rule="argmax").frame["direction"].tolist()
    [1, 0]
    """
    _check_rule(rule)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    p = bundle.predict_proba(X) if proba is None else proba
    p_up, p_down = _class_column(p, 1), _class_column(p, -1)
    p_flat = _class_column(p, 0)
    if rule == "argmax":
        d, conf = direction_from_argmax(p_down, p_flat, p_up)
    else:
        d, conf = direction_from_proba(p_up, p_down, threshold)
    data: dict[str, Any] = {}
    if isinstance(X, pd.DataFrame):
        for key in ("timestamp", "symbol"):
            if key in X.columns:
                data[key] = X[key].array
    data.update(p_down=p_down, p_flat=p_flat, p_up=p_up, direction=d, confidence=conf,
                entry=d == 1, exit=(d != 1) if exit_on_flat else (d == -1),
                short_entry=d == -1, short_exit=(d != -1) if exit_on_flat else (d == 1))
    frame = pd.DataFrame(data, index=X.index if isinstance(X, pd.DataFrame) else None)
    return Signals(frame, float(threshold))
