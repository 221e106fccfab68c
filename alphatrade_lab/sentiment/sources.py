"""News sources, each producing one article frame (:mod:`alphatrade_lab.sentiment.articles`).

* :class:`NewsAPISource`: NewsAPI's ``GET /v2/everything`` through httpx.
* :class:`RSSSource`: an RSS or Atom feed (a URL or a file) read by feedparser.
* :class:`FileSource`: a CSV or JSON Lines file of headlines, so research works offline.

``fetch()`` returns the article frame; what it left out (no publication time, a time in
the future, another language, duplicates, malformed pages or feeds) is in the source's
``report`` (a :class:`~alphatrade_lab.sentiment.articles.SkipReport`, replaced on each
fetch) and in the ``alphatrade_lab.sentiment`` log. A source that cannot go on (a key
NewsAPI refuses, a server that stays down) raises
:class:`~alphatrade_lab.errors.NewsSourceError`; a file that cannot be read as headlines raises
:class:`~alphatrade_lab.errors.DataError` naming the file, row and column.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "news.csv"
>>> _ = path.write_text("published_at,title,symbols\\n2024-05-01T13:30:00Z,AAA jumps,AAA\\n"
...                     ",No date,\\n")
>>> src = FileSource(path)
>>> src.fetch()[["title", "symbols"]].to_dict("records"), src.report.counts()
([{'title': 'AAA jumps', 'symbols': ['AAA']}], {'no_time': 1})
"""

from __future__ import annotations

import calendar
import email.utils
import io
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from alphatrade_lab.errors import DataError, NewsSourceError
from alphatrade_lab.redact import redact, redact_truncate, register_secret
from alphatrade_lab.sentiment.articles import (
    DEFAULT_MAX_SKEW,
    SkipReport,
    build_articles,
)
from alphatrade_lab.sentiment.symbols import SymbolMap

__all__ = ["FileSource", "NewsAPISource", "RSSSource"]

log = logging.getLogger("alphatrade_lab.sentiment")

NEWSAPI_URL = "https://newsapi.org"
SORT_BY = ("publishedAt", "relevancy", "popularity")
_KEY_CODES = ("apiKeyInvalid", "apiKeyMissing", "apiKeyDisabled")
_MAX_BODY = 8 << 20


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (seconds or an HTTP date)."""
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _iso(value: Any, name: str) -> str | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"NewsAPISource.fetch: {name} must be a time, got {value!r}") from exc
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%S")


def _read_at_most(resp: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of a streamed body, and whether it had more: a body is
    never held whole, however large the server makes it."""
    chunks, size = [], 0
    for chunk in resp.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


class NewsAPISource:
    """Articles from NewsAPI's ``/v2/everything`` search.

    Parameters
    ----------
    query
        ``q``: keywords or phrases (NewsAPI's advanced syntax; at most 500 characters).
    language
        ``language``: a 2-letter ISO-639-1 code (``"en"``), or None for all.
    sort_by
        ``sortBy``: ``"publishedAt"`` (default, newest first), ``"relevancy"`` or
        ``"popularity"``.
    page_size, max_results
        ``pageSize`` (1-100) and the plan's limit on results reachable by paging (the
        developer plan's 100). Pages are asked for until the results, ``max_results`` or
        a short page run out; NewsAPI's ``maximumResultsReached`` ends the paging too.
    api_key
        The key; by default the ``NEWSAPI_KEY`` environment variable. Sent only as the
        ``X-Api-Key`` header, never in a URL, and redacted from every message.
    base_url
        NewsAPI's address (a :class:`~alphatrade_lab.testing.LocalNewsAPI` for tests).
    timeout, max_retries, backoff, max_wait
        Per-request timeout (s); retries of a rate-limited answer (HTTP 429 or
        ``rateLimited``), a 5xx or a connection failure, waiting what ``Retry-After``
        asks or else ``backoff * 2**attempt`` seconds; a wait longer than ``max_wait`` is
        not attempted (:class:`~alphatrade_lab.errors.NewsSourceError`).
    symbol_map, max_skew
        Tickers to tag (:class:`~alphatrade_lab.sentiment.symbols.SymbolMap`), and the
        clock skew allowed before an article counts as from the future.

    Examples
    --------
    >>> from alphatrade_lab.testing import LocalNewsAPI
    >>> canned = [{"title": "Apple beats estimates", "url": "https://x.com/1",
    ...            "publishedAt": "2024-05-01T13:30:00Z", "source": {"id": None, "name": "X"}},
    ...           {"title": "Apple no date", "url": "https://x.com/2"}]
    >>> with LocalNewsAPI(canned) as srv:
    ...     src = NewsAPISource("apple", api_key=srv.api_key, base_url=srv.url)
    ...     frame = src.fetch()
    >>> frame["title"].tolist(), src.report.counts()
    (['Apple beats estimates'], {'no_time': 1})
    """

    def __init__(self, query: str, *, language: str | None = None,
                 sort_by: str = "publishedAt", page_size: int = 100, max_results: int = 100,
                 api_key: str | None = None, base_url: str = NEWSAPI_URL,
                 timeout: float = 10.0, max_retries: int = 4, backoff: float = 0.5,
                 max_wait: float = 60.0, symbol_map: SymbolMap | None = None,
                 max_skew: Any = DEFAULT_MAX_SKEW) -> None:
        if not isinstance(query, str) or not query.strip() or len(query) > 500:
            raise ValueError("NewsAPISource: query must be a text of 1 to 500 characters")
        if language is not None and not re.fullmatch(r"[a-z]{2}", language):
            raise ValueError(f"NewsAPISource: language must be a 2-letter ISO-639-1 code, "
                             f"got {language!r}")
        if sort_by not in SORT_BY:
            raise ValueError(f"NewsAPISource: sort_by must be one of {SORT_BY}, got {sort_by!r}")
        if not 1 <= int(page_size) <= 100:
            raise ValueError(f"NewsAPISource: page_size must be 1 to 100, got {page_size!r}")
        if int(max_results) < 1 or int(max_retries) < 0 or backoff < 0 or max_wait < 0:
            raise ValueError("NewsAPISource: max_results must be >= 1 and max_retries, "
                             "backoff and max_wait >= 0")
        self.query, self.language, self.sort_by = query, language, sort_by
        self.page_size, self.max_results = int(page_size), int(max_results)
        self.base_url = base_url.rstrip("/")
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.backoff, self.max_wait = float(backoff), float(max_wait)
        self.symbol_map, self.max_skew = symbol_map, max_skew
        self._key = api_key if api_key is not None else os.environ.get("NEWSAPI_KEY", "")
        register_secret(self._key)
        self.report = SkipReport()
        self.requests = 0

    def __repr__(self) -> str:
        key = "set" if self._key else "missing"
        return (f"NewsAPISource(query={self.query!r}, language={self.language!r}, "
                f"sort_by={self.sort_by!r}, base_url={redact(self.base_url)!r}, key={key})")

    # ------------------------------------------------------------------ fetching
    def fetch(self, start: Any = None, end: Any = None, *, now: Any = None) -> pd.DataFrame:
        """The articles published from ``start`` to ``end`` (``from``/``to``, UTC; None:
        the plan's own limits), as an article frame.

        ``report`` then lists the skipped articles and pages; ``requests`` counts the HTTP
        requests made (retries included).
        """
        if not self._key:
            raise NewsSourceError("NewsAPI: no API key; set NEWSAPI_KEY (a key from "
                            "https://newsapi.org/register) or pass api_key=")
        params: dict[str, Any] = {"q": self.query, "sortBy": self.sort_by,
                                  "pageSize": self.page_size}
        for name, value in (("from", _iso(start, "start")), ("to", _iso(end, "end")),
                            ("language", self.language)):
            if value is not None:
                params[name] = value
        self.report, self.requests = SkipReport(), 0
        records = list(self._records(params))
        return build_articles(records, source="NewsAPI", report=self.report,
                              language=self.language, now=now, max_skew=self.max_skew,
                              symbol_map=self.symbol_map)

    def _records(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        limit = self.max_results
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            page = 1
            while (page - 1) * self.page_size < limit:
                status, body, text = self._get(client, {**params, "page": page})
                where = f"page {page}"
                if isinstance(body, dict) and body.get("status") == "error":
                    if body.get("code") != "maximumResultsReached":
                        raise self._error(status, body, text)
                    log.info("NewsAPI: the plan's result limit reached at page %d", page)
                    return
                if status == 200 and isinstance(body, dict) and body.get("status") == "ok" \
                        and isinstance(body.get("articles"), list):
                    articles = body["articles"]
                    total = body.get("totalResults")
                    if isinstance(total, int) and not isinstance(total, bool):
                        limit = min(limit, total)
                    yield from self._page_records(articles, where)
                    if len(articles) < self.page_size:
                        return
                elif status == 200:
                    self.report.add("NewsAPI", where, "malformed_page", _why_malformed(body, text))
                else:
                    raise self._error(status, body, text)
                page += 1

    def _page_records(self, articles: list[Any], where: str) -> Iterator[dict[str, Any]]:
        for i, art in enumerate(articles):
            at = f"{where}, article {i}"
            if not isinstance(art, dict):
                self.report.add("NewsAPI", at, "malformed_article",
                                f"a {type(art).__name__}, not an object")
                continue
            src = art.get("source")
            yield {"where": at, "published_at": art.get("publishedAt"),
                   "source": src.get("name") if isinstance(src, dict) else None,
                   "title": art.get("title"), "description": art.get("description"),
                   "url": art.get("url")}

    def _get(self, client: httpx.Client, params: dict[str, Any]) -> tuple[int, Any, str]:
        """One page, retried while rate-limited, failing on the server or unreachable."""
        url = f"{self.base_url}/v2/everything"
        for attempt in range(self.max_retries + 1):
            self.requests += 1
            try:
                with client.stream("GET", url, params=params,
                                   headers={"X-Api-Key": self._key}) as resp:
                    data, _ = _read_at_most(resp, _MAX_BODY)
            except httpx.TransportError as exc:
                why, wait = f"{type(exc).__name__} on connecting", self.backoff * 2 ** attempt
            else:
                text = data.decode("utf-8", "replace")
                try:
                    body = json.loads(text)
                except ValueError:
                    body = None
                code = body.get("code") if isinstance(body, dict) else None
                if resp.status_code == 429 or code == "rateLimited":
                    asked = _retry_after(resp.headers)
                    wait = self.backoff * 2 ** attempt if asked is None else asked
                    why = f"rate limited (HTTP {resp.status_code})"
                    if wait > self.max_wait:
                        raise NewsSourceError(f"NewsAPI: {why}, asked to wait {wait:.0f} s, "
                                              f"more than max_wait={self.max_wait:g} s")
                elif resp.status_code >= 500 and code not in _KEY_CODES:
                    why, wait = f"HTTP {resp.status_code}", self.backoff * 2 ** attempt
                else:
                    return resp.status_code, body, text
            if attempt < self.max_retries:
                log.warning("NewsAPI: %s on page %s; retrying in %.2f s", why,
                            params.get("page"), wait)
                time.sleep(wait)
        raise NewsSourceError(f"NewsAPI: {why} on page {params.get('page')}, "
                              f"{self.max_retries + 1} attempts")

    def _error(self, status: int, body: Any, text: str) -> NewsSourceError:
        if isinstance(body, dict) and body.get("status") == "error":
            code, message = body.get("code"), redact(str(body.get("message") or ""))
            if code in _KEY_CODES:
                return NewsSourceError(f"NewsAPI refused the API key ({code}: {message}); set "
                                 "NEWSAPI_KEY to a valid key (https://newsapi.org/account)")
            return NewsSourceError(f"NewsAPI: HTTP {status}, {code}: {message}")
        return NewsSourceError(f"NewsAPI: HTTP {status} with a body that is not NewsAPI's error "
                         f"shape: {redact_truncate(text, 200)!r}")


def _why_malformed(body: Any, text: str) -> str:
    if body is None:
        return f"not JSON ({len(text)} characters: {redact_truncate(text[-60:], 60)!r} at the end)"
    if not isinstance(body, dict):
        return f"a JSON {type(body).__name__}, not an object"
    if body.get("status") != "ok":
        return f"status {body.get('status')!r}, not 'ok'"
    return "no 'articles' list"


class RSSSource:
    """Entries of an RSS or Atom feed, read by feedparser (the ``sentiment`` extra).

    Parameters
    ----------
    location
        An ``http(s)://`` URL (fetched with httpx; feedparser only parses the bytes and
        never fetches anything itself) or a file path.
    name
        The ``source`` of its articles; by default the feed's title (else ``location``).
    language
        Keep only entries in this ISO-639-1 language when the feed or entry says its
        language (``en-us`` counts as ``en``).
    timeout, max_bytes
        HTTP timeout (s) and the largest document read.
    symbol_map, max_skew
        As for :class:`NewsAPISource`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "feed.xml"
    >>> _ = path.write_text('<rss version="2.0"><channel><title>Wire</title>'
    ...     '<item><title>AAA jumps</title><pubDate>Wed, 01 May 2024 13:30:00 +0200</pubDate>'
    ...     '</item><item><title>Undated</title></item></channel></rss>')
    >>> src = RSSSource(path)
    >>> src.fetch()[["published_at", "source"]].values.tolist(), src.report.counts()
    ([[Timestamp('2024-05-01 11:30:00+0000', tz='UTC'), 'Wire']], {'no_time': 1})
    """

    def __init__(self, location: str | os.PathLike[str], *, name: str | None = None,
                 language: str | None = None, timeout: float = 10.0,
                 max_bytes: int = _MAX_BODY, symbol_map: SymbolMap | None = None,
                 max_skew: Any = DEFAULT_MAX_SKEW) -> None:
        self.location = location if isinstance(location, str) else Path(location)
        self.name, self.language = name, language
        self.timeout, self.max_bytes = float(timeout), int(max_bytes)
        self.symbol_map, self.max_skew = symbol_map, max_skew
        self.report = SkipReport()

    def __repr__(self) -> str:
        return f"RSSSource({redact(str(self.location))!r})"

    def _is_url(self) -> bool:
        return isinstance(self.location, str) and re.match(r"(?i)https?://", self.location) \
            is not None

    def _read(self) -> tuple[bytes, dict[str, str]]:
        where = redact(str(self.location))
        if not self._is_url():
            path = Path(self.location)
            try:
                size = path.stat().st_size
                if size > self.max_bytes:
                    raise DataError(f"{path}: {size} bytes, more than max_bytes={self.max_bytes}")
                return path.read_bytes(), {}
            except OSError as exc:
                raise DataError(f"{path}: cannot read the feed ({exc.strerror})") from None
        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=True) as client, \
                    client.stream("GET", str(self.location)) as resp:
                if resp.status_code != 200:
                    raise NewsSourceError(f"RSS {where}: HTTP {resp.status_code}")
                data, more = _read_at_most(resp, self.max_bytes)
                if more:
                    raise NewsSourceError(f"RSS {where}: more than max_bytes={self.max_bytes}")
                headers = {"content-type": resp.headers.get("content-type", ""),
                           "content-location": str(resp.url)}
                return data, headers
        except httpx.HTTPError as exc:
            raise NewsSourceError(f"RSS {where}: {type(exc).__name__}") from None

    def fetch(self, *, now: Any = None) -> pd.DataFrame:
        """The feed's entries as an article frame (``report`` lists what was skipped)."""
        try:  # the sentiment extra, loaded only when a feed is read
            import feedparser
        except ImportError:
            raise ImportError("RSSSource needs feedparser: pip install "
                              "'alphatrade-lab[sentiment]'") from None

        data, headers = self._read()
        where = redact(str(self.location))
        parsed = feedparser.parse(io.BytesIO(data), response_headers=headers)
        self.report = SkipReport()
        if parsed.get("bozo") and not parsed.entries:
            raise DataError(f"{where}: not an RSS or Atom feed "
                            f"({redact(str(parsed.get('bozo_exception')))})")
        if parsed.get("bozo"):
            self.report.add(where, "document", "malformed_feed",
                            str(parsed.get("bozo_exception")))
        feed = parsed.feed
        name = self.name or str(feed.get("title") or "").strip() or where
        records = []
        for i, entry in enumerate(parsed.entries):
            stamp = entry.get("published_parsed") or entry.get("updated_parsed")
            records.append({
                "where": f"entry {i}",
                "published_at": (pd.Timestamp(calendar.timegm(stamp), unit="s", tz="UTC")
                                 if stamp else None),
                "source": name, "title": entry.get("title"),
                "description": entry.get("summary"), "url": entry.get("link"),
                "language": (entry.get("title_detail") or {}).get("language")
                or feed.get("language"),   # an entry's xml:lang, else the feed's
            })
        return build_articles(records, source=where, report=self.report,
                              language=self.language, now=now, max_skew=self.max_skew,
                              symbol_map=self.symbol_map)


class FileSource:
    """Headlines from a CSV or JSON Lines file (``.csv``; ``.jsonl``/``.ndjson``).

    Columns (CSV header, or JSON keys): ``published_at`` and ``title`` required;
    ``source`` (default: the file's name), ``description``, ``url``, ``symbols`` (a
    JSON list, or text separated by ``,`` ``;`` ``|`` or spaces) and ``language``
    optional; others are ignored. An empty ``published_at`` is reported and skipped like
    every bad-input rule of :func:`~alphatrade_lab.sentiment.articles.build_articles`; a
    time that cannot be read, a bad ``symbols`` value, a missing column or a line that is
    not a JSON object raises :class:`~alphatrade_lab.errors.DataError` naming the file,
    row (line) and column.

    Parameters
    ----------
    path
        The file.
    language, symbol_map, max_skew
        As for :class:`NewsAPISource`.
    """

    REQUIRED = ("published_at", "title")

    def __init__(self, path: str | os.PathLike[str], *, language: str | None = None,
                 symbol_map: SymbolMap | None = None, max_skew: Any = DEFAULT_MAX_SKEW) -> None:
        self.path = Path(path)
        self.language, self.symbol_map, self.max_skew = language, symbol_map, max_skew
        self.report = SkipReport()

    def __repr__(self) -> str:
        return f"FileSource({str(self.path)!r})"

    def fetch(self, *, now: Any = None) -> pd.DataFrame:
        """The file's headlines as an article frame (``report`` lists what was skipped)."""
        suffix = self.path.suffix.lower()
        if suffix == ".csv":
            records = self._csv()
        elif suffix in (".jsonl", ".ndjson"):
            records = self._jsonl()
        else:
            raise DataError(f"{self.path}: a FileSource reads .csv, .jsonl or .ndjson files, "
                            f"not {suffix or 'a file without a suffix'!r}")
        self.report = SkipReport()
        for rec in records:
            if not str(rec.get("source") or "").strip():
                rec["source"] = self.path.name
        return build_articles(records, source=str(self.path), report=self.report,
                              language=self.language, now=now, max_skew=self.max_skew,
                              bad_time="raise", symbol_map=self.symbol_map)

    def _csv(self) -> list[dict[str, Any]]:
        try:
            frame = pd.read_csv(self.path, dtype=str, keep_default_na=False,
                                encoding="utf-8-sig")
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{self.path}: cannot read as CSV ({redact(str(exc))})") from None
        missing = [c for c in self.REQUIRED if c not in frame.columns]
        if missing:
            raise DataError(f"{self.path}: no column {missing[0]!r} (columns: "
                            f"{list(frame.columns)}); needed: {list(self.REQUIRED)}")
        rows = frame.to_dict("records")
        for i, row in enumerate(rows):
            row["where"] = f"row {i} (line {i + 2})"
        return rows

    def _jsonl(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{self.path}: cannot read as UTF-8 JSON Lines ({exc})") from None
        rows: list[dict[str, Any]] = []
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"row {len(rows)} (line {n})"
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{self.path}, {where}: not JSON ({exc.args[0]})") from None
            if not isinstance(row, dict):
                raise DataError(f"{self.path}, {where}: a JSON {type(row).__name__}, not an "
                                "object with the article's columns")
            row["where"] = where
            rows.append(row)
        for column in self.REQUIRED:
            if rows and not any(column in r for r in rows):
                raise DataError(f"{self.path}: no row has a {column!r} key; needed: "
                                f"{list(self.REQUIRED)}")
        return rows
