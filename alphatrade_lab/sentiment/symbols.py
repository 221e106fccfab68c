"""Which symbols an article is about: tickers, company names and aliases, matched as words.

A name matches only as a whole word sequence, never inside another word: ``"Apple"``
finds *Apple's results* and *Apple-branded*, not *Applebee's* or *pineapple*. Names keep
their case (``"Apple"`` does not find *apple pie*) except that an all-capitals headline
(*APPLE BEATS*) matches too. A ticker matches as a cashtag in any case (``$aaa``) or as
a whole upper-case word that is not part of a hyphenated or dotted word: ``"AAA"`` finds
*AAA jumps* and *$AAA*, not *AAAB*, *AAA-rated* or *aaa*. Tickers listed in
``cashtag_only`` (common words such as ``"A"``, ``"IT"``, ``"ALL"``; every one-letter
ticker is treated so) match only as cashtags.

>>> m = SymbolMap({"AAPL": ["Apple", "Apple Inc."], "AAA": []})
>>> m.find("Applebee's posts record sales")
[]
>>> m.find("Apple's supplier and AAA both rally; $aapl up")
['AAA', 'AAPL']
>>> m.find("AAA-rated bonds and the AAAB fund")
[]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from alphatrade_lab.errors import DataError

__all__ = ["SymbolMap"]

# a word character or a joiner that continues a word ("AAA-rated", "AAA.com", "AT&T")
_BEFORE = r"(?<![\w$@#&\-])(?<!\w\.)"
_AFTER_NAME = r"(?![\w&])"
_AFTER_TICKER = r"(?![\w&]|[-.]\w)"
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,9}(?:[.\-][A-Za-z]{1,2})?)(?![\w])")


def _alternation(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, as a character trie: one branch per next
    character (Python's ``re`` tries a plain alternation's branches one by one at every
    position), an optional tail where a shorter word ends, so that the longest word wins
    ("Apple Inc." over "Apple") and a shorter one is tried when the longer fails.

    >>> print(_alternation(["Apple", "Apple Inc.", "Amazon"]))
    A(?:mazon|pple(?:\\ Inc\\.)?)
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def pattern(node: dict[str, Any]) -> str:
        branches = [re.escape(ch) + pattern(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        return f"(?:{body})?" if "" in node else body

    return pattern(trie)


class SymbolMap:
    """Tickers and the names that stand for them.

    Parameters
    ----------
    names
        ``{ticker: [company name, alias, ...]}``; the ticker itself always counts. Names
        are matched with their own capitalisation (and in all capitals).
    cashtag_only
        Tickers that are ordinary words: matched only as ``$TICKER``. One-letter tickers
        are always cashtag-only.

    Examples
    --------
    >>> m = SymbolMap({"MSFT": ["Microsoft"], "IT": ["Gartner"]}, cashtag_only=["IT"])
    >>> m.find("IT spending lifts Microsoft"), m.find("$IT and MSFT")
    (['MSFT'], ['IT', 'MSFT'])
    """

    def __init__(self, names: Mapping[str, Iterable[str]],
                 cashtag_only: Iterable[str] = ()) -> None:
        self._by_name: dict[str, str] = {}
        tickers: list[str] = []
        for ticker, aliases in names.items():
            if not isinstance(ticker, str) or not re.fullmatch(r"[A-Z][A-Z0-9]*(?:[.\-][A-Z]+)?",
                                                                ticker):
                raise DataError(f"SymbolMap: ticker {ticker!r} must be upper-case letters "
                                "and digits (a class suffix like 'BRK.B' is allowed)")
            tickers.append(ticker)
            if isinstance(aliases, str):
                raise DataError(f"SymbolMap: the names of {ticker!r} must be a list, "
                                f"got the text {aliases!r}")
            for alias in aliases:
                alias = str(alias).strip()
                if not alias:
                    continue
                for form in (alias, alias.upper()):
                    other = self._by_name.setdefault(form, ticker)
                    if other != ticker:
                        raise DataError(f"SymbolMap: the name {form!r} stands for both "
                                        f"{other!r} and {ticker!r}")
        self.tickers = tuple(sorted(tickers))
        self.cashtag_only = frozenset(t for t in tickers if len(t) == 1) | frozenset(
            str(t) for t in cashtag_only)
        unknown = sorted(self.cashtag_only - set(tickers))
        if unknown:
            raise DataError(f"SymbolMap: cashtag_only names unknown tickers {unknown}")
        bare = [t for t in tickers if t not in self.cashtag_only]
        self._bare = (re.compile(f"{_BEFORE}(?:{_alternation(bare)}){_AFTER_TICKER}")
                      if bare else None)
        self._names = (re.compile(f"{_BEFORE}(?:{_alternation(self._by_name)}){_AFTER_NAME}")
                       if self._by_name else None)
        self._upper = {t.upper(): t for t in tickers}

    def find(self, text: str | None) -> list[str]:
        """The tickers ``text`` mentions, sorted.

        >>> SymbolMap({"AAA": ["Alpha Corp"]}).find("alpha corp and Alpha Corporation")
        []
        """
        if not text:
            return []
        found = {self._upper[m.group(1).upper()] for m in _CASHTAG.finditer(text)
                 if m.group(1).upper() in self._upper}
        if self._bare is not None:
            found.update(m.group() for m in self._bare.finditer(text))
        if self._names is not None:
            found.update(self._by_name[m.group()] for m in self._names.finditer(text))
        return sorted(found)

    def tag(self, articles: pd.DataFrame) -> pd.DataFrame:
        """A copy of an article frame whose ``symbols`` also hold the tickers found in each
        title and description.

        >>> from alphatrade_lab.sentiment.articles import build_articles, SkipReport
        >>> a = build_articles([{"published_at": "2024-05-01", "title": "Apple rallies",
        ...                      "symbols": ["MSFT"]}], source="x", report=SkipReport())
        >>> SymbolMap({"AAPL": ["Apple"]}).tag(a)["symbols"].tolist()
        [['AAPL', 'MSFT']]
        """
        for column in ("title", "description", "symbols"):
            if column not in articles.columns:
                raise DataError(f"SymbolMap.tag: not an article frame, no column {column!r}")
        out = articles.copy()
        out["symbols"] = [
            sorted(set(given) | set(self.find(f"{title}\n{desc}")))
            for title, desc, given in zip(out["title"], out["description"], out["symbols"],
                                          strict=True)]
        return out

    def __repr__(self) -> str:
        return f"SymbolMap({len(self.tickers)} tickers, {len(self._by_name)} names)"
