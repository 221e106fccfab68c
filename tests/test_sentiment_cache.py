"""The news cache (issue 21, part 4): fetch_cached against a real local NewsAPI and real
files, into a real store on both backends. A second run asks only from the watermark on,
only new articles are scored and stored, nothing is stored twice, bad input is refused by
row and loses nothing stored."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.errors import DataError
from alphatrade_lab.sentiment import (
    FileSource,
    LoughranMcDonaldScorer,
    NewsAPISource,
    RSSSource,
    Scorer,
    build_articles,
    cache_query,
    fetch_cached,
)
from alphatrade_lab.sentiment.articles import SkipReport
from alphatrade_lab.store import LabStore
from alphatrade_lab.testing import LocalNewsAPI

NOW = pd.Timestamp("2024-06-01", tz="UTC")
T0 = pd.Timestamp("2024-05-01T09:00:00Z")
HEADLINES = ("AAA profit beats estimates", "AAA faces lawsuit over losses",
             "AAA holds its meeting", "AAA shares gain on strong demand")


def _api_articles(n: int, first: int = 0) -> list[dict]:
    return [{"source": {"id": None, "name": "Wire"}, "title": f"{HEADLINES[i % 4]} ({i})",
             "description": f"markets story {i}", "url": f"https://wire.example.com/aaa/{i}",
             "publishedAt": (T0 + pd.Timedelta(minutes=10 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")}
            for i in range(first, first + n)]


class CountingScorer(Scorer):
    """A real scorer (text length parity) that counts the texts it was given."""

    name = "counting"
    columns = ("score",)

    def __init__(self) -> None:
        self.seen: list[str] = []

    def _components(self, texts):
        self.seen += texts
        return {"score": np.array([1.0 if len(t) % 2 else -1.0 for t in texts])}


def _queries(srv: LocalNewsAPI) -> list[dict[str, str]]:
    return [dict(parse_qsl(urlsplit(r.path).query)) for r in srv.received]


def _write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


# ----------------------------------------------------------------------------- NewsAPI
def test_a_second_run_asks_newsapi_only_from_the_watermark(store_url):
    store = LabStore(store_url)
    lm, counting = LoughranMcDonaldScorer(), CountingScorer()
    with LocalNewsAPI(_api_articles(5)) as srv:
        src = NewsAPISource("AAA", api_key=srv.api_key, base_url=srv.url, language="en")
        first = fetch_cached(src, store, scorers=[lm, counting], now=NOW)
        assert len(srv.received) == 1 and "from" not in _queries(srv)[0]
        assert first.attrs["news_cache"] == {"query": "AAA [language=en]", "from": None,
                                             "fetched": 5, "written": 5}
        assert len(first) == 5 and len(counting.seen) == 5
        mark = store.news_watermark(query="AAA [language=en]")
        assert mark == T0 + pd.Timedelta(minutes=40)

        srv.add_articles(_api_articles(3, first=5))
        second = fetch_cached(src, store, scorers=[lm, counting], now=NOW)
        asked = _queries(srv)[1]
        assert asked["from"] == "2024-05-01T09:40:00" and asked["q"] == "AAA"
        # the server answers the watermark's own second (from= is inclusive) and what is
        # newer: the article already stored is neither scored nor written again
        assert second.attrs["news_cache"]["fetched"] == 4
        assert second.attrs["news_cache"]["written"] == 3
        assert counting.seen[5:] == [a["title"] for a in _api_articles(3, first=5)]
        assert store.counts()["news"] == 8 and len(second) == 8

        third = fetch_cached(src, store, scorers=[lm, counting], now=NOW)
        assert _queries(srv)[2]["from"] == "2024-05-01T10:10:00"
        assert third.attrs["news_cache"]["written"] == 0 and len(counting.seen) == 8
    assert store.counts()["news"] == 8
    got = store.news()
    assert got["url_key"].is_unique and got["title"].tolist() == [
        a["title"] for a in _api_articles(8)]
    assert (got["language"] == "en").all() and (got["query"] == "AAA [language=en]").all()
    np.testing.assert_array_equal(got["score_loughran_mcdonald"].to_numpy(),
                                  lm.score(got["title"]))
    np.testing.assert_array_equal(got["score_counting"].to_numpy(),
                                  CountingScorer().score(got["title"]))
    pd.testing.assert_frame_equal(third, got)


def test_the_range_bounds_what_is_asked_and_returned(tmp_path):
    store = LabStore(tmp_path / "lab.duckdb")
    with LocalNewsAPI(_api_articles(6)) as srv:
        src = NewsAPISource("AAA", api_key=srv.api_key, base_url=srv.url)
        start, end = T0 + pd.Timedelta(minutes=15), T0 + pd.Timedelta(minutes=40)
        got = fetch_cached(src, store, start=start, end=end, now=NOW)
        asked = _queries(srv)[0]
        assert (asked["from"], asked["to"]) == ("2024-05-01T09:15:00", "2024-05-01T09:40:00")
        # NewsAPI's to= is inclusive, the returned range [start, end) is not
        assert store.counts()["news"] == 3 and got["url"].str[-1].tolist() == ["2", "3"]
        # an end at or before the watermark: nothing can be new, nothing is asked
        again = fetch_cached(src, store, start=start, end=end, now=NOW)
        assert len(srv.received) == 1 and again.attrs["news_cache"]["fetched"] == 0
        pd.testing.assert_frame_equal(again, got)
        # a start after the watermark is where the next request starts
        later = T0 + pd.Timedelta(minutes=45)
        fetch_cached(src, store, start=later, now=NOW)
        assert _queries(srv)[1]["from"] == "2024-05-01T09:45:00" and "to" not in _queries(srv)[1]
        assert store.counts()["news"] == 4


def test_a_capped_answer_after_the_watermark_is_warned_about(tmp_path, caplog):
    store = LabStore(tmp_path / "lab.duckdb")
    with LocalNewsAPI(_api_articles(2)) as srv:
        src = NewsAPISource("AAA", api_key=srv.api_key, base_url=srv.url, page_size=2,
                            max_results=2)
        fetch_cached(src, store, now=NOW)
        srv.add_articles(_api_articles(3, first=2))
        with caplog.at_level(logging.WARNING, logger="alphatrade_lab.sentiment"):
            fetch_cached(src, store, now=NOW)
    assert "reach the source's max_results=2" in caplog.text
    # asked from article 1's time: 1 to 4 match, the newest two (4, 3) are served, 2 is not
    assert store.news()["url"].str[-1].tolist() == ["0", "1", "3", "4"]


def test_queries_keep_their_own_watermark_and_share_articles(tmp_path):
    store = LabStore(tmp_path / "lab.duckdb")
    arts = _api_articles(3) + [{**a, "title": a["title"] + " BBB"} for a in _api_articles(2, 3)]
    with LocalNewsAPI(arts) as srv:
        aaa = NewsAPISource("AAA", api_key=srv.api_key, base_url=srv.url)
        bbb = NewsAPISource("BBB", api_key=srv.api_key, base_url=srv.url)
        assert len(fetch_cached(aaa, store, now=NOW)) == 5
        got = fetch_cached(bbb, store, now=NOW)   # its own watermark: none yet
        assert "from" not in _queries(srv)[1]
        # both articles were stored by the AAA query: returned, not stored twice
        assert len(got) == 2 and got.attrs["news_cache"]["written"] == 0
        assert store.counts()["news"] == 5 and (got["query"] == "AAA").all()


# ------------------------------------------------------------------------ feeds, files
def test_a_file_is_read_whole_and_only_new_articles_are_written(store_url, tmp_path):
    store = LabStore(store_url)
    path = tmp_path / "news.jsonl"
    rows = [{"published_at": f"2024-05-01T1{i}:00:00Z", "title": HEADLINES[i],
             "url": f"https://feed.example.com/{i}", "symbols": ["AAA"]} for i in range(3)]
    _write_jsonl(path, rows)
    src, counting = FileSource(path), CountingScorer()
    first = fetch_cached(src, store, scorers=counting, now=NOW)
    assert first.attrs["news_cache"] == {"query": str(path), "from": None, "fetched": 3,
                                         "written": 3}
    # the same articles again (their URLs spelled otherwise) and one new one
    rows = [{**r, "url": r["url"].replace("https://", "HTTP://www.") + "?utm_source=x"}
            for r in rows] + [{"published_at": "2024-05-01T08:00:00Z", "title": HEADLINES[3],
                               "url": "https://feed.example.com/3", "symbols": ["AAA"]}]
    _write_jsonl(path, rows)
    second = fetch_cached(src, store, scorers=counting, now=NOW)
    assert second.attrs["news_cache"]["fetched"] == 4
    assert second.attrs["news_cache"]["written"] == 1
    assert counting.seen == [*HEADLINES[:3], HEADLINES[3]]
    assert store.counts()["news"] == 4 and second["title"].iloc[0] == HEADLINES[3]
    assert second["language"].isna().all()   # a file's language is not known
    assert (second["symbols"].map(tuple) == ("AAA",)).all()


def test_an_rss_feed_is_cached_under_its_redacted_location(tmp_path):
    store = LabStore(tmp_path / "lab.duckdb")
    path = tmp_path / "feed.xml"
    path.write_text('<rss version="2.0"><channel><title>Wire</title>'
                    '<item><title>AAA jumps</title><link>https://w.example.com/1</link>'
                    '<pubDate>Wed, 01 May 2024 13:30:00 +0000</pubDate></item>'
                    '</channel></rss>')
    got = fetch_cached(RSSSource(path), store, scorers=[LoughranMcDonaldScorer()], now=NOW)
    assert got["query"].tolist() == [str(path)] and got["source"].tolist() == ["Wire"]
    assert store.news_watermark("Wire", str(path)) == pd.Timestamp("2024-05-01 13:30",
                                                                   tz="UTC")
    assert fetch_cached(RSSSource(path), store, now=NOW).attrs["news_cache"]["written"] == 0


def test_cache_query_names_what_fetched_the_articles(tmp_path):
    assert cache_query(NewsAPISource("apple", api_key="k")) == "apple"
    assert cache_query(NewsAPISource("apple", language="de", api_key="k")) == \
        "apple [language=de]"
    assert cache_query(RSSSource("https://f.example.com/rss?apikey=Qw8Er7Ty6Ui5Op4As3")) == \
        "https://f.example.com/rss?apikey=[REDACTED]"
    assert cache_query(FileSource(tmp_path / "n.csv")) == str(tmp_path / "n.csv")


# ------------------------------------------------------------------------- bad input
class FrameSource:
    """A source whose fetch returns a given article frame (any object with fetch())."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.query = frame, "frames"

    def fetch(self) -> pd.DataFrame:
        return self.frame


def _frame(n: int) -> pd.DataFrame:
    return build_articles([{"published_at": f"2024-05-0{i + 1}T10:00:00Z",
                            "title": HEADLINES[i], "url": f"https://x.example.com/{i}"}
                           for i in range(n)], source="test", report=SkipReport(), now=NOW)


def test_a_bad_article_frame_is_refused_by_row_and_loses_nothing(store_url):
    store = LabStore(store_url)
    fetch_cached(FrameSource(_frame(2)), store, scorers=[LoughranMcDonaldScorer()])
    before = store.news()
    bad = pd.concat([_frame(4).iloc[2:], _frame(2)], ignore_index=True)
    bad.at[1, "symbols"] = "AAA BBB"
    with pytest.raises(DataError, match=r"news, column 'symbols', row 1 \(index 1\) is "
                                        r"'AAA BBB'; expected a list of tickers"):
        fetch_cached(FrameSource(bad), store, scorers=[LoughranMcDonaldScorer()])
    pd.testing.assert_frame_equal(store.news(), before)
    missing = _frame(3).drop(columns="url")
    with pytest.raises(DataError, match=r"expected an article frame with 'url' and 'title'"):
        fetch_cached(FrameSource(missing), store)
    assert store.counts()["news"] == 2


def test_scorers_are_checked_before_anything_is_fetched(tmp_path):
    store = LabStore(tmp_path / "lab.duckdb")
    with LocalNewsAPI(_api_articles(2)) as srv:
        src = NewsAPISource("AAA", api_key=srv.api_key, base_url=srv.url)
        with pytest.raises(ValueError, match="two scorers are named 'loughran_mcdonald'"):
            fetch_cached(src, store, scorers=[LoughranMcDonaldScorer()] * 2)
        with pytest.raises(TypeError, match="scorers must have a name and a score"):
            fetch_cached(src, store, scorers=[len])
        with pytest.raises(ValueError, match="start must be a time"):
            fetch_cached(src, store, start="soon")
        assert srv.received == []
    assert store.counts()["news"] == 0
