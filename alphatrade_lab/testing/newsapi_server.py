"""A local server that answers like NewsAPI's ``GET /v2/everything``.

For tests and notebooks: a threading HTTP server on 127.0.0.1 (a free port) serving canned
articles in NewsAPI's documented shapes: ``{"status": "ok", "totalResults": N,
"articles": [{"source": {"id", "name"}, "author", "title", "description", "url",
"urlToImage", "publishedAt", "content"}]}`` and errors ``{"status": "error", "code": ...,
"message": ...}``.

* **Keys.** The key is read from the ``X-Api-Key`` header (or, as NewsAPI allows, an
  ``apiKey`` query parameter, which :attr:`LocalNewsAPI.received` then shows in the URL):
  none is 401 ``apiKeyMissing``, a wrong one 401 ``apiKeyInvalid``, one passed to
  :meth:`~LocalNewsAPI.disable_key` 401 ``apiKeyDisabled``.
* **Query.** ``q`` (every word, case-insensitive, in the title or description),
  ``from``/``to`` (ISO 8601, inclusive), ``language`` (an article's ``language`` key,
  ``"en"`` when it has none; not served), ``sortBy`` (``publishedAt``, newest first, by
  default; ``relevancy`` and ``popularity`` keep the canned order), ``pageSize`` (1-100,
  default 100) and ``page``.
* **Plan limit.** A page that reaches past ``max_results`` (the developer plan's 100) is
  answered 426 ``maximumResultsReached``, as NewsAPI does.
* **Faults.** :meth:`~LocalNewsAPI.fail_next` answers the next requests with a status,
  body and headers (429 ``rateLimited`` with ``Retry-After``, 5xx, an error code);
  :meth:`~LocalNewsAPI.truncate_next` sends a 200 whose JSON is cut short;
  :meth:`~LocalNewsAPI.corrupt_next` one whose body is the given bytes or object.

>>> import httpx
>>> arts = [{"title": "Apple beats", "publishedAt": "2024-05-01T13:30:00Z"}]
>>> with LocalNewsAPI(arts) as srv:
...     page = httpx.get(srv.url + "/v2/everything", params={"q": "apple"},
...                      headers={"X-Api-Key": srv.api_key}).json()
>>> page["status"], page["totalResults"], page["articles"][0]["source"]
('ok', 1, {'id': None, 'name': 'Local Wire'})
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from alphatrade_lab.testing._server import LocalHTTPServer, QuietHandler, QuietServer
from alphatrade_lab.testing.receiver import Received

__all__ = ["LocalNewsAPI"]

_FIELDS = ("source", "author", "title", "description", "url", "urlToImage", "publishedAt",
           "content")
_KEY_MESSAGES = {
    "apiKeyMissing": "Your API key is missing. Append this to the URL with the apiKey param, "
                     "or use the x-api-key HTTP header.",
    "apiKeyInvalid": "Your API key is invalid or incorrect. Check your key, or go to "
                     "https://newsapi.org to create a free API key.",
    "apiKeyDisabled": "Your API key has been disabled.",
}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"status": "error", "code": code, "message": message}


@dataclass
class _Fault:
    times: int
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(QuietHandler):
    server: QuietServer

    def do_GET(self) -> None:
        srv: LocalNewsAPI = self.server.newsapi  # type: ignore[attr-defined]
        req = Received(time.monotonic(), self.command, self.path, dict(self.headers), b"")
        status, body, headers = srv._answer(req)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class LocalNewsAPI(LocalHTTPServer):
    """Start with ``with LocalNewsAPI(articles) as srv:``; ``srv.url`` is the base URL
    (``srv.url + "/v2/everything"``), ``srv.api_key`` the key it accepts.

    Parameters
    ----------
    articles
        Canned articles: mappings with NewsAPI's article fields (missing ones are served
        as null; ``source`` defaults to ``{"id": None, "name": "Local Wire"}``) and an
        optional ``language`` (default ``"en"``) used by the ``language`` filter. Served
        as given, so an article without ``publishedAt`` can be served too.
    api_key
        The key to accept.
    max_results
        The plan's limit on results reachable by paging (developer plan: 100).
    """

    server_class = QuietServer
    handler_class = _Handler
    owner_attr = "newsapi"
    thread_name = "local-newsapi"

    def __init__(self, articles: Iterable[Mapping[str, Any]] = (), *,
                 api_key: str = "local-newsapi-key-0000000000000001", max_results: int = 100,
                 host: str = "127.0.0.1", port: int = 0):
        self.api_key, self.max_results = api_key, int(max_results)
        self._init_server(host, port)
        self._lock = threading.Lock()
        self._articles = [dict(a) for a in articles]
        self._disabled: set[str] = set()
        self._faults: list[_Fault] = []
        self._received: list[Received] = []

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"LocalNewsAPI({where}, articles={len(self._articles)})"

    # ------------------------------------------------------------------ control
    @property
    def received(self) -> list[Received]:
        """Every request so far (method, path with its query string, headers)."""
        with self._lock:
            return list(self._received)

    def add_articles(self, articles: Iterable[Mapping[str, Any]]) -> None:
        """Serve these articles too."""
        with self._lock:
            self._articles.extend(dict(a) for a in articles)

    def disable_key(self, key: str) -> None:
        """Answer ``key`` with 401 ``apiKeyDisabled`` from now on."""
        with self._lock:
            self._disabled.add(key)

    def fail_next(self, status: int, body: Any = None, headers: Mapping[str, str] | None = None,
                  times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status``, ``body`` (an object sent as
        JSON or raw bytes; default: a NewsAPI error body fitting the status) and
        ``headers`` (e.g. ``{"Retry-After": "1"}``)."""
        if body is None:
            body = (_error("rateLimited", "You have made too many requests recently.")
                    if status == 429 else _error("unexpectedError", "Something went wrong."))
        with self._lock:
            self._faults.append(_Fault(times, status, body, dict(headers or {})))

    def truncate_next(self, times: int = 1) -> None:
        """Answer the next ``times`` requests 200 with the page's JSON cut in half."""
        with self._lock:
            self._faults.append(_Fault(times, 200, "truncate"))

    def corrupt_next(self, body: Any, times: int = 1) -> None:
        """Answer the next ``times`` requests 200 with ``body`` (bytes, or an object as
        JSON: e.g. ``{"status": "ok"}`` without ``articles``)."""
        with self._lock:
            self._faults.append(_Fault(times, 200, body))

    # ------------------------------------------------------------------ serving
    def _answer(self, req: Received) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self._received.append(req)
        parts = urlsplit(req.path)
        if parts.path.rstrip("/") != "/v2/everything":
            return 404, _error("routeNotFound", f"No route for {parts.path}."), {}
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        key = req.headers.get("X-Api-Key") or req.headers.get("x-api-key") \
            or query.get("apiKey")
        if not key:
            return 401, _error("apiKeyMissing", _KEY_MESSAGES["apiKeyMissing"]), {}
        if key in self._disabled:
            return 401, _error("apiKeyDisabled", _KEY_MESSAGES["apiKeyDisabled"]), {}
        if key != self.api_key:
            return 401, _error("apiKeyInvalid", _KEY_MESSAGES["apiKeyInvalid"]), {}
        with self._lock:
            fault = self._faults[0] if self._faults else None
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.pop(0)
        if fault is not None and fault.body != "truncate":
            return fault.status, fault.body, fault.headers
        status, page = self._page(query)
        if fault is not None and status == 200:
            data = json.dumps(page).encode()
            return 200, data[:len(data) // 2], {}
        return status, page, {}

    def _page(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            size = int(query.get("pageSize", 100))
            page = int(query.get("page", 1))
        except ValueError:
            return 400, _error("parameterInvalid", "pageSize and page must be integers.")
        if not 1 <= size <= 100 or page < 1:
            return 400, _error("parameterInvalid",
                               "pageSize must be between 1 and 100 and page at least 1.")
        if page * size > self.max_results:
            return 426, _error(
                "maximumResultsReached",
                "You have requested too many results. Developer accounts are limited to a "
                f"max of {self.max_results} results. You are trying to request results "
                f"{(page - 1) * size} to {page * size}. Please upgrade to a paid plan if you "
                "need more results.")
        try:
            start = pd.Timestamp(query["from"]) if query.get("from") else None
            end = pd.Timestamp(query["to"]) if query.get("to") else None
        except ValueError:
            return 400, _error("parameterInvalid", "from and to must be ISO 8601 times.")
        with self._lock:
            chosen = [a for a in self._articles if _matches(a, query, start, end)]
        if query.get("sortBy", "publishedAt") == "publishedAt":
            chosen.sort(key=lambda a: str(a.get("publishedAt") or ""), reverse=True)
        served = [_served(a) for a in chosen[(page - 1) * size:page * size]]
        return 200, {"status": "ok", "totalResults": len(chosen), "articles": served}


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _matches(article: Mapping[str, Any], query: Mapping[str, str],
             start: pd.Timestamp | None, end: pd.Timestamp | None) -> bool:
    text = f"{article.get('title') or ''} {article.get('description') or ''}".lower()
    if any(word not in text for word in query.get("q", "").lower().split()):
        return False
    language = query.get("language")
    if language and article.get("language", "en") != language:
        return False
    if start is None and end is None:
        return True
    try:
        published = _utc(pd.Timestamp(article.get("publishedAt")))
    except (ValueError, TypeError):
        return True      # served as it is: the client must cope with it
    if published is pd.NaT:
        return True
    return not ((start is not None and published < _utc(start))
                or (end is not None and published > _utc(end)))


def _served(article: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: article.get(k) for k in _FIELDS}
    if out["source"] is None:
        out["source"] = {"id": None, "name": "Local Wire"}
    if "publishedAt" not in article:
        del out["publishedAt"]
    return out
