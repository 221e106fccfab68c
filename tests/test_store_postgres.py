"""The lab store on PostgreSQL, beyond the shared store tests (which run on both backends):
the schema it creates, errors at start, what untrusted SQL can and cannot do as an
ordinary role, placeholders, locks, reader dtypes equal to DuckDB's, and LocalPostgres.

Every test here uses a real server (conftest: one per session, a schema per test, an
ordinary role; ATL_TEST_POSTGRES_URL picks an existing server).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import psycopg
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import (
    DataError,
    SchemaVersionError,
    StoreError,
    StoreLockedError,
    StoreUnavailableError,
)
from alphatrade_lab.store import LabStore
from alphatrade_lab.store import postgres as pg_store
from alphatrade_lab.store.postgres import PostgresLabStore, schema_sql
from alphatrade_lab.store.schema import SCHEMA_VERSION, TABLES
from alphatrade_lab.testing import LocalPostgres

T0 = pd.Timestamp("2024-03-01 14:30", tz="UTC")


def _as_url(conninfo: str) -> str:
    """A libpq ``key=value`` string as a ``postgresql://`` URL (search_path kept)."""
    d = psycopg.conninfo.conninfo_to_dict(conninfo)
    url = (f"postgresql://{quote(d['user'])}:{quote(d['password'])}@{d['host']}:{d['port']}/"
           f"{d['dbname']}")
    return url + (f"?options={quote(d['options'])}" if d.get("options") else "")


def _admin(pg_admin: str) -> psycopg.Connection:
    return psycopg.connect(pg_admin, autocommit=True)


@pytest.fixture
def store(pg_url):
    with LabStore(pg_url) as s:
        s.record_run("backtest", run_id="r1")
        s.record_trades(pd.DataFrame({"symbol": ["AAA", "BBB", "AAA"], "side": "long",
                                      "quantity": [1.0, 2.0, 3.0], "entry_time": T0,
                                      "entry_price": 10.0}), run_id="r1")
        yield s


# ------------------------------------------------------------------------------ schema
def test_a_fresh_store_has_the_duckdb_tables_with_jsonb_indexes_and_keys(pg_url, pg_admin,
                                                                        tmp_path):
    store = LabStore(pg_url)
    assert isinstance(store, PostgresLabStore) and isinstance(store, LabStore)
    assert store.migrated_from == 0 and store.schema_version == SCHEMA_VERSION
    assert LabStore(pg_url).migrated_from == SCHEMA_VERSION  # opened again: nothing to do
    LabStore(tmp_path / "lab.duckdb")
    import duckdb

    with duckdb.connect(str(tmp_path / "lab.duckdb"), read_only=True) as con:
        duck = set(con.execute("SELECT table_name, column_name, is_nullable FROM "
                               "information_schema.columns WHERE table_schema = "
                               "current_schema()").fetchall())
    with _admin(pg_admin) as con:
        cols = con.execute("SELECT table_name, column_name, is_nullable, data_type FROM "
                           "information_schema.columns WHERE table_schema = current_schema()"
                           ).fetchall()
        indexes = {r[0] for r in con.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")}
        keys = {r[0]: r[1] for r in con.execute(
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'p' AND connamespace = current_schema()::regnamespace")}
        versions = con.execute("SELECT version FROM schema_version").fetchall()
    assert {(t, c, n) for t, c, n, _ in cols} == duck  # same tables, columns, NULL rules
    json_cols = {(t, c) for t, cs in TABLES.items() for c in (x.name for x in cs
                                                              if x.sql_type == "JSON")}
    assert {(t, c) for t, c, _, d in cols if d == "jsonb"} == json_cols
    assert {"trades_run_id_idx", "trades_symbol_idx", "trades_entry_time_idx",
            "signals_timestamp_idx", "alerts_ts_idx", "fills_run_id_idx"} <= indexes
    assert keys["orders"] == "PRIMARY KEY (run_id, client_order_id)"
    assert keys["live_state"] == "PRIMARY KEY (run_id)"
    assert versions == [(SCHEMA_VERSION,)]


def _columns(conninfo: str) -> set[tuple]:
    with _admin(conninfo) as con:
        return set(con.execute("SELECT table_name, column_name, is_nullable FROM "
                               "information_schema.columns WHERE table_schema = "
                               "current_schema()").fetchall())


def test_a_version_1_database_migrates_like_a_duckdb_file(pg_url, pg_admin, postgres_admin,
                                                         monkeypatch):
    from alphatrade_lab.store import migrations
    from alphatrade_lab.store.schema import VERSION_TABLE_SQL

    with psycopg.connect(pg_url, autocommit=True) as con:  # version 1, as the store's role
        for statement in (VERSION_TABLE_SQL, *migrations.V1_SQL):
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (1, now(), 'initial lab layout')")
        con.execute("INSERT INTO runs VALUES ('old', now(), 'backtest', '{\"a\": 1}')")
        con.execute("INSERT INTO trades (run_id, symbol, side, quantity, entry_time, "
                    "entry_price) VALUES ('old', 'AAA', 'long', 2, now(), 10)")
    broken = migrations.Migration(2, "broken", migrations.V2_SQL[:3] + ("SELECT nope",))
    monkeypatch.setattr(migrations, "MIGRATIONS", (migrations.MIGRATIONS[0], broken))
    with pytest.raises(StoreError, match='cannot set up the lab store schema .*"nope"'):
        LabStore(pg_url)
    assert ("runs", "code_version", "YES") not in _columns(pg_admin)  # rolled back
    assert ("runs", "kind", "NO") in _columns(pg_admin)
    monkeypatch.undo()
    store = LabStore(pg_url)
    assert store.migrated_from == 1 and store.schema_version == SCHEMA_VERSION
    assert store.trades()["status"].tolist() == ["open"]  # migration 2's data step
    assert json.loads(store.runs()["params"].iloc[0]) == {"a": 1}
    fresh = psycopg.conninfo.make_conninfo(postgres_admin[0], options="-csearch_path=public")
    LabStore(_as_url(fresh))
    assert _columns(pg_admin) == _columns(fresh)


def test_hypertable_statements_follow_timescaledbs_rules():
    """Not runnable here (Debian has no TimescaleDB): the statements, checked by hand."""
    for version, call in (("2.17.2", "create_hypertable('trades', by_range('entry_time'))"),
                          ("2.11.0", "create_hypertable('trades', 'entry_time')")):
        sql = schema_sql(True, version)
        assert f"SELECT {call}" in sql
        assert "CREATE INDEX trades_entry_time_idx" not in " ".join(sql)  # TimescaleDB's own
    for table, column in pg_store.HYPERTABLES.items():
        col = next(c for c in TABLES[table] if c.name == column)
        assert not col.nullable and col.sql_type == "TIMESTAMP WITH TIME ZONE"
        # a hypertable's unique indexes must hold the time column: these have none
        assert "PRIMARY KEY" not in atl.store.create_table_sql(table)
    assert not any("hypertable" in s for s in schema_sql())


def test_two_stores_opening_an_empty_schema_at_once_create_it_once(pg_url):
    errors, stores = [], []

    def open_one():
        try:
            stores.append(LabStore(pg_url))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and sorted(s.migrated_from for s in stores) == [0] + [SCHEMA_VERSION] * 3


def test_newer_and_missing_schemas_are_refused(pg_url, pg_admin):
    with pytest.raises(StoreError, match=r"postgresql://.*: no lab store in this database"):
        LabStore(pg_url, read_only=True)
    LabStore(pg_url)
    with _admin(pg_admin) as con:
        con.execute("INSERT INTO schema_version VALUES (%s, now(), 'from the future')",
                    [SCHEMA_VERSION + 1])
    with pytest.raises(SchemaVersionError, match="newer"):
        LabStore(pg_url)
    with pytest.raises(SchemaVersionError, match="newer"):
        LabStore(pg_url, read_only=True)


def test_a_read_only_store_reads_and_refuses_writes(store, pg_url):
    ro = LabStore(pg_url, read_only=True)
    assert len(ro.trades("r1")) == 3 and "read_only=True" in repr(ro)
    with pytest.raises(PermissionError):
        ro.record_run("x")
    with ro._connect(read_only=True) as con, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        con.execute("INSERT INTO runs (run_id, created_at, kind) VALUES ('x', now(), 'k')")


# ------------------------------------------------------------------- errors at start
def _password_free(exc: BaseException, password: str) -> None:
    assert exc.__cause__ is None  # one error, not a chain
    assert exc.__context__ is None or exc.__suppress_context__
    assert password not in str(exc) and password not in repr(exc)


def test_wrong_credentials_unknown_database_and_no_server_are_one_clear_error(pg_url):
    info = psycopg.conninfo.conninfo_to_dict(pg_url)
    host, port, db = info["host"], info["port"], info["dbname"]
    wrong = "Wr0ngPassw0rd-xyz"
    cases = [
        (f"postgresql://{info['user']}:{wrong}@{host}:{port}/{db}", wrong,
         "password authentication failed"),
        (f"postgresql://{info['user']}:{quote(info['password'])}@{host}:{port}/nope_db",
         info["password"], 'database "nope_db" does not exist'),
        (f"postgresql://{info['user']}:{wrong}@{host}:1/{db}", wrong, "refused"),
    ]
    for url, password, reason in cases:
        # no server at all: StoreUnavailableError, what the live engine's spool waits out
        with pytest.raises((StoreError, StoreUnavailableError)) as caught:
            LabStore(url)
        where = "/nope_db" if "nope_db" in url else f"/{db}"
        assert f"postgresql://{host}:" in str(caught.value) and where in str(caught.value)
        assert "cannot connect to PostgreSQL" in str(caught.value)
        assert reason in str(caught.value)
        _password_free(caught.value, password)


def test_asking_for_timescaledb_on_a_server_without_it_fails_at_start(pg_url, pg_admin):
    with pytest.raises(StoreError, match=r"postgresql://.*timescale=True but this server has "
                                         r"no timescaledb extension") as caught:
        LabStore(pg_url, timescale=True)
    _password_free(caught.value, psycopg.conninfo.conninfo_to_dict(pg_url)["password"])
    with _admin(pg_admin) as con:  # nothing was created
        assert con.execute("SELECT count(*) FROM information_schema.tables WHERE "
                           "table_schema = current_schema()").fetchone()[0] == 0
    assert LabStore(pg_url, timescale="auto").migrated_from == 0  # plain tables
    with pytest.raises(ValueError, match="timescale must be True, False or 'auto'"):
        LabStore(pg_url, timescale="yes")


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5", None])
def test_bad_timeouts_are_refused_before_connecting(timeout):
    url = "postgresql://u:pw-not-shown@127.0.0.1:1/db"
    for name in ("lock_timeout", "query_timeout"):
        with pytest.raises(ValueError, match=f"{name} must be a finite number") as caught:
            LabStore(url, **{name: timeout})
        assert "pw-not-shown" not in str(caught.value)


def test_repr_and_path_never_show_the_password(store, pg_url):
    password = psycopg.conninfo.conninfo_to_dict(pg_url)["password"]
    assert password not in repr(store) and password not in str(store.path)
    assert repr(store).startswith("LabStore('postgresql://127.0.0.1:")


# ------------------------------------------------------------------- untrusted SQL
@pytest.mark.parametrize("sql", [
    "SELECT pg_read_file('PG_VERSION')",
    "SELECT pg_read_binary_file('postgresql.conf')",
    "SELECT * FROM pg_ls_dir('.')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT pg_stat_file('PG_VERSION')",
    "SELECT pg_reload_conf()",
])
def test_an_ordinary_role_cannot_reach_the_servers_files(store, sql):
    with pytest.raises(DataError, match=r"query on .*(permission denied|read-only)"):
        store.query(sql)
    assert store.counts()["trades"] == 3


def test_a_superuser_store_could_read_server_files_hence_the_documented_rule(store, pg_admin):
    admin = LabStore(_as_url(pg_admin))  # what the documentation says not to do
    got = admin.query("SELECT pg_read_file('PG_VERSION') AS v")["v"].iloc[0]
    assert got.strip().isdigit()


def test_the_read_only_transaction_stops_writes_the_check_cannot_see(store, pg_admin,
                                                                    monkeypatch):
    # SQL run by a function is invisible to any text check: the transaction refuses it
    with _admin(pg_admin) as con:  # a function someone with write access left behind
        con.execute("CREATE FUNCTION wipe() RETURNS bigint LANGUAGE sql VOLATILE AS "
                    "'DELETE FROM trades; SELECT 1::bigint'")
    with pytest.raises(DataError, match="read-only transaction"):
        store.query("SELECT wipe() AS n")
    with pytest.raises(DataError, match="not allowed in a non-volatile function"):
        store.query("SELECT query_to_xml('DELETE FROM trades RETURNING 1', true, false, '')")
    # and with the text check switched off, a data-modifying WITH is refused too
    monkeypatch.setattr(pg_store, "check_select", lambda sql: None)
    for sql in ("WITH d AS (DELETE FROM trades RETURNING *) SELECT count(*) FROM d",
                "SELECT * INTO stolen FROM trades",
                "SELECT set_config('transaction_read_only', 'off', true), wipe()"):
        with pytest.raises(DataError, match="read-only transaction|read-write mode"):
            store.query(sql)
    assert store.counts()["trades"] == 3


def test_a_query_runs_at_most_query_timeout_and_leaves_nothing_behind(pg_url, pg_admin):
    store = LabStore(pg_url, query_timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(DataError, match=r"ran longer than query_timeout=0\.3 s"):
        store.query("SELECT pg_sleep(30)")
    assert time.monotonic() - t0 < 10
    # a session-level lock taken by a query dies with the query's own session
    store.query("SELECT pg_advisory_lock(4242) AS x")
    with _admin(pg_admin) as con:
        assert con.execute("SELECT pg_try_advisory_lock(4242)").fetchone()[0] is True


def test_placeholders_are_bound_in_every_style(store):
    q = store.query
    assert q("SELECT count(*) AS n FROM trades WHERE symbol = ? AND quantity > ?",
             ["AAA", np.float64(1.5)])["n"].tolist() == [1]
    assert q("SELECT $2::text AS b, $1::text AS a, $2::text AS b2", ["x", "y"]).iloc[0].tolist() \
        == ["y", "x", "y"]
    assert q("SELECT count(*) AS n FROM trades WHERE run_id = $run AND symbol LIKE 'A%'",
             {"run": "r1"})["n"].tolist() == [2]
    assert q("SELECT '?' AS s, $$ $1 ? $$ AS d, ? AS p", [np.int64(7)]).iloc[0].tolist() == \
        ["?", " $1 ? ", 7]
    assert q("SELECT 100 % 7 AS m")["m"].tolist() == [2]
    for sql, params, why in (("SELECT ?", [], "no value for placeholder number 1"),
                             ("SELECT ?", [1, 2], "2 values given, the SQL uses 1"),
                             ("SELECT $a", [1], "named placeholder"),
                             ("SELECT ?", {"a": 1}, "needs \\$name")):
        with pytest.raises(DataError, match=f"query on postgresql://.*{why}"):
            q(sql, params)


def test_a_held_lock_raises_store_locked_after_lock_timeout(store, pg_url, pg_admin):
    impatient = LabStore(pg_url, lock_timeout=0.3)
    with _admin(pg_admin) as con:
        con.execute("BEGIN")
        con.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        t0 = time.monotonic()
        with pytest.raises(StoreLockedError, match=r"lock_timeout=0\.3 s; nothing was written"):
            impatient.record_run("x")
        assert 0.25 <= time.monotonic() - t0 < 5
        con.execute("ROLLBACK")
    impatient.record_run("after", run_id="r2")  # the same store carries on
    assert sorted(store.runs()["run_id"]) == ["r1", "r2"]


def test_a_dropped_connection_fails_one_call_then_reconnects(store, pg_admin):
    with _admin(pg_admin) as con:
        con.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                    "application_name = 'alphatrade_lab' AND pid <> pg_backend_pid()")
    with pytest.raises((DataError, StoreUnavailableError)):  # the session is gone
        store.trades()
    assert len(store.trades()) == 3
    store.record_run("again", run_id="r3")
    assert len(store.runs()) == 2


def test_a_value_postgresql_cannot_hold_writes_nothing(store):
    bad = pd.DataFrame({"symbol": ["AAA", "B\x00B"], "side": "long", "quantity": 1.0,
                        "entry_time": T0, "entry_price": 1.0})
    with pytest.raises(DataError, match="PostgreSQL refused a value and nothing was written"):
        store.record_trades(bad, run_id="r1")
    assert store.counts()["trades"] == 3


# --------------------------------------------------------------- parity with DuckDB
def _fill(store: LabStore) -> None:
    idx = pd.date_range("2024-01-01", periods=96, freq="1h", tz="UTC")
    close = pd.DataFrame({"AAA": 100 + np.sin(np.arange(96)), "BBB": 50 + np.cos(
        np.arange(96))}, index=idx)
    entries = pd.DataFrame(np.tile(np.arange(96)[:, None] % 10 == 0, (1, 2)), index=idx,
                           columns=close.columns)
    pf = atl.backtest.from_signals(close, entries, np.roll(entries, 5, axis=0), fees=0.001)
    store.record_backtest(pf, strategy="ma", params={"b": [1, 2.5], "a": None}, run_id="bt",
                          daily="both")
    store.record_signals(pd.DataFrame({"timestamp": idx[:3], "symbol": "AAA",
                                       "direction": [1, 0, -1], "confidence": [0.5, None, 1],
                                       "was_executed": [True, None, False]}), run_id="bt")
    store.record_model_performance(pd.DataFrame({
        "date": ["2024-01-01", "2024-01-02"], "symbol": "AAA", "model_type": "logit",
        "predictions_count": [10, 4], "correct_predictions": [7, 1]}), run_id="bt")
    store.record_drift(pd.DataFrame({"feature": ["x", "y"], "method": "psi",
                                     "statistic": [0.3, 0.1], "threshold": 0.2}),
                       run_id="bt", window_start=idx[0], window_end=idx[-1])
    store.record_alert("warning", "drift", "x drifted", {"psi": 0.3}, delivered=["log"],
                       ts=idx[5], run_id="bt")
    store.record_run("paper", run_id="p1", created_at=idx[0])
    order = {"client_order_id": "o1", "submitted_at": idx[1], "bar_time": idx[1],
             "symbol": "AAA", "side": "buy", "qty": 2.0, "status": "filled",
             "filled_qty": 2.0, "filled_avg_price": 100.5, "fees": 0.1, "updated_at": idx[1]}
    store.record_live("p1", orders=pd.DataFrame([order]),
                      fills=pd.DataFrame({"client_order_id": ["o1"], "timestamp": [idx[1]],
                                          "symbol": "AAA", "side": "buy", "qty": 2.0,
                                          "price": 100.5}),
                      equity=pd.DataFrame({"timestamp": idx[:2], "portfolio": "total",
                                           "equity": [100.0, 101.0]}),
                      positions=pd.DataFrame({"timestamp": [idx[1]], "symbol": "AAA",
                                              "qty": 2.0}),
                      events=pd.DataFrame({"kind": ["gap"], "detail": ["2 bars"]}),
                      state={"cash": 1.5, "nan": float("nan")}, last_bar_time=idx[1],
                      updated_at=idx[2])
    store.record_reconciliation("p1", pd.DataFrame({"kind": ["missing_fill"],
                                                    "symbol": ["AAA"], "value": [1.0]}))


READERS = ["runs", "trades", "signals", "daily_performance", "model_performance", "drift",
           "alerts", "orders", "fills", "equity", "positions", "feed_events",
           "reconciliation"]


def test_every_reader_returns_duckdbs_frame(pg_url):
    duck, pg = LabStore(":memory:"), LabStore(pg_url)
    for s in (duck, pg):
        _fill(s)
    for name in READERS:
        a, b = getattr(duck, name)(), getattr(pg, name)()
        assert len(a) > 0, name
        for col in a.columns:
            if a[col].dtype == object or str(a[col].dtype) == "str":
                texts = [a[col], b[col]]
                if name in ("runs", "trades", "alerts") and col in (
                        "params", "metadata", "data", "delivered_sinks", "failed_sinks"):
                    texts = [t.map(lambda v: None if pd.isna(v) else json.loads(v))
                             for t in texts]  # JSONB orders keys its own way
                if col == "code_version":
                    continue
                pd.testing.assert_series_equal(*texts, obj=f"{name}.{col}")
            elif col == "created_at" and name == "runs":
                assert b[col].dtype == a[col].dtype
            else:
                pd.testing.assert_series_equal(a[col], b[col], obj=f"{name}.{col}")
    assert duck.live_state("p1") .keys() == pg.live_state("p1").keys()
    assert pg.live_state("p1")["cash"] == 1.5 and np.isnan(pg.live_state("p1")["nan"])
    for frame in (duck.run_summary("bt"), pg.run_summary("bt")):
        assert frame["trades"].tolist() == duck.run_summary("bt")["trades"].tolist()
    assert pg.counts() == duck.counts()


# ------------------------------------------------------------------------ LocalPostgres
@pytest.mark.slow
def test_local_postgres_starts_serves_and_cleans_up():
    with LocalPostgres(password="pw-12345678") as server:
        root = server.root
        assert "pw-12345678" not in repr(server) and "pw-12345678" in server.url
        assert (server.socket_dir / f".s.PGSQL.{server.port}").exists()
        url = server.create_database("lab one")
        with psycopg.connect(url) as con:
            assert con.execute("SELECT current_database()").fetchone()[0] == "lab one"
        with pytest.raises(psycopg.OperationalError, match="password authentication"):
            psycopg.connect(server.url_for("postgres", "postgres", "wrong")).close()
    assert server.port is None and not Path(root).exists()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


def test_missing_server_binaries_are_named(monkeypatch):
    from alphatrade_lab.testing import postgres as local

    monkeypatch.setattr(local.shutil, "which", lambda name: None)
    monkeypatch.setattr(local.glob, "glob", lambda pattern: [])
    with pytest.raises(FileNotFoundError, match=r"initdb, pg_ctl\) not found .*install the "
                                                r"postgresql package"):
        LocalPostgres().start()
