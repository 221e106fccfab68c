"""News sentiment: sources of articles, scorers, and their alignment to bars.

Sources (:mod:`~alphatrade_lab.sentiment.sources`) each produce one article frame
(:mod:`~alphatrade_lab.sentiment.articles`: ``published_at`` UTC, ``source``, ``title``,
``description``, ``url``, ``symbols``); articles that must not be used (no publication
time, from the future, another language, duplicates, malformed pages) are skipped and
listed in the source's ``report``. :class:`SymbolMap` tags articles with tickers by whole
words, never substrings.

>>> from alphatrade_lab.sentiment import SymbolMap
>>> SymbolMap({"AAPL": ["Apple"]}).find("Applebee's and Apple")
['AAPL']
"""

# sources, articles and symbols
from alphatrade_lab.sentiment.articles import (
    ARTICLE_COLUMNS,
    SKIP_COLUMNS,
    SKIP_REASONS,
    Skipped,
    SkipReport,
    build_articles,
    dedupe,
    empty_articles,
    normalize_title,
    normalize_url,
)
from alphatrade_lab.sentiment.sources import FileSource, NewsAPISource, RSSSource
from alphatrade_lab.sentiment.symbols import SymbolMap

__all__ = [
    # sources, articles and symbols
    "ARTICLE_COLUMNS",
    "FileSource",
    "NewsAPISource",
    "RSSSource",
    "SKIP_COLUMNS",
    "SKIP_REASONS",
    "SkipReport",
    "Skipped",
    "SymbolMap",
    "build_articles",
    "dedupe",
    "empty_articles",
    "normalize_title",
    "normalize_url",
]
