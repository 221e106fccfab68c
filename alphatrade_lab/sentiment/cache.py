"""Incremental news fetching through the lab store's cache: a second run asks the source
only for what is new.

:func:`fetch_cached` takes a source and a store (any object with the
:class:`~alphatrade_lab.store.LabStore` news methods: ``news_watermark``, ``news_keys``,
``news_known``, ``record_news`` and ``news``; this layer never imports the store):

1. **Ask for what is new.** A source whose ``fetch`` takes ``start`` and ``end`` (NewsAPI)
   is asked from the *watermark* on: the latest ``published_at`` stored under this
   source's query (:func:`cache_query`), or ``start`` when that is later. NewsAPI's
   ``from`` is inclusive and to the second, so the articles of the watermark's second are
   asked again (one published in that second may have been indexed after the last run)
   and dropped as already stored. With ``end`` at or before the watermark nothing is
   asked. Any other source (RSS, file) is read whole.
2. **Keep only new articles.** Articles whose ``url_key`` (the normalised URL, see
   :mod:`alphatrade_lab.store.news`) is already stored, under any query, are neither
   scored nor written again: nothing is stored twice.
3. **Score and record them.** Each scorer scores the new articles' titles; the articles
   and their scores (``{scorer.name: score}``) are written in one transaction, with the
   ``language`` a windowed source asked for (NewsAPI filters it server-side; a feed's or
   file's language filter keeps articles of unknown language, so none is stored).
4. **Return the cache for the range**: the stored articles published in [start, end)
   that this query stored or this fetch returned, oldest first, as
   :meth:`~alphatrade_lab.store.LabStore.news` returns them (``score_<name>`` columns).
   ``frame.attrs["news_cache"]`` says what happened: the ``query``, the time asked
   ``from`` (None: everything), the articles ``fetched`` and the ``written`` ones.

The cache fills forward: a range before the first cached article is not fetched again
for a windowed source (a new ``query`` label, or a fresh store, does). A NewsAPI answer
capped by the plan's result limit (``max_results``, newest first) leaves a gap between the
watermark and the oldest article returned; a warning on the ``alphatrade_lab.sentiment``
logger says so (run more often, or narrow the query).

>>> import pandas as pd
>>> from alphatrade_lab.store import LabStore
>>> from alphatrade_lab.testing import LocalNewsAPI
>>> from alphatrade_lab.sentiment import LoughranMcDonaldScorer, NewsAPISource
>>> arts = [{"title": "AAA profit beats estimates", "url": "https://w.com/1",
...          "publishedAt": "2024-05-01T13:30:00Z"}]
>>> store = LabStore(":memory:")
>>> with LocalNewsAPI(arts) as srv:
...     src = NewsAPISource("AAA", api_key=srv.api_key, base_url=srv.url)
...     first = fetch_cached(src, store, scorers=[LoughranMcDonaldScorer()])
...     srv.add_articles([{"title": "AAA recalls cars", "url": "https://w.com/2",
...                        "publishedAt": "2024-05-02T09:00:00Z"}])
...     second = fetch_cached(src, store, scorers=[LoughranMcDonaldScorer()])
>>> first.attrs["news_cache"]["written"], second.attrs["news_cache"]
(1, {'query': 'AAA', 'from': Timestamp('2024-05-01 13:30:00+0000', tz='UTC'), \
'fetched': 2, 'written': 1})
>>> second[["title", "score_loughran_mcdonald"]].values.tolist()
[['AAA profit beats estimates', 1.0], ['AAA recalls cars', -1.0]]
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.redact import redact
from alphatrade_lab.sentiment.scorers import Scorer

__all__ = ["cache_query", "fetch_cached"]

log = logging.getLogger("alphatrade_lab.sentiment")


def cache_query(source: Any) -> str:
    """The ``query`` a source's articles are cached under (and its watermark kept by):
    NewsAPI's ``q`` (with ``[language=xx]`` when it filters a language), a feed's URL or
    path (redacted), a file's path; another object's ``query`` attribute, else its repr.

    >>> from alphatrade_lab.sentiment import NewsAPISource, RSSSource
    >>> cache_query(NewsAPISource("apple OR iphone", language="en", api_key="k"))
    'apple OR iphone [language=en]'
    >>> cache_query(RSSSource("https://feeds.example.com/rss?token=s3cr3tvalue"))
    'https://feeds.example.com/rss?token=[REDACTED]'
    """
    for attr in ("location", "path"):  # RSSSource, FileSource
        where = getattr(source, attr, None)
        if where is not None:
            return redact(str(where))
    query = getattr(source, "query", None)
    if isinstance(query, str) and query:
        language = getattr(source, "language", None)
        return redact(f"{query} [language={language}]" if language else query)
    return redact(repr(source))


def _utc(value: Any, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"fetch_cached: {name} must be a time, got {value!r}") from exc
    if ts is pd.NaT:
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _windowed(source: Any) -> bool:
    """Whether ``source.fetch`` takes a ``start`` and an ``end`` (asks for a range)."""
    try:
        params = inspect.signature(source.fetch).parameters
    except (TypeError, ValueError):
        return False
    return "start" in params and "end" in params


def _scorers(scorers: Sequence[Scorer] | Scorer | None) -> list[Scorer]:
    if scorers is None:
        return []
    items = [scorers] if isinstance(scorers, Scorer) else list(scorers)
    names = [getattr(s, "name", None) for s in items]
    bad = [s for s, n in zip(items, names, strict=True)
           if not isinstance(n, str) or not n or not callable(getattr(s, "score", None))]
    if bad:
        raise TypeError(f"fetch_cached: scorers must have a name and a score(texts) method "
                        f"(e.g. LoughranMcDonaldScorer()), got {bad[0]!r}")
    repeated = sorted({str(n) for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"fetch_cached: two scorers are named {repeated[0]!r}; their scores "
                         "would overwrite each other")
    return items


def fetch_cached(source: Any, store: Any, *, scorers: Sequence[Scorer] | Scorer | None = None,
                 start: Any = None, end: Any = None, query: str | None = None,
                 now: Any = None) -> pd.DataFrame:
    """Fetch what is new from ``source``, score and cache it in ``store``, and return the
    cached articles of [start, end) (the steps are in the module's notes).

    Parameters
    ----------
    source
        A :class:`~alphatrade_lab.sentiment.NewsAPISource` (asked from the watermark on),
        an :class:`~alphatrade_lab.sentiment.RSSSource` or
        :class:`~alphatrade_lab.sentiment.FileSource` (read whole), or any object whose
        ``fetch()`` returns an article frame.
    store
        A :class:`~alphatrade_lab.store.LabStore` (DuckDB or PostgreSQL).
    scorers
        Scorers of the new articles' titles (``name`` and ``score(texts)``); None: store
        the articles unscored.
    start, end
        The range wanted (UTC; naive read as UTC; None: open). ``end`` is also the last
        time asked of a windowed source.
    query
        The label the articles are cached under (default :func:`cache_query`).
    now
        Passed to the source's ``fetch`` (what counts as the future), when given.

    Returns
    -------
    pandas.DataFrame
        The cached article frame with ``url_key``, ``language``, ``query``,
        ``fetched_at`` and ``score_<name>`` columns; ``attrs["news_cache"]`` as noted.

    Raises
    ------
    DataError
        The source returned a bad article frame (the row is named); nothing is written.
    """
    chosen = _scorers(scorers)
    label = query if query is not None else cache_query(source)
    lo, hi = _utc(start, "start"), _utc(end, "end")
    since: pd.Timestamp | None = None
    kwargs = {} if now is None else {"now": now}
    windowed = _windowed(source)
    if windowed:
        mark = store.news_watermark(query=label)
        since = max((t for t in (lo, mark) if t is not None), default=None)
        if hi is not None and since is not None and since >= hi:
            fetched = None  # nothing new can fall in the range
        else:
            fetched = source.fetch(since, hi, **kwargs)
            limit = getattr(source, "max_results", None)
            if mark is not None and isinstance(limit, int) and \
                    len(fetched) + len(getattr(source, "report", ())) >= limit:
                log.warning("%s: %d articles since %s reach the source's max_results=%d; "
                            "older new articles may be missing (run more often or narrow "
                            "the query)", label, len(fetched), mark.isoformat(), limit)
    else:
        fetched = source.fetch(**kwargs)
    written = n_fetched = 0
    keys: set[str] = set()
    if fetched is not None and len(fetched):
        n_fetched = len(fetched)
        key_of = store.news_keys(fetched)
        keys = set(key_of)
        new = fetched[~key_of.isin(store.news_known(key_of)).to_numpy()]
        new = new[~store.news_keys(new).duplicated().to_numpy()]  # the first of repeats
        if len(new):
            titles = new["title"]
            scores = {s.name: np.asarray(s.score(titles), dtype=np.float64) for s in chosen}
            # NewsAPI filters its language server-side; a feed's or file's filter keeps
            # the articles whose language is unknown, so theirs stays unknown
            language = getattr(source, "language", None) if windowed else None
            written = store.record_news(new, query=label, scores=scores or None,
                                        language=language)
    cached = store.news(start=lo, end=hi)
    mine = (cached["query"] == label).to_numpy(dtype=bool) | cached["url_key"].isin(
        keys).to_numpy()
    out = cached[mine].reset_index(drop=True)
    out.attrs["news_cache"] = {"query": label, "from": since, "fetched": n_fetched,
                               "written": written}
    return out
