"""Lab store schema: the issue's tables and columns, versioning, forward-only migrations."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import StoreError
from alphatrade_lab.store import LabStore, SchemaVersionError, migrations
from alphatrade_lab.store.schema import SCHEMA_VERSION, TABLES, create_table_sql

FIXTURE = Path(__file__).parent / "fixtures" / "lab_v1.db"

# What the issue asks for, written out independently of schema.py.
REQUIRED = {
    "runs": {"run_id", "created_at", "kind", "params", "code_version", "data_fingerprint"},
    "trades": {"symbol", "side", "quantity", "entry_price", "exit_price", "entry_time",
               "exit_time", "pnl", "pnl_pct", "strategy", "model_version", "confidence",
               "metadata", "run_id"},
    "signals": {"timestamp", "symbol", "direction", "confidence", "model_type",
                "features_hash", "was_executed", "run_id"},
    "daily_performance": {"date", "starting_equity", "ending_equity", "pnl", "pnl_pct",
                          "trades_count", "win_count", "max_drawdown", "sharpe_ratio",
                          "run_id"},
    "model_performance": {"date", "symbol", "model_type", "predictions_count",
                          "correct_predictions", "accuracy", "avg_confidence"},
    "drift_stats": {"run_id", "window_start", "window_end", "feature", "method", "statistic",
                    "p_value", "threshold", "drifted"},
    "alerts": {"ts", "level", "title", "message", "data", "delivered_sinks", "failed_sinks"},
    # issue 18: the live engine's tables (schema version 3)
    "orders": {"run_id", "client_order_id", "submitted_at", "bar_time", "symbol", "side",
               "intent", "qty", "reference_price", "status", "filled_qty", "filled_avg_price",
               "fees", "broker", "broker_order_id", "reason", "updated_at"},
    "fills": {"run_id", "client_order_id", "timestamp", "bar_time", "symbol", "side", "qty",
              "price", "fees"},
    "equity": {"run_id", "timestamp", "portfolio", "equity", "cash"},
    "positions": {"run_id", "timestamp", "symbol", "qty", "price"},
    "feed_events": {"run_id", "timestamp", "received_at", "symbol", "kind", "detail"},
    "live_state": {"run_id", "updated_at", "last_bar_time", "state"},
    "reconciliation": {"run_id", "symbol", "kind", "backtest_time", "live_time", "value",
                       "impact", "detail"},
    # issue 21: the news cache (schema version 4)
    "news": {"url_key", "published_at", "source", "title", "description", "url", "symbols",
             "language", "query", "fetched_at", "scores"},
}


def _columns(con) -> set[tuple]:
    rows = con.execute(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = current_schema()").fetchall()
    return set(rows)


def _constraints(con) -> set[tuple]:
    rows = con.execute("SELECT table_name, constraint_type, constraint_text "
                       "FROM duckdb_constraints() WHERE schema_name = current_schema()"
                       ).fetchall()
    return {(t, k, re.sub(r"\s+", " ", txt)) for t, k, txt in rows}


def test_fresh_store_has_the_issues_tables_and_columns(tmp_path):
    store = LabStore(tmp_path / "lab.duckdb")
    with duckdb.connect(str(tmp_path / "lab.duckdb"), read_only=True) as con:
        cols = _columns(con)
    for table, required in REQUIRED.items():
        have = {c for t, c, _, _ in cols if t == table}
        assert required <= have, (table, required - have)
    assert store.schema_version == SCHEMA_VERSION
    assert set(store.counts()) == set(REQUIRED)


def test_atl_store_is_reachable_lazily():
    assert atl.store.LabStore is LabStore


def test_ddl_uses_portable_types():
    allowed = {"VARCHAR", "SMALLINT", "INTEGER", "BIGINT", "DOUBLE PRECISION", "BOOLEAN",
               "DATE", "TIMESTAMP WITH TIME ZONE", "JSON"}
    for table, cols in TABLES.items():
        for c in cols:
            assert c.sql_type.replace(" PRIMARY KEY", "") in allowed, (table, c)
        assert "CREATE OR REPLACE" not in create_table_sql(table)


def test_fixture_is_an_old_version_readable_by_the_installed_duckdb():
    with duckdb.connect(str(FIXTURE), read_only=True) as con:
        assert migrations.current_version(con) == 1
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
        assert "drift_stats" not in tables and "trades" in tables


@pytest.mark.slow
def test_v1_fixture_upgrades_without_losing_rows(tmp_path):
    path = tmp_path / "lab.db"
    shutil.copy(FIXTURE, path)
    before = {}
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        for table in ("runs", "trades", "signals", "daily_performance", "model_performance"):
            before[table] = con.sql(f"SELECT * FROM {table}").df()
    store = LabStore(path)
    assert store.migrated_from == 1 and store.schema_version == SCHEMA_VERSION
    readers = {"runs": store.runs, "trades": store.trades, "signals": store.signals,
               "daily_performance": store.daily_performance,
               "model_performance": store.model_performance}
    for table, old in before.items():
        new = readers[table]()
        assert len(new) == len(old), table
        key = [c for c in old.columns if c in ("run_id", "symbol", "entry_time", "timestamp",
                                                "date") and c in new.columns]
        o = old.sort_values(key).reset_index(drop=True)
        n = new[list(old.columns)].sort_values(key).reset_index(drop=True)
        for col in old.columns:
            if pd.api.types.is_datetime64_any_dtype(o[col]):
                pd.testing.assert_series_equal(
                    pd.to_datetime(o[col], utc=True).dt.as_unit("us"),
                    pd.to_datetime(n[col], utc=True).dt.as_unit("us"), check_names=False,
                    obj=f"{table}.{col}")
            else:
                pd.testing.assert_series_equal(o[col], n[col], check_dtype=False,
                                               check_names=False, obj=f"{table}.{col}")
    # the data step of migration 2: status from exit_time, portfolio for old rows
    trades = store.trades()
    assert ((trades["status"] == "open") == trades["exit_time"].isna()).all()
    assert (store.daily_performance()["portfolio"] == "portfolio").all()
    versions = store.query("SELECT version FROM schema_version ORDER BY version")
    assert versions["version"].tolist() == list(range(1, SCHEMA_VERSION + 1))
    # and the upgraded file takes new rows
    run = store.record_run("after-upgrade")
    assert store.record_alert("info", "upgraded", run_id=run) is None
    assert len(store.alerts(run)) == 1


def test_migrated_schema_equals_fresh_schema(tmp_path):
    shutil.copy(FIXTURE, tmp_path / "old.db")
    LabStore(tmp_path / "old.db")
    LabStore(tmp_path / "new.db")
    with duckdb.connect(str(tmp_path / "old.db"), read_only=True) as old, \
            duckdb.connect(str(tmp_path / "new.db"), read_only=True) as new:
        assert _columns(old) == _columns(new)
        assert _constraints(old) == _constraints(new)


def test_migrating_step_by_step_from_empty_equals_creating(tmp_path):
    a, b = duckdb.connect(), duckdb.connect()
    assert migrations.migrate(a, 1) == (0, 1)
    assert migrations.migrate(a) == (1, SCHEMA_VERSION)
    assert migrations.migrate(b) == (0, SCHEMA_VERSION)
    assert _columns(a) == _columns(b)
    assert migrations.migrate(a) == (SCHEMA_VERSION, SCHEMA_VERSION)  # idempotent


def test_newer_file_is_refused_not_downgraded(tmp_path):
    path = tmp_path / "lab.duckdb"
    LabStore(path)
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO schema_version VALUES (?, now(), 'from the future')",
                    [SCHEMA_VERSION + 1])
    with pytest.raises(SchemaVersionError, match="newer"):
        LabStore(path)
    with pytest.raises(SchemaVersionError, match="newer"):
        LabStore(path, read_only=True)


def test_failed_migration_step_leaves_the_previous_version(tmp_path, monkeypatch):
    path = tmp_path / "lab.db"
    shutil.copy(FIXTURE, path)
    broken = migrations.Migration(2, "broken", migrations.V2_SQL[:5] + ("SELECT nope",))
    monkeypatch.setattr(migrations, "MIGRATIONS", (migrations.MIGRATIONS[0], broken))
    with pytest.raises(StoreError, match=r"lab\.db: cannot set up the lab store schema"):
        LabStore(path)
    with duckdb.connect(str(path), read_only=True) as con:
        assert migrations.current_version(con) == 1
        cols = {c for t, c, _, _ in _columns(con) if t == "runs"}
        assert "code_version" not in cols  # the step's ALTERs were rolled back
        assert con.execute("SELECT count(*) FROM trades").fetchone()[0] == 40
    monkeypatch.undo()
    assert LabStore(path).schema_version == SCHEMA_VERSION


def test_read_only_store_of_old_file_asks_for_migration(tmp_path):
    path = tmp_path / "lab.db"
    shutil.copy(FIXTURE, path)
    with pytest.raises(SchemaVersionError, match="without read_only"):
        LabStore(path, read_only=True)


def test_fixture_script_reproduces_the_fixture(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_v1", FIXTURE.with_name("make_v1.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "OUT", tmp_path / "v1.db")
    out = mod.main()
    with duckdb.connect(str(out), read_only=True) as a, \
            duckdb.connect(str(FIXTURE), read_only=True) as b:
        for table in ("runs", "trades", "signals", "daily_performance", "model_performance"):
            pd.testing.assert_frame_equal(a.sql(f"SELECT * FROM {table}").df(),
                                          b.sql(f"SELECT * FROM {table}").df())
