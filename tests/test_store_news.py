"""Lab store, schema version 4: the news cache (issue 21, part 4), on DuckDB and PostgreSQL.

Expectations are written out from the issue: one row per article however its URL is
spelled, a later fetch replaces the article and merges its scores, bad rows are refused
by name, and a failed write loses nothing stored.
"""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.errors import DataError
from alphatrade_lab.sentiment import ARTICLE_COLUMNS
from alphatrade_lab.store import SCHEMA_VERSION, TABLES, LabStore, migrations

T0 = pd.Timestamp("2024-05-01 13:30", tz="UTC")


def _articles(n: int, *, start: pd.Timestamp = T0, prefix: str = "story") -> pd.DataFrame:
    return pd.DataFrame({
        "published_at": [start + pd.Timedelta(minutes=i) for i in range(n)],
        "source": "Wire",
        "title": [f"{prefix} {i}: AAA and BBB" for i in range(n)],
        "description": [f"body {i}" for i in range(n)],
        "url": [f"https://wire.example.com/{prefix}/{i}" for i in range(n)],
        "symbols": [["AAA"] if i % 2 else ["AAA", "BBB"] for i in range(n)],
    })


@pytest.fixture
def store(store_url):
    return LabStore(store_url)


# ----------------------------------------------------------------------------- schema
def test_schema_4_has_the_news_table_keyed_on_url_key(store):
    assert SCHEMA_VERSION == 4 and store.schema_version == 4
    assert [c.name for c in TABLES["news"]] == [
        "url_key", "published_at", "source", "title", "description", "url", "symbols",
        "language", "query", "fetched_at", "scores"]
    assert store.counts()["news"] == 0
    if store.dialect == "postgres":
        idx = store.query("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'news'")
        defs = " ".join(idx["indexdef"])
        assert "(url_key)" in defs and "(published_at)" in defs   # the key and the time
        types = store.query("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = 'news' AND table_schema = current_schema()")
        kinds = dict(zip(types["column_name"], types["data_type"], strict=True))
        assert kinds["scores"] == kinds["symbols"] == "jsonb"


def test_a_version_3_file_migrates_to_4_keeping_its_rows(tmp_path):
    path = tmp_path / "v3.duckdb"
    with duckdb.connect(str(path)) as con:   # a file as the version-3 code left it
        assert migrations.migrate(con, 3) == (0, 3)
        con.execute("INSERT INTO runs (run_id, created_at, kind) VALUES ('old', "
                    "TIMESTAMPTZ '2024-01-01 00:00:00+00', 'paper')")
        assert "news" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    store = LabStore(path)
    assert store.migrated_from == 3 and store.schema_version == 4
    assert store.runs()["run_id"].tolist() == ["old"]
    versions = store.query("SELECT version, description FROM schema_version ORDER BY 1")
    assert versions["version"].tolist() == [1, 2, 3, 4]
    assert "news" in versions["description"].iloc[-1]
    LabStore(tmp_path / "fresh.duckdb")
    q_cols = ("SELECT table_name, column_name, data_type, is_nullable, ordinal_position "
              "FROM information_schema.columns WHERE table_schema = current_schema()")
    q_cons = ("SELECT table_name, constraint_type, constraint_text FROM duckdb_constraints() "
              "WHERE schema_name = current_schema()")
    with duckdb.connect(str(path), read_only=True) as old, \
            duckdb.connect(str(tmp_path / "fresh.duckdb"), read_only=True) as new:
        news = [r for r in old.execute(q_cols).fetchall() if r[0] == "news"]
        assert news == [r for r in new.execute(q_cols).fetchall() if r[0] == "news"]
        assert len(news) == len(TABLES["news"])

        def cons(con):
            return {(t, k, re.sub(r"\s+", " ", x)) for t, k, x in con.execute(q_cons).fetchall()}
        assert cons(old) == cons(new)
        assert ("news", "PRIMARY KEY", "PRIMARY KEY(url_key)") in cons(new)
    assert store.record_news(_articles(2)) == 2


# ------------------------------------------------------------------------- round trips
def test_articles_and_scores_round_trip(store):
    arts = _articles(4)
    lm = np.array([0.5, -1.0, np.nan, 0.0])
    n = store.record_news(arts, query="AAA", language="en",
                          scores={"lm": lm, "vader": [0.1, 0.2, 0.3, 0.4]},
                          fetched_at="2024-05-02")
    assert n == 4 and store.counts()["news"] == 4
    got = store.news()
    assert list(got.columns) == [*ARTICLE_COLUMNS, "url_key", "language", "query",
                                 "fetched_at", "score_lm", "score_vader"]
    assert str(got["published_at"].dtype) == "datetime64[ns, UTC]"
    pd.testing.assert_series_equal(got["published_at"], arts["published_at"].astype(
        "datetime64[ns, UTC]"))
    for col in ("source", "title", "description", "url"):
        assert got[col].tolist() == arts[col].tolist(), col
    assert got["symbols"].tolist() == arts["symbols"].tolist()
    assert got["url_key"].tolist() == arts["url"].tolist()   # already normalised URLs
    assert (got["language"] == "en").all() and (got["query"] == "AAA").all()
    assert (got["fetched_at"] == pd.Timestamp("2024-05-02", tz="UTC")).all()
    np.testing.assert_array_equal(got["score_lm"].to_numpy(), lm)   # NaN: not scored
    assert got["score_vader"].tolist() == [0.1, 0.2, 0.3, 0.4]
    # a frame read back writes back unchanged
    assert store.record_news(got) == 4
    again = store.news()
    pd.testing.assert_frame_equal(again, got)
    empty = LabStore(":memory:").news()
    assert list(empty.columns) == [*ARTICLE_COLUMNS, "url_key", "language", "query",
                                   "fetched_at"] and empty.empty


def test_one_row_per_article_however_its_url_is_spelled(store):
    first = _articles(1)
    assert store.record_news(first, query="AAA", scores={"lm": [0.5]}) == 1
    spelled = first.assign(url="HTTP://WWW.Wire.Example.com:80/story/0/?utm_source=tw#top",
                           title="story 0: AAA and BBB (updated)",
                           published_at=T0 + pd.Timedelta(seconds=30))
    assert store.record_news(spelled, scores={"vader": [-0.25]}) == 1
    got = store.news()
    assert len(got) == 1 and store.counts()["news"] == 1
    row = got.iloc[0]
    # the later fetch replaces the article ...
    assert row["title"] == "story 0: AAA and BBB (updated)"
    assert row["url"] == "HTTP://WWW.Wire.Example.com:80/story/0/?utm_source=tw#top"
    assert row["published_at"] == T0 + pd.Timedelta(seconds=30)
    # ... merges its scores by scorer and keeps the query it did not give
    assert (row["score_lm"], row["score_vader"]) == (0.5, -0.25)
    assert row["query"] == "AAA" and row["url_key"] == "https://wire.example.com/story/0"
    assert store.record_news(first, scores={"lm": [0.75]}, query="BBB") == 1
    row = store.news().iloc[0]
    assert (row["score_lm"], row["score_vader"], row["query"]) == (0.75, -0.25, "BBB")


def test_repeats_in_one_call_count_once_and_the_last_wins(store):
    arts = pd.concat([_articles(3), _articles(1).assign(title="the last word")],
                     ignore_index=True)
    assert store.record_news(arts) == 3
    got = store.news()
    assert len(got) == 3 and got["title"].iloc[0] == "the last word"


def test_articles_without_a_url_are_keyed_by_their_title(store):
    arts = _articles(2).assign(url=["", None])
    assert store.record_news(arts) == 2
    again = _articles(1).assign(url="", title="STORY 0:  aaa and bbb!")
    assert store.record_news(again) == 1
    got = store.news()
    assert sorted(got["url_key"]) == ["title:story 0 aaa and bbb", "title:story 1 aaa and bbb"]
    assert got["url"].isna().all() and len(got) == 2


def test_filters_by_symbol_time_source_and_query(store):
    store.record_news(_articles(6), query="q1")
    store.record_news(_articles(2, prefix="other", start=T0 + pd.Timedelta(hours=1))
                      .assign(source="Feed", symbols=[["CCC"], []]), query="q2")
    assert len(store.news()) == 8
    assert len(store.news("BBB")) == 3 and len(store.news(["BBB", "CCC"])) == 4
    assert len(store.news(symbol="ZZZ")) == 0
    # [start, end), naive times read as UTC
    got = store.news(start="2024-05-01 13:31", end=T0 + pd.Timedelta(minutes=3))
    assert got["title"].str.slice(0, 7).tolist() == ["story 1", "story 2"]
    assert len(store.news(source="Feed")) == 2 and len(store.news(query=["q1", "q2"])) == 8
    assert store.news(query="q2", symbol="CCC")["title"].tolist() == ["other 0: AAA and BBB"]
    assert store.news()["published_at"].is_monotonic_increasing


def test_the_watermark_is_the_latest_publication_stored(store):
    assert store.news_watermark() is None and store.news_watermark("Wire", "q1") is None
    store.record_news(_articles(3), query="q1")
    store.record_news(_articles(2, prefix="late", start=T0 + pd.Timedelta(hours=2))
                      .assign(source="Feed"), query="q2")
    assert store.news_watermark(query="q1") == T0 + pd.Timedelta(minutes=2)
    assert store.news_watermark("Feed", "q2") == T0 + pd.Timedelta(hours=2, minutes=1)
    assert store.news_watermark() == T0 + pd.Timedelta(hours=2, minutes=1)
    assert store.news_watermark("Feed", "q1") is None
    assert store.news_watermark(query=[]) is None
    assert isinstance(store.news_watermark(query="q1"), pd.Timestamp)
    assert str(store.news_watermark(query="q1").tz) == "UTC"


def test_keys_and_known_keys(store):
    arts = _articles(2)
    keys = store.news_keys(arts.assign(url=["https://www.wire.example.com/story/0/", None]))
    assert keys.tolist() == ["https://wire.example.com/story/0", "title:story 1 aaa and bbb"]
    assert store.news_known(keys) == set()
    store.record_news(arts.iloc[:1])
    assert store.news_known(keys) == {"https://wire.example.com/story/0"}
    assert store.news_known([]) == set()


def test_a_credential_in_a_url_is_stored_redacted_and_still_one_article(store):
    arts = _articles(1).assign(url="https://wire.example.com/a?token=Zx9Qw8Er7Ty6Ui5Op4")
    store.record_news(arts)
    store.record_news(arts.assign(title="again"))
    got = store.news()
    assert len(got) == 1 and "Zx9Qw8Er7Ty6Ui5Op4" not in got.to_string()
    assert got["url_key"].iloc[0] == "https://wire.example.com/a?token=[REDACTED]"
    assert store.news_known(store.news_keys(arts)) == {got["url_key"].iloc[0]}


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("change", "message"), [
    (lambda a: a.assign(title=["ok", None, "ok"]),
     r"news, column 'title', row 1 \(index 1\) is missing; every article needs a title"),
    (lambda a: a.assign(title=["ok", "ok", "  "]), r"'title', row 2 \(index 2\) is '  '"),
    (lambda a: a.assign(published_at=[T0, pd.NaT, T0]),
     r"news, column 'published_at', row 1 \(index 1\) is NaT; NaT/NULL is not allowed"),
    (lambda a: a.assign(published_at=[T0, "not a time", T0]),
     r"news, column 'published_at', row 1 \(index 1\) is 'not a time'; expected a timestamp"),
    (lambda a: a.assign(symbols=[["AAA"], "AAA", []]),
     r"news, column 'symbols', row 1 \(index 1\) is 'AAA'; expected a list of tickers"),
    (lambda a: a.assign(symbols=[["AAA"], [], [1]]), r"column 'symbols', row 2"),
    (lambda a: a.assign(score_lm=[0.1, np.inf, 0.0]),
     r"news, column 'scores', row 1 \(index 1\): score 'lm' is inf; expected a finite number"),
    (lambda a: a.assign(score_lm=[0.1, 0.2, "high"]), r"row 2 \(index 2\): score 'lm' is 'high'"),
    (lambda a: a.assign(score_lm=[True, 0.2, 0.1]), r"row 0 \(index 0\): score 'lm' is True"),
    (lambda a: a.assign(extra=1), r"unknown column\(s\) \['extra'\]"),
    (lambda a: a.drop(columns="symbols"), r"missing column\(s\) \['symbols'\]"),
])
def test_bad_rows_are_refused_by_name_and_nothing_stored_changes(store, change, message):
    store.record_news(_articles(3), query="AAA", scores={"lm": [0.1, 0.2, 0.3]})
    before = store.news()
    bad = change(_articles(3))
    with pytest.raises(DataError, match=message):
        store.record_news(bad, query="BBB")
    pd.testing.assert_frame_equal(store.news(), before)


def test_bad_scores_and_frames_are_refused(store):
    arts = _articles(2)
    with pytest.raises(DataError, match=r"scores 'lm' has 1 values for 2 articles"):
        store.record_news(arts, scores={"lm": [0.1]})
    with pytest.raises(DataError, match=r"a scorer name must be a non-empty text"):
        store.record_news(arts, scores={"": [0.1, 0.2]})
    with pytest.raises(DataError, match=r"scores must be a mapping"):
        store.record_news(arts, scores=[0.1, 0.2])
    with pytest.raises(DataError, match=r"expected an article frame \(DataFrame\), got list"):
        store.record_news([{"title": "x"}])
    assert store.record_news(arts.iloc[:0]) == 0 and store.counts()["news"] == 0


def test_a_write_the_database_refuses_loses_nothing_stored(pg_url):
    """PostgreSQL refuses a NUL character in a text: the batch's stored rows were already
    deleted inside the transaction, and the rollback brings them back."""
    store = LabStore(pg_url)
    store.record_news(_articles(3), query="AAA", scores={"lm": [0.1, 0.2, 0.3]})
    before = store.news()
    bad = _articles(3).assign(title=["new 0", "new 1", "new\x00 2"])
    with pytest.raises(DataError, match="nothing was written"):
        store.record_news(bad)
    pd.testing.assert_frame_equal(store.news(), before)
    assert store.record_news(bad.assign(title="fixed")) == 3
