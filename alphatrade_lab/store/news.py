"""The news cache in the lab store: articles and their scores, one row per article
(``news``, schema version 4), written by :meth:`NewsTables.record_news`.

Keys
----
An article's row is keyed by ``url_key``: its URL through
:func:`~alphatrade_lab.sentiment.normalize_url` (scheme and host case, ``www.``, tracking
parameters and fragments do not make another article), so the same article fetched again,
from another query or feed, is **replaced, never stored twice**. An article without a URL
is keyed by its normalised title, ``title:<normalize_title(title)>`` (the rule
:func:`~alphatrade_lab.sentiment.dedupe` uses). Like every stored text the key is redacted:
a URL carrying a credential (``?token=...``) is stored, and keyed, with ``[REDACTED]``.

Replacing
---------
A later :meth:`~NewsTables.record_news` of a stored article replaces its publication time,
source, title, description, URL, symbols and ``fetched_at`` by the new ones. Its
``scores`` are merged by scorer name (a new score replaces that scorer's old one; the
other scorers' scores are kept), and a ``query`` or ``language`` the new row leaves empty
keeps the stored one. Repeats of an article within one call: the last row wins. The whole
call is **one transaction** (the stored rows of the batch are read, deleted and written
again inside it): a write that fails leaves every stored row as it was.

Reading
-------
:meth:`~NewsTables.news` returns the article frame
(:data:`~alphatrade_lab.sentiment.ARTICLE_COLUMNS`: ``published_at`` as
``datetime64[ns, UTC]``, ``symbols`` as lists), then ``url_key``, ``language``, ``query``,
``fetched_at`` and one float column ``score_<name>`` per scorer found in the rows read
(NaN where that scorer did not score the article), sorted by name; oldest first.

>>> import pandas as pd
>>> from alphatrade_lab.store import LabStore
>>> store = LabStore(":memory:")
>>> arts = pd.DataFrame({"published_at": pd.to_datetime(["2024-05-01 13:30"], utc=True),
...                      "source": ["Wire"], "title": ["AAA beats estimates"],
...                      "description": [""], "url": ["https://www.wire.com/a?utm_source=x"],
...                      "symbols": [["AAA"]]})
>>> store.record_news(arts, query="AAA", scores={"lm": [0.5]})
1
>>> store.record_news(arts.assign(title="AAA beats"), scores={"vader": [0.4]})
1
>>> store.news()[["title", "url_key", "query", "score_lm", "score_vader"]].values.tolist()
[['AAA beats', 'https://wire.com/a', 'AAA', 0.5, 0.4]]
>>> store.news_watermark(query="AAA")
Timestamp('2024-05-01 13:30:00+0000', tz='UTC')
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from alphatrade_lab.errors import DataError, location
from alphatrade_lab.redact import Redactor
from alphatrade_lab.store.validate import to_arrow

__all__ = ["NEWS_EXTRA_COLUMNS", "NewsTables", "news_key"]

#: Columns of an article frame record_news takes besides ARTICLE_COLUMNS and score_<name>.
NEWS_EXTRA_COLUMNS = ("language", "query", "fetched_at", "url_key")
_CHUNK = 500   # url_keys bound per IN list
_SCORE = "score_"


def news_key(url: Any, title: Any) -> str:
    """The ``url_key`` an article is stored under: its normalised URL, or
    ``title:<normalised title>`` when it has no URL (redacted, as the store keeps it).

    >>> news_key("HTTP://www.Wire.com/a/?utm_source=x#top", "AAA beats")
    'https://wire.com/a'
    >>> news_key(None, "  AAA BEATS estimates! ")
    'title:aaa beats estimates'
    """
    return Redactor().text(_plain_key(url, title))


def _plain_key(url: Any, title: Any) -> str:
    """The key before redaction (the store's validation redacts it with the row)."""
    # imported here: the store should not load the sentiment package (its sources pull in
    # httpx) for the many uses that never touch news
    from alphatrade_lab.sentiment.articles import normalize_title, normalize_url

    key = "" if _missing(url) else normalize_url(str(url).strip())
    return key if key else f"title:{normalize_title(title)}"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return False


def _symbols(values: Sequence[Any], index: pd.Index) -> list[list[str] | None]:
    out: list[list[str] | None] = []
    for i, value in enumerate(values):
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, list | tuple) and all(isinstance(s, str) for s in value):
            out.append(list(value))
        elif not isinstance(value, list | tuple) and _missing(value):
            out.append([])
        else:
            raise DataError(f"{location('news', 'symbols', i, label=index[i])} is {value!r}; "
                            "expected a list of tickers (str)")
    return out


def _score_columns(articles: pd.DataFrame, scores: Any) -> dict[str, np.ndarray]:
    """Every score per scorer name: the frame's ``score_<name>`` columns, then ``scores``
    (a mapping name -> one value per row, or a frame of such columns)."""
    given: dict[str, Any] = {c[len(_SCORE):]: articles[c] for c in articles.columns
                             if isinstance(c, str) and c.startswith(_SCORE)}
    if scores is not None:
        if isinstance(scores, pd.DataFrame):
            scores = {str(c): scores[c] for c in scores.columns}
        if not isinstance(scores, Mapping):
            raise DataError(f"record_news: scores must be a mapping of scorer name -> one "
                            f"score per article (or a DataFrame), got {type(scores).__name__}")
        given.update(scores)
    out: dict[str, np.ndarray] = {}
    n = len(articles)
    for name, values in given.items():
        if not isinstance(name, str) or not name.strip():
            raise DataError(f"record_news: a scorer name must be a non-empty text, got {name!r}")
        values = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values,
                                                                                    dtype=object)
        if values.ndim != 1 or len(values) != n:
            raise DataError(f"record_news: scores {name!r} has {values.size} values for "
                            f"{n} articles")
        s = pd.Series(values, dtype=object)
        nums = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = (np.isnan(nums) & s.notna().to_numpy()) | np.isinf(nums) | s.map(
            lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            value = values[i].item() if isinstance(values[i], np.generic) else values[i]
            raise DataError(f"{location('news', 'scores', i, label=articles.index[i])}: "
                            f"score {name!r} is {value!r}; expected a finite number "
                            "(NaN: not scored)")
        out[name] = nums
    return out


def _scores_json(columns: dict[str, np.ndarray], n: int) -> list[dict[str, float] | None]:
    rows: list[dict[str, float] | None] = [None] * n
    for name, nums in columns.items():
        for i in np.flatnonzero(~np.isnan(nums)):
            row = rows[i]
            if row is None:
                row = rows[i] = {}
            row[name] = float(nums[i])
    return rows


def news_rows(articles: pd.DataFrame, *, query: str | None = None, scores: Any = None,
              language: str | None = None, fetched_at: Any = None) -> pa.Table:
    """``articles`` validated as ``news`` rows (an Arrow table, repeats of an article
    collapsed to the last); a bad row raises :class:`DataError` naming it."""
    from alphatrade_lab.sentiment.articles import ARTICLE_COLUMNS

    if not isinstance(articles, pd.DataFrame):
        raise DataError(f"record_news: expected an article frame (DataFrame), got "
                        f"{type(articles).__name__}")
    missing = [c for c in ARTICLE_COLUMNS if c not in articles.columns]
    if missing:
        raise DataError(f"news: not an article frame, missing column(s) {missing} "
                        f"(an article frame has {list(ARTICLE_COLUMNS)})")
    known = {*ARTICLE_COLUMNS, *NEWS_EXTRA_COLUMNS}
    unknown = [str(c) for c in articles.columns if c not in known
               and not (isinstance(c, str) and c.startswith(_SCORE))]
    if unknown:
        raise DataError(f"news: unknown column(s) {unknown}; an article frame has "
                        f"{list(ARTICLE_COLUMNS)}, optionally {list(NEWS_EXTRA_COLUMNS[:3])} "
                        "and score_<name> columns")
    index = articles.index
    titles = articles["title"].tolist()
    for i, title in enumerate(titles):
        if not isinstance(title, str) or not title.strip():
            shown = "missing" if _missing(title) else repr(title)
            raise DataError(f"{location('news', 'title', i, label=index[i])} is {shown}; "
                            "every article needs a title")
    urls = [None if _missing(u) or not str(u).strip() else str(u).strip()
            for u in articles["url"].tolist()]
    frame = pd.DataFrame({
        "url_key": [_plain_key(u, t) for u, t in zip(urls, titles, strict=True)],
        "published_at": articles["published_at"],
        "source": articles["source"], "title": titles,
        "description": articles["description"], "url": urls,
        "symbols": _symbols(articles["symbols"].tolist(), index),
    }, index=index)
    for col, value in (("language", language), ("query", query)):
        given = articles[col] if col in articles.columns else pd.Series(None, index=index,
                                                                        dtype=object)
        frame[col] = given.astype(object).where(given.notna(), value)
    now = pd.Timestamp.now(tz="UTC") if fetched_at is None else fetched_at
    frame["fetched_at"] = articles["fetched_at"] if "fetched_at" in articles.columns else now
    frame["scores"] = _scores_json(_score_columns(articles, scores), len(articles))
    rows = to_arrow("news", frame)
    keys = pd.Series(rows.column("url_key").to_pylist())
    repeat = keys.duplicated(keep="last").to_numpy()
    return rows.filter(pa.array(~repeat)) if repeat.any() else rows


def _merge(rows: pa.Table, stored: dict[str, tuple[Any, Any, Any]]) -> pa.Table:
    """``rows`` with the stored query, language (where the new row has none) and scores
    (merged by name) of the articles already stored."""
    if not stored:
        return rows
    keys = rows.column("url_key").to_pylist()
    cols = {c: rows.column(c).to_pylist() for c in ("query", "language", "scores")}
    for i, key in enumerate(keys):
        old = stored.get(key)
        if old is None:
            continue
        query, language, scores = old
        if cols["query"][i] is None:
            cols["query"][i] = query
        if cols["language"][i] is None:
            cols["language"][i] = language
        if scores is not None:
            merged = {**json.loads(scores), **json.loads(cols["scores"][i] or "{}")}
            cols["scores"][i] = json.dumps(merged, allow_nan=False)
    for name, values in cols.items():
        rows = rows.set_column(rows.schema.get_field_index(name), name,
                               pa.array(values, type=pa.string()))
    return rows


def _expand(frame: pd.DataFrame) -> pd.DataFrame:
    """Stored rows as the article frame: symbols as lists, scores as score_<name>."""
    from alphatrade_lab.sentiment.articles import ARTICLE_COLUMNS

    texts = frame.pop("scores").tolist()
    symbols = frame["symbols"].tolist()
    frame["symbols"] = [[] if _missing(s) else json.loads(s) for s in symbols]
    parsed = [{} if _missing(t) else json.loads(t) for t in texts]
    names = sorted({k for p in parsed for k in p})
    out = frame[[*ARTICLE_COLUMNS, "url_key", "language", "query", "fetched_at"]].copy()
    out["published_at"] = out["published_at"].astype("datetime64[ns, UTC]")
    for name in names:
        out[f"{_SCORE}{name}"] = np.array([p.get(name, np.nan) for p in parsed],
                                          dtype=np.float64)
    return out.reset_index(drop=True)


class NewsTables:
    """:class:`~alphatrade_lab.store.LabStore`'s news cache (a mixin: it uses the store's
    transaction and read helpers; see the module's notes)."""

    if TYPE_CHECKING:
        path: str | Path

        def _transaction(self) -> AbstractContextManager[Any]: ...

        def _append(self, con: Any, table: str, rows: pa.Table) -> None: ...

        def _read(self, sql: str, params: Any = None, *, check: bool = False
                  ) -> pd.DataFrame: ...

        def _select(self, table: str, order: str | None, time_col: str | None = None,
                    start: Any = None, end: Any = None, **filters: Any) -> pd.DataFrame: ...

    def record_news(self, articles: pd.DataFrame, *, query: str | None = None,
                    scores: Any = None, language: str | None = None,
                    fetched_at: Any = None) -> int:
        """Store articles and their scores (upserted on ``url_key``), in ONE transaction.

        Parameters
        ----------
        articles
            An article frame (:data:`~alphatrade_lab.sentiment.ARTICLE_COLUMNS`), as the
            sources return it; it may also hold ``language``, ``query``, ``fetched_at``
            and ``score_<name>`` columns (what :meth:`news` returns: a read frame can be
            written back). ``url_key`` is always computed from ``url`` (a given one is
            ignored).
        query
            What fetched them (a NewsAPI ``q``, a feed's URL): stored with each row that
            has no ``query`` of its own.
        scores
            Scores per scorer: a mapping ``name -> one number per article`` (NaN: not
            scored) or a frame of such columns; stored as JSON ``{name: score}``.
        language
            The ISO-639-1 code of rows without a ``language`` of their own, when known.
        fetched_at
            When they were fetched (default now).

        Returns
        -------
        int
            Rows written (new or replaced; repeats of an article in ``articles`` count once).

        Raises
        ------
        DataError
            A bad row (no title or publication time, symbols that are not a list of
            text, a score that is not a finite number), naming the column and row; an
            unknown column. Nothing of the call is written, and nothing stored changes.

        Examples
        --------
        >>> import pandas as pd
        >>> from alphatrade_lab.store import LabStore
        >>> arts = pd.DataFrame({"published_at": ["2024-05-01 13:30"], "source": "Wire",
        ...                      "title": [None], "description": "", "url": "",
        ...                      "symbols": [[]]})
        >>> LabStore(":memory:").record_news(arts)
        Traceback (most recent call last):
        ...
        alphatrade_lab.errors.DataError: news, column 'title', row 0 (index 0) is missing; ...
        """
        rows = news_rows(articles, query=query, scores=scores, language=language,
                         fetched_at=fetched_at)
        if rows.num_rows == 0:
            return 0
        keys = rows.column("url_key").to_pylist()
        with self._transaction() as con:
            stored: dict[str, tuple[Any, Any, Any]] = {}
            for i in range(0, len(keys), _CHUNK):
                part = keys[i:i + _CHUNK]
                marks = ", ".join("?" * len(part))
                for key, q, lang, sc in con.execute(
                        "SELECT url_key, query, language, CAST(scores AS VARCHAR) FROM news "
                        f"WHERE url_key IN ({marks})", part).fetchall():
                    stored[key] = (q, lang, sc)
                if any(k in stored for k in part):
                    con.execute(f"DELETE FROM news WHERE url_key IN ({marks})", part)
            self._append(con, "news", _merge(rows, stored))
        return rows.num_rows

    def news_keys(self, articles: pd.DataFrame) -> pd.Series:
        """The ``url_key`` each article would be stored under (indexed like ``articles``;
        see :func:`news_key`).

        >>> import pandas as pd
        >>> from alphatrade_lab.store import LabStore
        >>> LabStore(":memory:").news_keys(pd.DataFrame(
        ...     {"url": ["https://a.com/x/", None], "title": ["A", "B b"]})).tolist()
        ['https://a.com/x', 'title:b b']
        """
        if not isinstance(articles, pd.DataFrame) or not {"url", "title"} <= set(
                articles.columns):
            raise DataError("news_keys: expected an article frame with 'url' and 'title'")
        redact = Redactor()   # once: it compiles the secrets it knows
        return pd.Series([redact.text(_plain_key(u, t)) for u, t in zip(
            articles["url"].tolist(), articles["title"].tolist(), strict=True)],
            index=articles.index, dtype=object, name="url_key")

    def news_known(self, keys: Sequence[str] | pd.Series) -> set[str]:
        """Which of ``keys`` (url_keys, e.g. from :meth:`news_keys`) are stored.

        >>> from alphatrade_lab.store import LabStore
        >>> LabStore(":memory:").news_known(["https://a.com/x"])
        set()
        """
        keys = sorted({str(k) for k in keys})
        found: set[str] = set()
        for i in range(0, len(keys), _CHUNK):
            part = keys[i:i + _CHUNK]
            got = self._read(f"SELECT url_key FROM news WHERE url_key IN "
                             f"({', '.join('?' * len(part))})", part)
            found.update(got["url_key"].tolist())
        return found

    def news(self, symbol: Any = None, start: Any = None, end: Any = None,
             source: Any = None, query: Any = None) -> pd.DataFrame:
        """Cached articles published in [start, end) (UTC; naive read as UTC), oldest
        first, filtered by symbol(s) (an article about any of them), source(s) and
        query(ies); the frame is described in the module's notes.

        >>> from alphatrade_lab.store import LabStore
        >>> list(LabStore(":memory:").news().columns)[:6]
        ['published_at', 'source', 'title', 'description', 'url', 'symbols']
        """
        frame = _expand(self._select("news", "published_at, url_key", "published_at", start,
                                     end, source=source, query=query))
        if symbol is None:
            return frame
        wanted = {symbol} if isinstance(symbol, str) else {str(s) for s in symbol}
        keep = [bool(wanted.intersection(s)) for s in frame["symbols"]]
        return frame[np.array(keep, dtype=bool)].reset_index(drop=True)

    def news_watermark(self, source: Any = None, query: Any = None) -> pd.Timestamp | None:
        """The latest ``published_at`` stored for ``source`` and ``query`` (None: any;
        lists allowed), or None when nothing is stored: where an incremental fetch
        starts (:func:`alphatrade_lab.sentiment.fetch_cached`).

        >>> from alphatrade_lab.store import LabStore
        >>> LabStore(":memory:").news_watermark(query="AAA") is None
        True
        """
        where, params = [], []
        for col, value in (("source", source), ("query", query)):
            if value is None:
                continue
            values = [value] if isinstance(value, str) else list(value)
            where.append(f"{col} IN ({', '.join('?' * len(values))})" if values else "FALSE")
            params += values
        sql = "SELECT max(published_at) AS t FROM news"
        if where:
            sql += " WHERE " + " AND ".join(where)
        t = self._read(sql, params or None)["t"].iloc[0]
        return None if pd.isna(t) else pd.Timestamp(t).tz_convert("UTC")
