"""News sentiment: sources of articles, scorers, and their alignment to bars.

Sources (:mod:`~alphatrade_lab.sentiment.sources`) each produce one article frame
(:mod:`~alphatrade_lab.sentiment.articles`: ``published_at`` UTC, ``source``, ``title``,
``description``, ``url``, ``symbols``); articles that must not be used (no publication
time, from the future, another language, duplicates, malformed pages) are skipped and
listed in the source's ``report``. :class:`SymbolMap` tags articles with tickers by whole
words, never substrings. Scorers (:mod:`~alphatrade_lab.sentiment.scorers`) give every
headline a score in [-1, 1] through one interface, and :func:`evaluate_scorers` reports
their accuracy against labelled headlines. :func:`news_features` turns scored articles into
per-bar features (:mod:`~alphatrade_lab.sentiment.align`: usable only from the close of the
first bar that ends after publication plus a latency). :func:`fetch_cached` keeps articles
and scores in the lab store's ``news`` table and asks a source only for what is new
(:mod:`~alphatrade_lab.sentiment.cache`).

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

# isort: split
# alignment to bars
from alphatrade_lab.sentiment.align import NEWS_FEATURES, news_features

# isort: split
# the news cache in the lab store
from alphatrade_lab.sentiment.cache import cache_query, fetch_cached

# isort: split
# scorers and their evaluation
from alphatrade_lab.sentiment.evaluate import SENTIMENT_LABELS, evaluate_scorers, label_scores
from alphatrade_lab.sentiment.scorers import (
    LoughranMcDonaldScorer,
    NaiveKeywordScorer,
    Scorer,
    VaderScorer,
)

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
    # alignment to bars
    "NEWS_FEATURES",
    "news_features",
    # the news cache in the lab store
    "cache_query",
    "fetch_cached",
    # scorers and their evaluation
    "LoughranMcDonaldScorer",
    "NaiveKeywordScorer",
    "SENTIMENT_LABELS",
    "Scorer",
    "VaderScorer",
    "evaluate_scorers",
    "label_scores",
]
