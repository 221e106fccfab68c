"""The article frame every news source produces, and the rules that keep bad articles out.

An article frame has one row per article and the columns :data:`ARTICLE_COLUMNS`:

* ``published_at``: the publication time, ``datetime64[ns, UTC]`` (a naive time is read
  as UTC). Never the time it was fetched: that would let an article seem known before it
  was written.
* ``source``: the publisher (NewsAPI's ``source.name``, the feed's title, a file column).
* ``title``, ``description``, ``url``: text (``description`` and ``url`` may be empty).
* ``symbols``: a list of tickers per article (empty when none was found).

Rows are sorted by ``published_at`` (ties keep their input order). :func:`build_articles`
turns raw records into that frame and skips, **and reports**, every article that must not
be used: no publication time (``no_time``), a time that cannot be read (``bad_time``), a
time in the future beyond ``max_skew`` (``future``), another language than the one wanted
when the article's language is known (``language``), no title (``no_title``), and
duplicates of an article already kept (``duplicate_url``, ``duplicate_title``; see
:func:`normalize_url` and :func:`normalize_title`). Each skip is a row of a
:class:`SkipReport` (``source``, ``where``, ``reason``, ``detail``) and a warning in the
``alphatrade_lab.sentiment`` log.

>>> report = SkipReport()
>>> frame = build_articles([
...     {"published_at": "2024-05-01T13:30:00Z", "title": "Apple beats estimates",
...      "url": "https://example.com/a?utm_source=x", "source": "Wire"},
...     {"published_at": "2024-05-01T13:31:00Z", "title": "Apple beats estimates!",
...      "url": "https://EXAMPLE.com/a/", "source": "Wire"},
...     {"published_at": None, "title": "Undated", "source": "Wire"},
... ], source="demo", report=report)
>>> frame[["published_at", "title"]].values.tolist()
[[Timestamp('2024-05-01 13:30:00+0000', tz='UTC'), 'Apple beats estimates']]
>>> report.counts()
{'duplicate_url': 1, 'no_time': 1}
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError, location
from alphatrade_lab.redact import redact

__all__ = ["ARTICLE_COLUMNS", "SKIP_COLUMNS", "SKIP_REASONS", "SkipReport", "Skipped",
           "build_articles", "dedupe", "empty_articles", "normalize_title", "normalize_url"]

log = logging.getLogger("alphatrade_lab.sentiment")

ARTICLE_COLUMNS = ("published_at", "source", "title", "description", "url", "symbols")
SKIP_COLUMNS = ("source", "where", "reason", "detail")
#: Why an article or a page was skipped.
SKIP_REASONS = {
    "no_time": "no publication time",
    "bad_time": "a publication time that cannot be read",
    "future": "a publication time in the future",
    "language": "another language than the one asked for",
    "no_title": "no title",
    "duplicate_url": "the URL of an article already kept",
    "duplicate_title": "the title of an article already kept",
    "malformed_article": "an article that is not an object of the documented shape",
    "malformed_page": "a page that is not valid JSON of the documented shape (truncated?)",
    "malformed_feed": "a feed document that is not well-formed (entries read leniently)",
}
#: Query parameters that track a click and never change what a URL points to.
TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid",
                             "igshid", "yclid", "_hsenc", "_hsmi", "ref_src", "cmpid"})
DEFAULT_MAX_SKEW = pd.Timedelta(minutes=5)


@dataclass(frozen=True)
class Skipped:
    """One article or page left out: where it came from and why."""

    source: str
    where: str
    reason: str
    detail: str = ""


class SkipReport:
    """What a fetch left out and why, one :class:`Skipped` per article or page.

    Nothing is dropped silently: every skip is here and logged as a warning on the
    ``alphatrade_lab.sentiment`` logger (its text redacted).

    >>> r = SkipReport()
    >>> r.add("feed.xml", "entry 3", "no_time")
    >>> len(r), r.counts(), list(r.frame().columns)
    (1, {'no_time': 1}, ['source', 'where', 'reason', 'detail'])
    """

    def __init__(self) -> None:
        self._rows: list[Skipped] = []

    def add(self, source: str, where: str, reason: str, detail: str = "") -> None:
        """Record one skip (``reason`` is a key of :data:`SKIP_REASONS`)."""
        if reason not in SKIP_REASONS:
            raise ValueError(f"SkipReport.add: unknown reason {reason!r}; known: "
                             f"{sorted(SKIP_REASONS)}")
        row = Skipped(str(source), str(where), reason, redact(str(detail)))
        self._rows.append(row)
        log.warning("%s, %s: skipped, %s%s", row.source, row.where, SKIP_REASONS[reason],
                    f" ({row.detail})" if row.detail else "")

    def extend(self, other: SkipReport) -> None:
        """Append the skips of ``other``."""
        self._rows.extend(other)

    def counts(self) -> dict[str, int]:
        """Skips per reason, sorted by reason."""
        return dict(sorted(Counter(r.reason for r in self._rows).items()))

    def frame(self) -> pd.DataFrame:
        """The skips as a frame with the columns :data:`SKIP_COLUMNS`."""
        return pd.DataFrame([vars(r) for r in self._rows], columns=list(SKIP_COLUMNS),
                            dtype=object)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Skipped]:
        return iter(list(self._rows))

    def __repr__(self) -> str:
        return f"SkipReport({len(self)} skipped: {self.counts()})"


def empty_articles() -> pd.DataFrame:
    """An article frame without rows (the right columns and dtypes).

    >>> empty_articles().dtypes["published_at"]
    datetime64[ns, UTC]
    """
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in ARTICLE_COLUMNS})
    frame["published_at"] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame


_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<netloc>[^/?#]*)"
                  r"(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?:#.*)?\Z", re.DOTALL)


def _tracking(pair: str) -> bool:
    key = unquote_plus(pair.partition("=")[0]).lower()
    return key.startswith("utm_") or key in TRACKING_PARAMS


def normalize_url(url: Any) -> str:
    """``url`` as a key for de-duplication: scheme and host lower case (``http`` counts as
    ``https``, ``www.`` and default ports dropped), no fragment, no trailing slash, no
    tracking parameters (``utm_*``, :data:`TRACKING_PARAMS`), the rest sorted.

    >>> normalize_url("HTTP://WWW.Example.com:80/News/A/?utm_source=tw&b=2&a=1#top")
    'https://example.com/News/A?a=1&b=2'
    >>> normalize_url("")
    ''
    """
    text = "" if url is None else str(url).strip()
    m = _URL.match(text)
    if m is None:                       # no scheme: only the trailing slash to drop
        return text.rstrip("/")
    scheme, netloc, path, query = m.group("scheme", "netloc", "path", "query")
    scheme = "https" if scheme.lower() == "http" else scheme.lower()
    host = netloc.rpartition("@")[2].lower()        # no user info
    if not host.endswith("]") and ":" in host:      # a port (not an IPv6 address)
        host, _, port = host.rpartition(":")
        if port and not port.isdigit():
            return text
        if port not in ("", "80", "443"):
            host = f"{host}:{int(port)}"
    host = host.removeprefix("www.")
    if query:
        kept = sorted(p for p in query.split("&") if p and not _tracking(p))
        query = "&".join(kept)
    return f"{scheme}://{host}{path.rstrip('/')}" + (f"?{query}" if query else "")


_NOT_WORD = re.compile(r"[\W_]+")


def normalize_title(title: Any) -> str:
    """``title`` as a key for de-duplication: Unicode NFKC, case folded, punctuation and
    runs of spaces as one space.

    >>> normalize_title("  Apple BEATS estimates!! ") == normalize_title("apple beats estimates")
    True
    """
    text = unicodedata.normalize("NFKC", "" if title is None else str(title)).casefold()
    return _NOT_WORD.sub(" ", text).strip()


def _missing(value: Any) -> bool:
    """None, NaN, NaT (a cell left empty)."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value).strip()


def _primary_language(value: Any) -> str:
    """``"en-US"`` → ``"en"``; empty when unknown."""
    return re.split(r"[-_]", _text(value).lower(), maxsplit=1)[0]


def _parse_time(value: Any) -> pd.Timestamp | None:
    """A UTC timestamp, or None when ``value`` cannot be read as a time (a bare number is
    not one: seconds, milliseconds or nanoseconds since 1970 cannot be told apart)."""
    if isinstance(value, int | float) or not isinstance(value, str | datetime | np.datetime64):
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if ts is pd.NaT or not isinstance(ts, pd.Timestamp):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _parse_times(values: list[Any]) -> list[pd.Timestamp | None]:
    """:func:`_parse_time` of each value; ISO 8601 texts (nearly all) parsed at once."""
    out: list[pd.Timestamp | None] = [None] * len(values)
    texts = [i for i, v in enumerate(values) if isinstance(v, str) and v.strip()]
    if texts:
        parsed = pd.to_datetime(pd.Series([values[i] for i in texts], dtype=object),
                                utc=True, errors="coerce", format="ISO8601")
        for i, ts in zip(texts, parsed.tolist(), strict=True):
            out[i] = None if ts is pd.NaT else ts
    for i, v in enumerate(values):
        if out[i] is None and not _missing(v):
            out[i] = _parse_time(v)        # another format, or a datetime
    return out


def _symbols(value: Any, where: str) -> list[str]:
    if not isinstance(value, list | tuple) and _missing(value):
        return []
    if isinstance(value, str):
        return [s for s in re.split(r"[\s,;|]+", value.strip()) if s]
    if isinstance(value, list | tuple):
        if all(isinstance(s, str) for s in value):
            return [s.strip() for s in value if s.strip()]
    raise DataError(f"{where}: must be a list of tickers or a text of tickers separated by "
                    f"',', ';', '|' or spaces, got {value!r}")


def build_articles(records: Iterable[Mapping[str, Any]], *, source: str,
                   report: SkipReport, language: str | None = None,
                   now: Any = None, max_skew: Any = DEFAULT_MAX_SKEW,
                   bad_time: str = "skip", symbol_map: Any = None) -> pd.DataFrame:
    """The article frame of ``records``, every unusable article skipped and reported.

    Parameters
    ----------
    records
        Mappings with the keys of :data:`ARTICLE_COLUMNS` (missing ones read as empty),
        optionally ``language`` (the article's own, when known) and ``where`` (how a skip
        names it, e.g. ``"row 4 (line 6)"``; default ``"record <i>"``).
    source
        What the records came from (a file, a feed URL, ``"NewsAPI"``), in the report.
    report
        The :class:`SkipReport` that receives the skips.
    language
        The ISO-639-1 code wanted (``"en"``); an article whose language is known and
        differs is skipped. None keeps every language.
    now, max_skew
        An article published after ``now + max_skew`` (``now``: the current UTC time by
        default; ``max_skew`` five minutes, for clocks that disagree) is skipped.
    bad_time
        ``"skip"`` (report an unreadable time and go on) or ``"raise"`` (a
        :class:`~alphatrade_lab.errors.DataError` naming the record: for files).
    symbol_map
        A :class:`~alphatrade_lab.sentiment.symbols.SymbolMap`: the tickers it finds in the
        title and description are added to each article's ``symbols``.

    Returns
    -------
    pandas.DataFrame
        The article frame, sorted by ``published_at``; of duplicates, the first published
        is kept.

    Examples
    --------
    >>> r = SkipReport()
    >>> build_articles([{"published_at": "2999-01-01", "title": "From the future"}],
    ...                source="x", report=r).empty, r.counts()
    (True, {'future': 1})
    """
    if bad_time not in ("skip", "raise"):
        raise ValueError(f"build_articles: bad_time must be 'skip' or 'raise', got {bad_time!r}")
    limit = (pd.Timestamp.now(tz="UTC") if now is None else _parse_time(now))
    if limit is None:
        raise ValueError(f"build_articles: now must be a time, got {now!r}")
    limit = limit + pd.Timedelta(max_skew)
    wanted = _primary_language(language)
    records = list(records)
    times = _parse_times([rec.get("published_at") for rec in records])
    rows: list[dict[str, Any]] = []
    wheres: list[str] = []
    for i, (rec, ts) in enumerate(zip(records, times, strict=True)):
        where = _text(rec.get("where")) or f"record {i}"
        raw_time = rec.get("published_at")
        if _text(raw_time) == "":
            report.add(source, where, "no_time")
            continue
        if ts is None:
            if bad_time == "raise":
                raise DataError(f"{source}, column 'published_at', {where}: {raw_time!r} is "
                                "not a time (ISO 8601 expected, e.g. 2024-05-01T13:30:00Z)")
            report.add(source, where, "bad_time", repr(raw_time))
            continue
        if ts > limit:
            report.add(source, where, "future", f"published_at {ts.isoformat()}")
            continue
        own = _primary_language(rec.get("language"))
        if wanted and own and own != wanted:
            report.add(source, where, "language", f"{own!r}, not {wanted!r}")
            continue
        title = _text(rec.get("title"))
        if not title:
            report.add(source, where, "no_title")
            continue
        description = _text(rec.get("description"))
        symbols = _symbols(rec.get("symbols"), f"{source}, column 'symbols', {where}")
        if symbol_map is not None:
            symbols = sorted(set(symbols) | set(symbol_map.find(f"{title}\n{description}")))
        rows.append({"published_at": ts, "source": _text(rec.get("source")), "title": title,
                     "description": description, "url": _text(rec.get("url")),
                     "symbols": symbols})
        wheres.append(where)
    if not rows:
        return empty_articles()
    frame = pd.DataFrame(rows, columns=list(ARTICLE_COLUMNS))
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True).astype(
        "datetime64[ns, UTC]")
    frame["_where"] = wheres
    frame = frame.sort_values("published_at", kind="stable").reset_index(drop=True)
    return _dedupe(frame, source, report).drop(columns="_where")


def _dedupe(frame: pd.DataFrame, source: str, report: SkipReport) -> pd.DataFrame:
    """Drop the rows whose URL or title key was seen in an earlier row (frame sorted)."""
    keep = []
    seen_url: dict[str, str] = {}
    seen_title: dict[str, str] = {}
    for url, title, where in zip(frame["url"].tolist(), frame["title"].tolist(),
                                 frame["_where"].tolist(), strict=True):
        u, t = normalize_url(url), normalize_title(title)
        if u and u in seen_url:
            report.add(source, where, "duplicate_url", f"same URL as {seen_url[u]}")
            keep.append(False)
        elif t and t in seen_title:
            report.add(source, where, "duplicate_title", f"same title as {seen_title[t]}")
            keep.append(False)
        else:
            if u:
                seen_url[u] = where
            seen_title[t] = where
            keep.append(True)
    return frame[keep].reset_index(drop=True)


def dedupe(articles: pd.DataFrame, *, report: SkipReport | None = None,
           source: str = "<articles>") -> pd.DataFrame:
    """``articles`` (e.g. several sources' frames concatenated) without duplicates.

    An article is a duplicate when its normalised URL (:func:`normalize_url`) or its
    normalised title (:func:`normalize_title`) is that of an earlier published article;
    the first published is kept. Each dropped row is reported (``where`` is its row
    position in ``articles``).

    Examples
    --------
    >>> a = build_articles([{"published_at": "2024-05-01", "title": "Fed holds rates",
    ...                      "url": "https://a.com/x"}], source="a", report=SkipReport())
    >>> b = build_articles([{"published_at": "2024-05-02", "title": "FED HOLDS RATES",
    ...                      "url": "https://b.com/y"}], source="b", report=SkipReport())
    >>> r = SkipReport()
    >>> len(dedupe(pd.concat([b, a]), report=r)), r.counts()
    (1, {'duplicate_title': 1})
    """
    missing = [c for c in ARTICLE_COLUMNS if c not in articles.columns]
    if missing:
        raise DataError(f"{location(source)}: not an article frame, missing columns {missing}")
    frame = articles.reset_index(drop=True)
    frame = frame.assign(_where=[f"row {i}" for i in range(len(frame))])
    frame = frame.sort_values("published_at", kind="stable").reset_index(drop=True)
    out = _dedupe(frame, source, SkipReport() if report is None else report)
    return out.drop(columns="_where")
