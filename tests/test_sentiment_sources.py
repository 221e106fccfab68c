"""News sources (issue 21, part 1): NewsAPI against a real local server, RSS/Atom over HTTP
and from files, CSV/JSON Lines files, word-boundary symbol mapping, de-duplication, and
every bad-input rule reported and skipped, never silently used."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pandas as pd
import pytest

from alphatrade_lab.errors import DataError, NewsSourceError
from alphatrade_lab.sentiment import (
    ARTICLE_COLUMNS,
    FileSource,
    NewsAPISource,
    RSSSource,
    SkipReport,
    SymbolMap,
    build_articles,
    dedupe,
    normalize_title,
    normalize_url,
)
from alphatrade_lab.testing import LocalNewsAPI
from alphatrade_lab.testing._server import LocalHTTPServer, QuietHandler, QuietServer
from alphatrade_lab.testing.receiver import Received

FIXTURES = Path(__file__).parent / "fixtures"
KEY = "nk-4f1c9e2a7b3d4e5f8a9b0c1d2e3f4a5b"
NOW = pd.Timestamp("2024-06-01", tz="UTC")


def _articles(n: int, start: str = "2024-05-01T00:00:00Z", prefix: str = "Story"):
    t0 = pd.Timestamp(start)
    return [{"source": {"id": None, "name": "Wire"}, "author": "A. Writer",
             "title": f"{prefix} {i} about markets", "description": f"Body {i} on markets",
             "url": f"https://wire.example.com/{prefix.lower()}/{i}",
             "urlToImage": None, "content": "...",
             "publishedAt": (t0 + pd.Timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")}
            for i in range(n)]


def _source(srv: LocalNewsAPI, **kw) -> NewsAPISource:
    kw.setdefault("api_key", srv.api_key)
    return NewsAPISource(kw.pop("query", "markets"), base_url=srv.url, **kw)


def _query(req: Received) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(req.path).query))


# ----------------------------------------------------------------------------- NewsAPI
def test_newsapi_pages_with_the_documented_parameters_and_the_key_only_in_a_header():
    with LocalNewsAPI(_articles(45), api_key=KEY) as srv:
        src = _source(srv, language="en", page_size=20)
        frame = src.fetch("2024-04-30", pd.Timestamp("2024-05-02 12:00", tz="UTC"), now=NOW)
        received = srv.received
    assert list(frame.columns) == list(ARTICLE_COLUMNS)
    assert str(frame["published_at"].dtype) == "datetime64[ns, UTC]"
    assert len(frame) == 45 and frame["published_at"].is_monotonic_increasing
    assert frame["source"].unique().tolist() == ["Wire"]
    assert src.requests == 3 and len(src.report) == 0
    queries = [_query(r) for r in received]
    assert [q["page"] for q in queries] == ["1", "2", "3"]
    assert queries[0] == {"q": "markets", "sortBy": "publishedAt", "pageSize": "20",
                          "from": "2024-04-30T00:00:00", "to": "2024-05-02T12:00:00",
                          "language": "en", "page": "1"}
    for req in received:
        assert req.headers["X-Api-Key"] == KEY
        assert KEY not in req.path and "apiKey" not in req.path


def test_newsapi_stops_at_the_plan_limit_without_asking_past_it():
    with LocalNewsAPI(_articles(250)) as srv:
        src = _source(srv)            # page_size 100 = the developer plan's 100 results
        frame = src.fetch(now=NOW)
    assert len(frame) == 100 and src.requests == 1


def test_maximum_results_reached_ends_the_paging_cleanly():
    # 30 a page: page 4 asks for results 90 to 120, past the plan's 100
    with LocalNewsAPI(_articles(250)) as srv:
        src = _source(srv, page_size=30)
        frame = src.fetch(now=NOW)
        assert [_query(r)["page"] for r in srv.received] == ["1", "2", "3", "4"]
    assert len(frame) == 90 and len(src.report) == 0
    # a client told of a bigger plan than the key has is stopped by the server the same way
    with LocalNewsAPI(_articles(250)) as srv:
        frame = _source(srv, max_results=1000).fetch(now=NOW)
    assert len(frame) == 100


@pytest.mark.parametrize("answer", ["wrong", "disabled", "missing"])
def test_a_refused_key_is_one_clear_error_that_never_shows_the_key(answer, caplog):
    with LocalNewsAPI(_articles(3), api_key=KEY) as srv:
        key = KEY
        if answer == "wrong":
            key = "nk-0000000000000000000000000000bad1"
        elif answer == "disabled":
            srv.disable_key(KEY)
        else:   # what NewsAPI answers when the header did not reach it
            srv.fail_next(401, {"status": "error", "code": "apiKeyMissing",
                                "message": "Your API key is missing."})
        src = _source(srv, api_key=key)
        with caplog.at_level(logging.DEBUG), pytest.raises(NewsSourceError) as info:
            src.fetch(now=NOW)
    code = {"wrong": "apiKeyInvalid", "disabled": "apiKeyDisabled", "missing": "apiKeyMissing"}
    message = str(info.value)
    assert f"NewsAPI refused the API key ({code[answer]}" in message and "NEWSAPI_KEY" in message
    logged = " ".join(r.getMessage() for r in caplog.records)
    for text in (message, repr(src), logged, repr(info.value)):
        assert key not in text


def test_no_key_fails_before_any_request(monkeypatch):
    monkeypatch.delenv("NEWSAPI_KEY", raising=False)
    with LocalNewsAPI(_articles(3)) as srv:
        src = NewsAPISource("markets", base_url=srv.url)
        assert "key=missing" in repr(src)
        with pytest.raises(NewsSourceError, match="no API key; set NEWSAPI_KEY"):
            src.fetch()
        assert srv.received == []


def test_the_key_comes_from_newsapi_key_and_stays_out_of_logs_reprs_and_urls(monkeypatch,
                                                                           caplog):
    monkeypatch.setenv("NEWSAPI_KEY", KEY)
    with LocalNewsAPI(_articles(5), api_key=KEY) as srv:
        src = NewsAPISource("markets", base_url=srv.url)
        srv.fail_next(429, headers={"Retry-After": "0"})
        with caplog.at_level(logging.DEBUG):
            frame = src.fetch(now=NOW)
        paths = [r.path for r in srv.received]
    assert len(frame) == 5
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request" in logged or "retrying" in logged   # the logs were captured
    assert KEY not in logged and KEY not in repr(src) and "key=set" in repr(src)
    assert not any(KEY in p for p in paths)


def test_http_429_is_waited_out_as_retry_after_asks():
    with LocalNewsAPI(_articles(5)) as srv:
        srv.fail_next(429, headers={"Retry-After": "0.4"}, times=2)
        src = _source(srv, backoff=0.0)
        t0 = time.monotonic()
        frame = src.fetch(now=NOW)
        waited = time.monotonic() - t0
        gaps = [b.t - a.t for a, b in zip(srv.received, srv.received[1:], strict=False)]
    assert len(frame) == 5 and src.requests == 3
    assert waited >= 0.8 and min(gaps) >= 0.39


def test_rate_limited_code_is_retried_with_backoff_and_retries_are_bounded():
    with LocalNewsAPI(_articles(5)) as srv:
        srv.fail_next(429, {"status": "error", "code": "rateLimited",
                            "message": "You have made too many requests recently."}, times=1)
        frame = _source(srv, backoff=0.05).fetch(now=NOW)
        assert len(frame) == 5 and len(srv.received) == 2
        srv.fail_next(429, times=10)
        src = _source(srv, backoff=0.01, max_retries=2)
        with pytest.raises(NewsSourceError,
                           match=r"rate limited \(HTTP 429\) on page 1, 3 attempts"):
            src.fetch(now=NOW)
        assert src.requests == 3


def test_a_retry_after_longer_than_max_wait_is_not_waited_for():
    with LocalNewsAPI(_articles(5)) as srv:
        srv.fail_next(429, headers={"Retry-After": "3600"})
        t0 = time.monotonic()
        with pytest.raises(NewsSourceError, match="asked to wait 3600 s, more than max_wait=60 s"):
            _source(srv).fetch(now=NOW)
        assert time.monotonic() - t0 < 5


def test_server_errors_and_a_server_that_is_down_are_retried_then_reported():
    with LocalNewsAPI(_articles(5)) as srv:
        srv.fail_next(503, times=2)
        src = _source(srv, backoff=0.01)
        assert len(src.fetch(now=NOW)) == 5 and src.requests == 3
        url = srv.url
    src = NewsAPISource("markets", api_key=KEY, base_url=url, backoff=0.01, max_retries=1)
    with pytest.raises(NewsSourceError, match="ConnectError on connecting on page 1, 2 attempts"):
        src.fetch()


def test_other_api_errors_name_their_code_and_message():
    with LocalNewsAPI(_articles(5)) as srv:
        srv.fail_next(400, {"status": "error", "code": "parameterInvalid",
                            "message": "You are trying to request results too far in the past."})
        with pytest.raises(NewsSourceError, match="HTTP 400, parameterInvalid: You are trying"):
            _source(srv).fetch(now=NOW)
        srv.fail_next(404, b"<html>not found</html>")
        with pytest.raises(NewsSourceError,
                           match="HTTP 404 with a body that is not NewsAPI's error"):
            _source(srv).fetch(now=NOW)


def test_an_error_body_is_an_error_whatever_the_http_status():
    with LocalNewsAPI(_articles(5)) as srv:
        srv.corrupt_next({"status": "error", "code": "apiKeyInvalid", "message": "Bad key."})
        with pytest.raises(NewsSourceError, match=r"refused the API key \(apiKeyInvalid"):
            _source(srv).fetch(now=NOW)
        srv.corrupt_next({"status": "error", "code": "maximumResultsReached", "message": "."})
        src = _source(srv)
        assert src.fetch(now=NOW).empty and len(src.report) == 0


def test_a_truncated_page_is_reported_and_skipped_the_next_pages_are_used():
    with LocalNewsAPI(_articles(150)) as srv:
        srv.truncate_next()
        src = _source(srv, page_size=50)
        frame = src.fetch(now=NOW)
    skipped = src.report.frame()
    assert skipped[["where", "reason"]].values.tolist() == [["page 1", "malformed_page"]]
    assert skipped["detail"].iloc[0].startswith("not JSON")
    # page 1 (the newest 50) is gone; page 2 is kept; its totalResults ends the paging there
    assert len(frame) == 50 and src.requests == 2
    assert frame["title"].iloc[-1] == "Story 99 about markets"


def test_a_page_larger_than_the_bound_is_cut_there_and_reported(monkeypatch):
    """A page past the body bound is cut at it (the source reads the stream only that
    far), reported as malformed, and the source goes on with the next page."""
    import alphatrade_lab.sentiment.sources as sources

    monkeypatch.setattr(sources, "_MAX_BODY", 100_000)  # a normal page is ~15 kB
    huge = json.dumps({"status": "ok", "totalResults": 1,
                       "articles": _articles(1, prefix="x" * 1_000_000)}).encode()
    with LocalNewsAPI(_articles(150)) as srv:
        srv.fail_next(200, huge)
        src = _source(srv, page_size=50)
        frame = src.fetch(now=NOW)
    skipped = src.report.frame()
    assert skipped[["where", "reason"]].values.tolist() == [["page 1", "malformed_page"]]
    assert skipped["detail"].iloc[0].startswith("not JSON")
    assert len(frame) == 50 and src.requests == 2  # page 2 kept, as after a truncated page


@pytest.mark.parametrize(("body", "detail"), [
    ({"status": "ok", "totalResults": 3}, "no 'articles' list"),
    ([{"title": "x"}], "a JSON list, not an object"),
    ({"status": "weird", "articles": []}, "status 'weird', not 'ok'"),
    (b"", "not JSON"),
])
def test_a_page_without_the_documented_shape_is_reported_and_skipped(body, detail):
    with LocalNewsAPI(_articles(3)) as srv:
        srv.corrupt_next(body)
        src = _source(srv, page_size=3, max_results=6)
        frame = src.fetch(now=NOW)
    assert src.report.frame()[["where", "reason"]].values.tolist() == [["page 1",
                                                                         "malformed_page"]]
    assert src.report.frame()["detail"].iloc[0].startswith(detail)
    assert frame.empty          # page 2 of 3 articles, 3 a page, is empty


def test_bad_articles_in_a_page_are_reported_and_skipped_one_by_one():
    good = _articles(2)
    page = {"status": "ok", "totalResults": 7, "articles": [
        good[0],
        "not an article",
        {**good[1], "publishedAt": None},                                   # no time
        {k: v for k, v in good[1].items() if k != "publishedAt"},          # no key at all
        {**good[1], "publishedAt": "yesterday-ish"},                        # unreadable
        {**good[1], "publishedAt": "2024-07-01T00:00:00Z"},                 # after NOW
        {**good[0], "url": good[0]["url"] + "/?utm_source=x", "title": "Other words"},
    ]}
    with LocalNewsAPI() as srv:
        srv.corrupt_next(page)
        src = _source(srv, page_size=10, max_results=10)
        frame = src.fetch(now=NOW)
    assert frame["title"].tolist() == [good[0]["title"]]
    rep = src.report.frame()
    assert rep[["where", "reason"]].values.tolist() == [
        ["page 1, article 1", "malformed_article"], ["page 1, article 2", "no_time"],
        ["page 1, article 3", "no_time"], ["page 1, article 4", "bad_time"],
        ["page 1, article 5", "future"], ["page 1, article 6", "duplicate_url"]]
    assert rep["detail"].iloc[-1] == "same URL as page 1, article 0"


def test_newsapi_tags_symbols_and_dedupes_across_pages():
    arts = _articles(4)
    arts[1]["title"] = "Apple beats estimates"
    arts[3]["title"] = "APPLE BEATS ESTIMATES"            # the same story again, later
    arts[2]["title"] = "Applebee's lifts $aaa"
    with LocalNewsAPI(arts) as srv:
        src = _source(srv, page_size=2, max_results=4,
                      symbol_map=SymbolMap({"AAPL": ["Apple"], "AAA": []}))
        frame = src.fetch(now=NOW)
    assert frame.set_index("title")["symbols"].to_dict() == {
        "Story 0 about markets": [], "Apple beats estimates": ["AAPL"],
        "Applebee's lifts $aaa": ["AAA"]}
    assert src.report.counts() == {"duplicate_title": 1} and src.requests == 2


def test_local_newsapi_answers_in_the_documented_shapes():
    import httpx

    with LocalNewsAPI(_articles(3) + [{"title": "Une histoire", "language": "fr",
                                       "publishedAt": "2024-05-02T00:00:00Z"}]) as srv:
        url, h = srv.url + "/v2/everything", {"X-Api-Key": srv.api_key}
        page = httpx.get(url, params={"q": "story", "pageSize": 2}, headers=h).json()
        assert page["status"] == "ok" and page["totalResults"] == 3
        assert list(page["articles"][0]) == ["source", "author", "title", "description", "url",
                                             "urlToImage", "publishedAt", "content"]
        assert [a["title"] for a in page["articles"]] == ["Story 2 about markets",
                                                          "Story 1 about markets"]
        fr = httpx.get(url, params={"language": "fr"}, headers=h).json()
        assert [a["title"] for a in fr["articles"]] == ["Une histoire"]
        bad = httpx.get(url, params={"pageSize": 0}, headers=h)
        assert bad.status_code == 400 and bad.json()["code"] == "parameterInvalid"
        # NewsAPI also takes the key as a query parameter: the server records it in the URL,
        # which is how the tests above know the client never sends it that way
        assert httpx.get(url, params={"apiKey": srv.api_key}).json()["status"] == "ok"
        assert srv.api_key in srv.received[-1].path
        missing = httpx.get(url)
        assert missing.status_code == 401 and missing.json() == {
            "status": "error", "code": "apiKeyMissing",
            "message": missing.json()["message"]}
        assert httpx.get(srv.url + "/v2/top", headers=h).status_code == 404


def test_newsapi_source_checks_its_parameters():
    for kw, match in [({"language": "english"}, "2-letter"), ({"sort_by": "date"}, "sort_by"),
                      ({"page_size": 101}, "page_size"), ({"max_results": 0}, "max_results")]:
        with pytest.raises(ValueError, match=match):
            NewsAPISource("x", api_key=KEY, **kw)
    with pytest.raises(ValueError, match="1 to 500 characters"):
        NewsAPISource("x" * 501, api_key=KEY)


# ----------------------------------------------------------------------------- RSS / Atom
class _FileHandler(QuietHandler):
    server: QuietServer

    def do_GET(self) -> None:
        owner: _StaticServer = self.server.static  # type: ignore[attr-defined]
        owner.received.append(self.path)
        body = owner.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


class _StaticServer(LocalHTTPServer):
    server_class = QuietServer
    handler_class: type[BaseHTTPRequestHandler] = _FileHandler
    owner_attr = "static"
    thread_name = "test-static"

    def __init__(self, files: dict[str, bytes]):
        self.files, self.received = files, []
        self._init_server("127.0.0.1", 0)


def _check_rss_frame(frame: pd.DataFrame, report: SkipReport) -> None:
    assert frame[["published_at", "title"]].values.tolist() == [
        [pd.Timestamp("2024-05-01 13:30:00", tz="UTC"), "Apple beats estimates"],
        [pd.Timestamp("2024-05-01 14:00:00", tz="UTC"), "Applebee's posts record sales"]]
    assert frame["source"].unique().tolist() == ["Local Markets Wire"]
    assert frame["symbols"].tolist() == [["AAPL"], []]
    assert report.frame()[["where", "reason"]].values.tolist() == [
        ["entry 2", "no_time"], ["entry 4", "future"], ["entry 3", "duplicate_url"]]


def test_rss_over_http_fetches_only_the_feed_and_reads_dates_as_utc():
    rss = (FIXTURES / "sentiment_feed.rss").read_bytes()
    with _StaticServer({}) as srv:
        # a stylesheet, an external DTD and an enclosure: none of them may be fetched
        extra = (f'<?xml-stylesheet type="text/xsl" href="{srv.url}/style.xsl"?>\n'
                 f'<!DOCTYPE rss SYSTEM "{srv.url}/rss.dtd">\n').encode()
        head, _, tail = rss.partition(b"?>\n")
        body = head + b"?>\n" + extra + tail.replace(
            b"<title>Apple beats estimates</title>",
            b"<title>Apple beats estimates</title><enclosure url=\"" + srv.url.encode()
            + b"/a.mp3\" type=\"audio/mpeg\" length=\"1\"/>", 1)
        srv.files["/feed.xml"] = body
        src = RSSSource(srv.url + "/feed.xml", language="en",
                        symbol_map=SymbolMap({"AAPL": ["Apple"]}))
        frame = src.fetch(now=NOW)
        # nor an external entity (feedparser drops the declaration: a malformed document)
        srv.files["/entity.xml"] = head + b"?>\n" + (
            f'<!DOCTYPE rss [<!ENTITY ext SYSTEM "{srv.url}/entity">]>\n').encode() + tail
        other = RSSSource(srv.url + "/entity.xml")
        assert len(other.fetch(now=NOW)) == 2
        assert other.report.counts()["malformed_feed"] == 1
        time.sleep(0.2)
        assert srv.received == ["/feed.xml", "/entity.xml"]
    _check_rss_frame(frame, src.report)


def test_rss_from_a_file_gives_the_same_frame():
    src = RSSSource(FIXTURES / "sentiment_feed.rss", symbol_map=SymbolMap({"AAPL": ["Apple"]}))
    _check_rss_frame(src.fetch(now=NOW), src.report)


def test_atom_entries_use_published_else_updated_and_their_own_language():
    src = RSSSource(str(FIXTURES / "sentiment_feed.atom"), language="en")
    frame = src.fetch(now=NOW)
    assert frame[["published_at", "title", "url"]].values.tolist() == [
        [pd.Timestamp("2024-05-01 14:10", tz="UTC"), "Fed holds rates",
         "https://fil.example.fr/en/fed"]]
    assert src.report.frame()[["where", "reason", "detail"]].values.tolist() == [
        ["entry 0", "language", "'fr', not 'en'"]]
    everything = RSSSource(FIXTURES / "sentiment_feed.atom", name="Fil").fetch(now=NOW)
    assert everything["published_at"].tolist() == [pd.Timestamp("2024-05-01 14:00", tz="UTC"),
                                                   pd.Timestamp("2024-05-01 14:10", tz="UTC")]
    assert everything["source"].unique().tolist() == ["Fil"]


def test_a_truncated_feed_is_reported_and_a_document_that_is_no_feed_is_an_error(tmp_path):
    rss = (FIXTURES / "sentiment_feed.rss").read_bytes()
    cut = tmp_path / "cut.xml"
    cut.write_bytes(rss[:rss.index(b"<item>", rss.index(b"Applebee"))])
    src = RSSSource(cut)
    frame = src.fetch(now=NOW)
    assert src.report.frame()[["where", "reason"]].values.tolist()[0] == ["document",
                                                                          "malformed_feed"]
    assert frame["title"].tolist() == ["Apple beats estimates", "Applebee's posts record sales"]
    junk = tmp_path / "junk.xml"
    junk.write_text("<<<not xml")
    with pytest.raises(DataError, match="junk.xml: not an RSS or Atom feed"):
        RSSSource(junk).fetch()
    with pytest.raises(DataError, match="missing.xml: cannot read the feed"):
        RSSSource(tmp_path / "missing.xml").fetch()


def test_rss_http_errors_and_size_limit():
    with _StaticServer({"/big.xml": b"<rss>" + b" " * 5000 + b"</rss>"}) as srv:
        with pytest.raises(NewsSourceError, match="HTTP 404"):
            RSSSource(srv.url + "/nothing.xml").fetch()
        with pytest.raises(NewsSourceError, match="more than max_bytes=1000"):
            RSSSource(srv.url + "/big.xml", max_bytes=1000).fetch()


def test_the_library_imports_without_feedparser_and_rss_names_the_extra():
    code = ("import sys; sys.modules['feedparser'] = None\n"
            "import alphatrade_lab.sentiment as s\n"
            "try:\n    s.RSSSource('x.xml').fetch()\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert "pip install 'alphatrade-lab[sentiment]'" in out.stdout


# ----------------------------------------------------------------------------- files
def test_csv_headlines_follow_every_rule():
    src = FileSource(FIXTURES / "sentiment_headlines.csv", language="en",
                     symbol_map=SymbolMap({"AAPL": ["Apple"], "AAA": [], "MSFT": ["Microsoft"]}))
    frame = src.fetch(now=NOW)
    assert frame[["published_at", "title", "symbols"]].values.tolist() == [
        [pd.Timestamp("2024-05-01 13:30", tz="UTC"), "Apple beats estimates", ["AAPL"]],
        [pd.Timestamp("2024-05-01 14:00", tz="UTC"), "AAA-rated bonds rally", []],
        [pd.Timestamp("2024-05-01 14:05", tz="UTC"), "Microsoft and $aaa climb",
         ["AAA", "MSFT"]]]
    assert src.report.frame()[["where", "reason"]].values.tolist() == [
        ["row 3 (line 5)", "no_time"], ["row 4 (line 6)", "language"],
        ["row 7 (line 9)", "future"], ["row 5 (line 7)", "duplicate_title"],
        ["row 6 (line 8)", "duplicate_url"]]


def test_csv_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("published_at,title\n2024-05-01T13:30:00Z,Fed holds\n".encode("utf-8-sig"))
    assert FileSource(path).fetch(now=NOW)["title"].tolist() == ["Fed holds"]


def test_jsonl_headlines_with_lists_and_text_of_symbols():
    src = FileSource(FIXTURES / "sentiment_headlines.jsonl", language="en")
    frame = src.fetch(now=NOW)
    assert frame[["title", "source", "symbols"]].values.tolist() == [
        ["Apple beats estimates", "Wire", ["AAPL"]],
        ["Applebee's posts record sales", "sentiment_headlines.jsonl", []],
        ["Fed holds rates", "sentiment_headlines.jsonl", ["AAA", "BBB"]]]
    assert src.report.frame()[["where", "reason"]].values.tolist() == [
        ["row 2 (line 4)", "no_time"]]


@pytest.mark.parametrize(("name", "text", "match"), [
    ("a.csv", "published_at,headline\n2024-05-01,x\n", r"a.csv: no column 'title'"),
    ("b.csv", "published_at,title\n2024-05-01,ok\nsoon,bad\n",
     r"b.csv, column 'published_at', row 1 \(line 3\): 'soon' is not a time"),
    ("c.jsonl", '{"published_at": "2024-05-01", "title": "ok"}\n{"title": \n',
     r"c.jsonl, row 1 \(line 2\): not JSON"),
    ("d.jsonl", '{"published_at": "2024-05-01", "title": "ok"}\n[1, 2]\n',
     r"d.jsonl, row 1 \(line 2\): a JSON list, not an object"),
    ("e.jsonl", '{"published_at": "2024-05-01", "title": "ok", "symbols": 7}\n',
     r"e.jsonl, column 'symbols', row 0 \(line 1\): must be a list of tickers"),
    ("f.jsonl", '{"title": "ok"}\n', r"f.jsonl: no row has a 'published_at' key"),
    ("h.jsonl", '{"published_at": 1714570200, "title": "epoch seconds"}\n',
     r"h.jsonl, column 'published_at', row 0 \(line 1\): 1714570200 is not a time"),
    ("g.txt", "x", r"g.txt: a FileSource reads .csv, .jsonl or .ndjson"),
])
def test_file_errors_name_the_file_row_and_column(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        FileSource(path).fetch(now=NOW)


# ----------------------------------------------------------------------------- symbols
@pytest.mark.parametrize(("text", "expected"), [
    ("Apple beats estimates", ["AAPL"]),
    ("Apple's supplier warns", ["AAPL"]),
    ("Apple-branded chargers recalled", ["AAPL"]),
    ("APPLE BEATS ESTIMATES", ["AAPL"]),
    ("Applebee's posts record sales", []),
    ("pineapple futures and an apple pie", []),
    ("Apple Inc. and Applied Materials", ["AAPL"]),
    ("AAA jumps 5%", ["AAA"]),
    ("Shares of AAA.", ["AAA"]),
    ("(AAA) and $aaa", ["AAA"]),
    ("AAA-rated bonds", []),
    ("AAAB rallies, XAAA falls, aaa", []),
    ("visit AAA.com", []),
    ("BRK.B gains, BRK flat", ["BRK.B"]),
    ("F rises as IT spending grows", []),
    ("$F rises, $IT too", ["F", "IT"]),
    ("Meta Platforms and Meta", ["META"]),
    ("", []),
])
def test_symbols_match_whole_words_not_substrings(text, expected):
    m = SymbolMap({"AAPL": ["Apple", "Apple Inc."], "AAA": [], "BRK.B": ["Berkshire"],
                   "F": ["Ford"], "IT": ["Gartner"], "META": ["Meta Platforms", "Meta"]},
                  cashtag_only=["IT"])
    assert m.find(text) == expected


def test_symbol_map_rejects_bad_tickers_and_names_claimed_twice():
    with pytest.raises(DataError, match="ticker 'aapl' must be upper-case"):
        SymbolMap({"aapl": ["Apple"]})
    with pytest.raises(DataError, match="the name 'Alpha' stands for both 'AAA' and 'BBB'"):
        SymbolMap({"AAA": ["Alpha"], "BBB": ["Alpha"]})
    with pytest.raises(DataError, match="must be a list, got the text 'Apple'"):
        SymbolMap({"AAPL": "Apple"})
    with pytest.raises(DataError, match=r"cashtag_only names unknown tickers \['ZZZ'\]"):
        SymbolMap({"AAA": []}, cashtag_only=["ZZZ"])


# ----------------------------------------------------------------------------- dedupe
@pytest.mark.parametrize(("a", "b"), [
    ("https://example.com/a", "http://EXAMPLE.COM/a/"),
    ("https://www.example.com/a?id=3", "https://example.com/a?utm_source=x&id=3&utm_medium=y"),
    ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2#comments"),
    ("https://example.com:443/a?fbclid=123", "https://example.com/a"),
    ("https://reader@example.com/a?UTM_Campaign=z", "https://example.com/a"),
    ("http://[::1]:80/a", "https://[::1]/a"),
])
def test_urls_that_point_to_the_same_article_normalise_alike(a, b):
    assert normalize_url(a) == normalize_url(b)


@pytest.mark.parametrize(("a", "b"), [
    ("https://example.com/a", "https://example.com/b"),
    ("https://example.com/News", "https://example.com/news"),      # paths keep their case
    ("https://example.com/a?id=3", "https://example.com/a?id=4"),
    ("https://example.com:8080/a", "https://example.com/a"),
])
def test_different_articles_keep_different_urls(a, b):
    assert normalize_url(a) != normalize_url(b)


def test_titles_normalise_case_punctuation_and_spaces():
    assert normalize_title("Apple  BEATS — estimates!") == normalize_title("apple beats estimates")
    assert normalize_title("Apple beats estimates") != normalize_title("Apple misses estimates")


def test_dedupe_across_sources_keeps_the_first_published():
    late = build_articles([{"published_at": "2024-05-01T15:00Z", "title": "Fed holds rates",
                            "url": "https://b.example.com/fed", "source": "B"}],
                          source="b", report=SkipReport())
    early = build_articles([
        {"published_at": "2024-05-01T14:00Z", "title": "Fed holds rates.",
         "url": "https://a.example.com/fed", "source": "A"},
        {"published_at": "2024-05-01T14:30Z", "title": "No URL here", "source": "A"},
        {"published_at": "2024-05-01T14:40Z", "title": "No URL either", "source": "A"}],
        source="a", report=SkipReport())
    report = SkipReport()
    out = dedupe(pd.concat([late, early], ignore_index=True), report=report)
    assert out["source"].tolist() == ["A", "A", "A"]      # empty URLs do not collide
    assert report.frame()[["where", "reason", "detail"]].values.tolist() == [
        ["row 0", "duplicate_title", "same title as row 1"]]
    with pytest.raises(DataError, match="not an article frame"):
        dedupe(pd.DataFrame({"title": ["x"]}))


# ----------------------------------------------------------------------------- the rules
def test_each_bad_article_rule_is_reported_and_skipped(caplog):
    records = [
        {"published_at": "2024-05-31T23:59:00", "title": "Naive time read as UTC"},
        {"published_at": "2024-06-01T02:00:00+02:00", "title": "Offset converted"},
        {"published_at": "2024-06-01T00:04:00Z", "title": "Within the clock skew"},
        {"published_at": "2024-06-01T00:06:00Z", "title": "Beyond the clock skew"},
        {"published_at": "", "title": "Empty time"},
        {"published_at": float("nan"), "title": "NaN time"},
        {"published_at": pd.NaT, "title": "NaT time"},
        {"published_at": "2024-13-45", "title": "Impossible date"},
        {"published_at": "2024-05-01", "title": "Langue", "language": "fr"},
        {"published_at": "2024-05-01", "title": "Language with region", "language": "en-GB"},
        {"published_at": "2024-05-01", "title": "Language unknown", "language": None},
        {"published_at": "2024-05-01", "title": "   "},
    ]
    report = SkipReport()
    with caplog.at_level(logging.WARNING, "alphatrade_lab.sentiment"):
        frame = build_articles(records, source="unit", report=report, language="en", now=NOW)
    assert frame["title"].tolist() == [
        "Language with region", "Language unknown", "Naive time read as UTC",
        "Offset converted", "Within the clock skew"]
    assert frame["published_at"].iloc[2:].tolist() == [
        pd.Timestamp("2024-05-31 23:59", tz="UTC"), pd.Timestamp("2024-06-01 00:00", tz="UTC"),
        pd.Timestamp("2024-06-01 00:04", tz="UTC")]
    assert report.frame()[["where", "reason"]].values.tolist() == [
        ["record 3", "future"], ["record 4", "no_time"], ["record 5", "no_time"],
        ["record 6", "no_time"], ["record 7", "bad_time"], ["record 8", "language"],
        ["record 11", "no_title"]]
    assert len(caplog.records) == 7
    assert "unit, record 3: skipped, a publication time in the future" in caplog.text


def test_skip_details_are_redacted():
    report = SkipReport()
    build_articles([{"published_at": "token=sk_live_abcdefghijklmnop", "title": "x"}],
                   source="s", report=report)
    assert "sk_live_abcdefghijklmnop" not in report.frame()["detail"].iloc[0]
    with pytest.raises(ValueError, match="unknown reason"):
        report.add("s", "w", "no-such-reason")
