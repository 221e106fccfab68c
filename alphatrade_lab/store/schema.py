"""The lab store's tables, as data: column names, portable SQL types and validation kinds.

The current schema (version :data:`SCHEMA_VERSION`) is written out here once;
:mod:`alphatrade_lab.store.migrations` brings older files up to it, and the tests check
that a migrated file and a fresh one end with the same tables and columns.

Portability: every type is a standard SQL type that PostgreSQL/TimescaleDB also accepts
(``VARCHAR``, ``SMALLINT``, ``INTEGER``, ``BIGINT``, ``DOUBLE PRECISION``, ``BOOLEAN``,
``DATE``, ``TIMESTAMP WITH TIME ZONE``), except ``JSON``: DuckDB's JSON is an extension
type (built into the Python wheel) and maps to ``JSONB`` on PostgreSQL. Times are stored
as ``TIMESTAMP WITH TIME ZONE`` in UTC (microsecond precision in both databases: pandas'
nanoseconds are truncated). There are no foreign keys (DuckDB refuses ``ALTER TABLE`` on a
table other tables reference, which would block forward migrations; the store checks that
a referenced run exists instead) and no secondary indexes in DuckDB (its zone maps serve
the filters here; the PostgreSQL store, :mod:`alphatrade_lab.store.postgres`, adds indexes
on ``run_id``, ``symbol`` and time, and writes ``JSON`` as ``JSONB``).
The primary keys ``orders (run_id, client_order_id)``, ``live_state (run_id)`` and
``news (url_key)`` are what rows are replaced on (a ``DELETE`` of the batch's keys then
an ``INSERT``; an ``UPDATE`` of the state row, or an ``INSERT`` when there is none: plain
SQL that PostgreSQL runs as well).

Live trading tables (version 3): ``orders`` (one row per order, its latest status),
``fills``, ``equity`` (per bar and portfolio, at the bar's open time), ``positions``,
``feed_events`` (what the feed guard dropped or flagged) and ``live_state`` (one row per
run: what a restarted engine resumes from).

News cache (version 4): ``news``, one row per article (primary key ``url_key``, the
article's :func:`~alphatrade_lab.sentiment.normalize_url`, so an article fetched again is
replaced, never stored twice), with what fetched it (``query``), when (``fetched_at``) and
its scores (JSON: scorer name -> score). Written by ``LabStore.record_news``
(:mod:`alphatrade_lab.store.news`).

>>> "run_id" in column_names("trades")
True
>>> create_table_sql("alerts").splitlines()[0]
'CREATE TABLE alerts ('
>>> create_table_sql("orders").splitlines()[-2]
'    PRIMARY KEY (run_id, client_order_id)'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRIMARY_KEYS", "SCHEMA_VERSION", "TABLES", "Column", "column_names",
           "create_table_sql"]

#: The schema version this code writes; files at a lower version are migrated on open.
SCHEMA_VERSION = 4


@dataclass(frozen=True)
class Column:
    """One column: its name, SQL type, validation kind and whether NULL is allowed.

    ``kind`` drives input validation: ``str``, ``float``, ``int``, ``bool``, ``ts``
    (timezone-aware UTC timestamp), ``date``, ``json`` (dict/list/str, stored as JSON text)
    or ``direction`` (an integer in {-1, 0, 1}).
    """

    name: str
    sql_type: str
    kind: str
    nullable: bool = True
    check: str | None = None

    def ddl(self, dialect: str = "duckdb") -> str:
        sql_type = self.sql_type
        if dialect == "postgres" and sql_type == "JSON":
            sql_type = "JSONB"
        parts = [self.name, sql_type]
        if not self.nullable:
            parts.append("NOT NULL")
        if self.check:
            parts.append(f"CHECK ({self.check})")
        return " ".join(parts)


def _c(name: str, sql_type: str, kind: str, nullable: bool = True, check: str | None = None):
    return Column(name, sql_type, kind, nullable, check)


TS = "TIMESTAMP WITH TIME ZONE"
F = "DOUBLE PRECISION"

#: Every table of the current schema, columns in their documented order.
TABLES: dict[str, tuple[Column, ...]] = {
    "runs": (
        _c("run_id", "VARCHAR PRIMARY KEY", "str", False),
        _c("created_at", TS, "ts", False),
        _c("kind", "VARCHAR", "str", False),
        _c("params", "JSON", "json"),
        _c("code_version", "VARCHAR", "str"),
        _c("data_fingerprint", "VARCHAR", "str"),
        _c("notes", "VARCHAR", "str"),
    ),
    "trades": (
        _c("run_id", "VARCHAR", "str"),
        _c("symbol", "VARCHAR", "str", False),
        _c("side", "VARCHAR", "str", False, "side IN ('long', 'short')"),
        _c("quantity", F, "float", False),
        _c("entry_time", TS, "ts", False),
        _c("exit_time", TS, "ts"),
        _c("entry_price", F, "float", False),
        _c("exit_price", F, "float"),
        _c("pnl", F, "float"),
        _c("pnl_pct", F, "float"),
        _c("fees", F, "float"),
        _c("status", "VARCHAR", "str"),
        _c("strategy", "VARCHAR", "str"),
        _c("model_version", "VARCHAR", "str"),
        _c("confidence", F, "float"),
        _c("metadata", "JSON", "json"),
    ),
    "signals": (
        _c("timestamp", TS, "ts", False),
        _c("symbol", "VARCHAR", "str", False),
        _c("direction", "SMALLINT", "direction", False, "direction IN (-1, 0, 1)"),
        _c("confidence", F, "float"),
        _c("model_type", "VARCHAR", "str"),
        _c("features_hash", "VARCHAR", "str"),
        _c("was_executed", "BOOLEAN", "bool"),
        _c("run_id", "VARCHAR", "str"),
    ),
    "daily_performance": (
        _c("run_id", "VARCHAR", "str"),
        _c("portfolio", "VARCHAR", "str"),
        _c("date", "DATE", "date", False),
        _c("starting_equity", F, "float", False),
        _c("ending_equity", F, "float", False),
        _c("pnl", F, "float", False),
        _c("pnl_pct", F, "float"),
        _c("trades_count", "INTEGER", "int", False),
        _c("win_count", "INTEGER", "int", False),
        _c("max_drawdown", F, "float"),
        _c("sharpe_ratio", F, "float"),
    ),
    "model_performance": (
        _c("date", "DATE", "date", False),
        _c("symbol", "VARCHAR", "str", False),
        _c("model_type", "VARCHAR", "str", False),
        _c("predictions_count", "INTEGER", "int", False),
        _c("correct_predictions", "INTEGER", "int", False),
        _c("accuracy", F, "float"),
        _c("avg_confidence", F, "float"),
        _c("run_id", "VARCHAR", "str"),
    ),
    "drift_stats": (
        _c("run_id", "VARCHAR", "str"),
        _c("window_start", TS, "ts"),
        _c("window_end", TS, "ts"),
        _c("feature", "VARCHAR", "str", False),
        _c("method", "VARCHAR", "str", False),
        _c("statistic", F, "float", False),
        _c("p_value", F, "float"),
        _c("threshold", F, "float"),
        _c("drifted", "BOOLEAN", "bool", False),
    ),
    "alerts": (
        _c("ts", TS, "ts", False),
        _c("level", "VARCHAR", "str", False),
        _c("title", "VARCHAR", "str", False),
        _c("message", "VARCHAR", "str"),
        _c("data", "JSON", "json"),
        _c("delivered_sinks", "JSON", "json"),
        _c("failed_sinks", "JSON", "json"),
        _c("run_id", "VARCHAR", "str"),
    ),
    # ---- live trading (schema version 3): written by LabStore.record_live
    "orders": (
        _c("run_id", "VARCHAR", "str", False),
        _c("client_order_id", "VARCHAR", "str", False),
        _c("submitted_at", TS, "ts"),
        _c("bar_time", TS, "ts"),
        _c("symbol", "VARCHAR", "str", False),
        _c("side", "VARCHAR", "str", False, "side IN ('buy', 'sell')"),
        _c("intent", "VARCHAR", "str"),
        _c("qty", F, "float"),
        _c("reference_price", F, "float"),
        _c("status", "VARCHAR", "str", False,
           "status IN ('new', 'partially_filled', 'filled', 'canceled', 'rejected')"),
        _c("filled_qty", F, "float"),
        _c("filled_avg_price", F, "float"),
        _c("fees", F, "float"),
        _c("broker", "VARCHAR", "str"),
        _c("broker_order_id", "VARCHAR", "str"),
        _c("reason", "VARCHAR", "str"),
        _c("updated_at", TS, "ts"),
    ),
    "fills": (
        _c("run_id", "VARCHAR", "str"),
        _c("client_order_id", "VARCHAR", "str"),
        _c("timestamp", TS, "ts", False),
        _c("bar_time", TS, "ts"),
        _c("symbol", "VARCHAR", "str", False),
        _c("side", "VARCHAR", "str", False, "side IN ('buy', 'sell')"),
        _c("qty", F, "float", False, "qty > 0"),
        _c("price", F, "float", False),
        _c("fees", F, "float"),
    ),
    "equity": (
        _c("run_id", "VARCHAR", "str"),
        _c("timestamp", TS, "ts", False),
        _c("portfolio", "VARCHAR", "str", False),
        _c("equity", F, "float", False),
        _c("cash", F, "float"),
    ),
    "positions": (
        _c("run_id", "VARCHAR", "str"),
        _c("timestamp", TS, "ts", False),
        _c("symbol", "VARCHAR", "str", False),
        _c("qty", F, "float", False),
        _c("price", F, "float"),
    ),
    "feed_events": (
        _c("run_id", "VARCHAR", "str"),
        _c("timestamp", TS, "ts"),
        _c("received_at", TS, "ts"),
        _c("symbol", "VARCHAR", "str"),
        _c("kind", "VARCHAR", "str", False),
        _c("detail", "VARCHAR", "str"),
    ),
    "live_state": (
        _c("run_id", "VARCHAR PRIMARY KEY", "str", False),
        _c("updated_at", TS, "ts", False),
        _c("last_bar_time", TS, "ts"),
        _c("state", "JSON", "json"),
    ),
    "reconciliation": (
        _c("run_id", "VARCHAR", "str", False),
        _c("symbol", "VARCHAR", "str"),
        _c("kind", "VARCHAR", "str", False),
        _c("backtest_time", TS, "ts"),
        _c("live_time", TS, "ts"),
        _c("side", "VARCHAR", "str"),
        _c("backtest_value", F, "float"),
        _c("live_value", F, "float"),
        _c("value", F, "float"),
        _c("impact", F, "float"),
        _c("detail", "VARCHAR", "str"),
    ),
    # ---- news cache (schema version 4): written by LabStore.record_news
    "news": (
        _c("url_key", "VARCHAR PRIMARY KEY", "str", False),
        _c("published_at", TS, "ts", False),
        _c("source", "VARCHAR", "str"),
        _c("title", "VARCHAR", "str", False),
        _c("description", "VARCHAR", "str"),
        _c("url", "VARCHAR", "str"),
        _c("symbols", "JSON", "json"),
        _c("language", "VARCHAR", "str"),
        _c("query", "VARCHAR", "str"),
        _c("fetched_at", TS, "ts", False),
        _c("scores", "JSON", "json"),
    ),
}

#: Table-level primary keys of more than one column (a single-column key is in its type).
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {"orders": ("run_id", "client_order_id")}

#: The version bookkeeping table (not part of TABLES: it is managed by the migrations).
VERSION_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS schema_version (\n"
    "    version INTEGER PRIMARY KEY,\n"
    f"    applied_at {TS} NOT NULL,\n"
    "    description VARCHAR NOT NULL\n"
    ")"
)


def column_names(table: str) -> list[str]:
    """Column names of ``table`` in the current schema."""
    return [c.name for c in TABLES[table]]


def create_table_sql(table: str, dialect: str = "duckdb") -> str:
    """``CREATE TABLE`` statement of ``table`` in the current schema (portable SQL;
    ``dialect="postgres"``: JSON columns as ``JSONB``).

    >>> [line for line in create_table_sql("runs", "postgres").splitlines() if "params" in line]
    ['    params JSONB,']
    """
    if dialect not in ("duckdb", "postgres"):
        raise ValueError(f"create_table_sql: dialect must be 'duckdb' or 'postgres', "
                         f"got {dialect!r}")
    parts = [f"    {c.ddl(dialect)}" for c in TABLES[table]]
    if table in PRIMARY_KEYS:
        parts.append(f"    PRIMARY KEY ({', '.join(PRIMARY_KEYS[table])})")
    cols = ",\n".join(parts)
    return f"CREATE TABLE {table} (\n{cols}\n)"
