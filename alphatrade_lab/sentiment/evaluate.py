"""Accuracy of sentiment scorers against labelled headlines, overall and per category.

A score becomes a label with a neutral band: ``positive`` above ``+band``, ``negative``
below ``-band``, ``neutral`` in between (0.05 is VADER's own convention for its
compound score).

>>> from alphatrade_lab.sentiment import NaiveKeywordScorer, evaluate_scorers
>>> texts = ["Shares rise", "Regulator acts against the merger", "Profits fall"]
>>> evaluate_scorers(texts, ["positive", "negative", "negative"], [NaiveKeywordScorer()])
          scorer category  n  correct  accuracy
0  naive_keyword      all  3        2  0.666667
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.sentiment.scorers import Scorer, as_texts

__all__ = ["SENTIMENT_LABELS", "evaluate_scorers", "label_scores"]

#: The labels a score is read as, and a labelled set may use.
SENTIMENT_LABELS = ("negative", "neutral", "positive")


def label_scores(scores: Any, neutral_band: float = 0.05) -> np.ndarray:
    """Read scores as labels: ``positive`` > ``neutral_band``, ``negative`` < ``-neutral_band``.

    A NaN score is a :class:`~alphatrade_lab.errors.DataError` naming its position.

    Examples
    --------
    >>> label_scores([0.5, 0.05, -0.2]).tolist()
    ['positive', 'neutral', 'negative']
    """
    if not (np.isfinite(neutral_band) and 0 <= neutral_band < 1):
        raise DataError(f"neutral_band must be in [0, 1), got {neutral_band!r}")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(np.isnan(s))
    if bad.size:
        raise DataError(f"scores[{bad[0]}] is NaN: a score must be a number")
    return np.where(s > neutral_band, "positive",
                    np.where(s < -neutral_band, "negative", "neutral")).astype(object)


def _labels(labels: Any, n: int, what: str, allowed: tuple[str, ...] | None) -> np.ndarray:
    values = np.asarray(pd.Series(labels).tolist() if isinstance(labels, pd.Series)
                        else list(labels), dtype=object)
    if values.shape != (n,):
        raise DataError(f"{what} has {values.size} values for {n} texts")
    for i, value in enumerate(values):
        if not isinstance(value, str) or (allowed is not None and value not in allowed):
            want = f"one of {list(allowed)}" if allowed is not None else "a str"
            raise DataError(f"{what}[{i}] is {value!r}, not {want}")
    return values


def _scorers(scorers: Sequence[Scorer] | Mapping[str, Scorer]) -> dict[str, Scorer]:
    pairs = (list(scorers.items()) if isinstance(scorers, Mapping)
             else [(getattr(s, "name", type(s).__name__), s) for s in scorers])
    out: dict[str, Scorer] = {}
    for name, scorer in pairs:
        if not callable(getattr(scorer, "score", None)):
            raise DataError(f"scorer {name!r} is a {type(scorer).__name__}, which has no "
                            "score(texts) method")
        if name in out:
            raise DataError(f"two scorers are named {name!r}: pass a dict to name them apart")
        out[name] = scorer
    if not out:
        raise DataError("no scorer to evaluate")
    return out


def evaluate_scorers(texts: Any, labels: Any, scorers: Sequence[Scorer] | Mapping[str, Scorer],
                     categories: Any = None, neutral_band: float = 0.05) -> pd.DataFrame:
    """Accuracy of each scorer on labelled texts, overall and per category.

    Parameters
    ----------
    texts : sequence of str
        The headlines.
    labels : sequence of str
        Their true labels, each one of :data:`SENTIMENT_LABELS`.
    scorers : sequence of Scorer, or mapping of name to Scorer
        Scored with ``score(texts)``; a sequence names each by its ``name``.
    categories : sequence of str, optional
        A category per text (e.g. ``negation``): one more row per scorer and category,
        in order of first appearance.
    neutral_band : float
        Scores within ``[-neutral_band, neutral_band]`` read as neutral.

    Returns
    -------
    DataFrame
        One row per scorer and category (``all`` first): ``scorer``, ``category``, ``n``,
        ``correct`` and ``accuracy`` (``correct / n``).

    Examples
    --------
    >>> from alphatrade_lab.sentiment import NaiveKeywordScorer
    >>> r = evaluate_scorers(["Waterfall hotel opens", "Profits fall"], ["neutral", "negative"],
    ...                      {"naive": NaiveKeywordScorer()}, categories=["trap", "plain"])
    >>> r[["category", "accuracy"]].to_numpy().tolist()
    [['all', 0.5], ['trap', 0.0], ['plain', 1.0]]
    """
    values, _ = as_texts(texts)
    truth = _labels(labels, len(values), "labels", SENTIMENT_LABELS)
    groups = ["all"]
    cats = None
    if categories is not None:
        cats = _labels(categories, len(values), "categories", None)
        if (cats == "all").any():
            raise DataError(f"categories[{int(np.argmax(cats == 'all'))}] is 'all', which is "
                            "reserved for the row of every text")
        groups += list(dict.fromkeys(cats.tolist()))
    rows = []
    for name, scorer in _scorers(scorers).items():
        got = label_scores(scorer.score(values), neutral_band)
        if got.shape != truth.shape:
            raise DataError(f"scorer {name!r} returned {got.size} scores for {truth.size} texts")
        hit = got == truth
        for group in groups:
            mask = np.ones(len(values), dtype=bool) if cats is None or group == "all" \
                else cats == group
            n = int(mask.sum())
            correct = int(hit[mask].sum())
            rows.append((name, group, n, correct, correct / n if n else np.nan))
    return pd.DataFrame(rows, columns=["scorer", "category", "n", "correct", "accuracy"])
