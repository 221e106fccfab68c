"""Forward-only schema migrations of the lab store.

A store file records its schema version in ``schema_version`` (one row per applied
step). On open, :func:`migrate` applies every step above the file's version, each in its
own transaction together with its ``schema_version`` row, so a failed step leaves the file
at the previous version. A file at a *newer* version than this code raises
:class:`SchemaVersionError`: there are no down-migrations, upgrade the code instead.

A fresh file is created directly at the current version from
:mod:`alphatrade_lab.store.schema` (one step, recorded as such); the tests check that
migrating an old file gives the same tables, columns and constraints.

History
-------
1. The first lab layout: ``runs``, ``trades``, ``signals``, ``daily_performance``,
   ``model_performance`` (kept literally in :data:`V1_SQL`, as old files have it).
2. ``runs`` gains ``code_version``, ``data_fingerprint`` and ``notes``; ``trades`` gains
   ``fees``, ``status`` (filled from ``exit_time``), ``model_version``, ``confidence`` and
   ``metadata``; ``signals`` gains ``features_hash`` and ``was_executed``;
   ``daily_performance`` gains ``portfolio`` (old rows: ``'portfolio'``);
   ``model_performance`` gains ``run_id``; new tables ``drift_stats`` and ``alerts``.
3. Live trading: new tables ``orders`` (primary key ``(run_id, client_order_id)``: a
   later row of an order replaces the earlier one), ``fills``, ``equity``, ``positions``,
   ``feed_events``, ``live_state`` (primary key ``run_id``: the engine's resume state) and
   ``reconciliation`` (a run's differences from its backtest), kept literally in
   :data:`V3_SQL`. No existing table changes.
4. News cache: new table ``news`` (primary key ``url_key``, the normalised URL: an
   article fetched again replaces its row), kept literally in :data:`V4_SQL`. No existing
   table changes.

Every step is plain SQL (``ALTER TABLE ... ADD COLUMN``, ``UPDATE``, ``CREATE TABLE``)
that PostgreSQL runs unchanged. A PostgreSQL store is created at the current version
(:mod:`alphatrade_lab.store.postgres`: ``JSONB`` columns and indexes); the steps above
would also run on a PostgreSQL database at an older version (its JSON columns then stay
``JSON``), but no such database was ever written by this code.

>>> import duckdb
>>> con = duckdb.connect()
>>> migrate(con)
(0, 4)
>>> current_version(con)
4
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alphatrade_lab.errors import SchemaVersionError
from alphatrade_lab.store.schema import (
    SCHEMA_VERSION,
    TABLES,
    VERSION_TABLE_SQL,
    create_table_sql,
)

__all__ = ["MIGRATIONS", "V1_SQL", "V3_SQL", "V4_SQL", "Migration", "SchemaVersionError",
           "current_version", "migrate"]


#: Version 1 as the first lab wrote it (frozen: never edit, add a migration instead).
V1_SQL: tuple[str, ...] = (
    """CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    kind VARCHAR NOT NULL,
    params JSON
)""",
    """CREATE TABLE trades (
    run_id VARCHAR,
    symbol VARCHAR NOT NULL,
    side VARCHAR NOT NULL CHECK (side IN ('long', 'short')),
    quantity DOUBLE PRECISION NOT NULL,
    entry_time TIMESTAMP WITH TIME ZONE NOT NULL,
    exit_time TIMESTAMP WITH TIME ZONE,
    entry_price DOUBLE PRECISION NOT NULL,
    exit_price DOUBLE PRECISION,
    pnl DOUBLE PRECISION,
    pnl_pct DOUBLE PRECISION,
    strategy VARCHAR
)""",
    """CREATE TABLE signals (
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL,
    symbol VARCHAR NOT NULL,
    direction SMALLINT NOT NULL CHECK (direction IN (-1, 0, 1)),
    confidence DOUBLE PRECISION,
    model_type VARCHAR,
    run_id VARCHAR
)""",
    """CREATE TABLE daily_performance (
    run_id VARCHAR,
    date DATE NOT NULL,
    starting_equity DOUBLE PRECISION NOT NULL,
    ending_equity DOUBLE PRECISION NOT NULL,
    pnl DOUBLE PRECISION NOT NULL,
    pnl_pct DOUBLE PRECISION,
    trades_count INTEGER NOT NULL,
    win_count INTEGER NOT NULL,
    max_drawdown DOUBLE PRECISION,
    sharpe_ratio DOUBLE PRECISION
)""",
    """CREATE TABLE model_performance (
    date DATE NOT NULL,
    symbol VARCHAR NOT NULL,
    model_type VARCHAR NOT NULL,
    predictions_count INTEGER NOT NULL,
    correct_predictions INTEGER NOT NULL,
    accuracy DOUBLE PRECISION,
    avg_confidence DOUBLE PRECISION
)""",
)

V2_SQL: tuple[str, ...] = (
    "ALTER TABLE runs ADD COLUMN code_version VARCHAR",
    "ALTER TABLE runs ADD COLUMN data_fingerprint VARCHAR",
    "ALTER TABLE runs ADD COLUMN notes VARCHAR",
    "ALTER TABLE trades ADD COLUMN fees DOUBLE PRECISION",
    "ALTER TABLE trades ADD COLUMN status VARCHAR",
    "UPDATE trades SET status = CASE WHEN exit_time IS NULL THEN 'open' ELSE 'closed' END",
    "ALTER TABLE trades ADD COLUMN model_version VARCHAR",
    "ALTER TABLE trades ADD COLUMN confidence DOUBLE PRECISION",
    "ALTER TABLE trades ADD COLUMN metadata JSON",
    "ALTER TABLE signals ADD COLUMN features_hash VARCHAR",
    "ALTER TABLE signals ADD COLUMN was_executed BOOLEAN",
    "ALTER TABLE daily_performance ADD COLUMN portfolio VARCHAR",
    "UPDATE daily_performance SET portfolio = 'portfolio'",
    "ALTER TABLE model_performance ADD COLUMN run_id VARCHAR",
    create_table_sql("drift_stats"),
    create_table_sql("alerts"),
)

#: Version 3, written out (frozen, as V1_SQL: a later change to these tables is a new step).
V3_SQL: tuple[str, ...] = (
    """CREATE TABLE orders (
    run_id VARCHAR NOT NULL,
    client_order_id VARCHAR NOT NULL,
    submitted_at TIMESTAMP WITH TIME ZONE,
    bar_time TIMESTAMP WITH TIME ZONE,
    symbol VARCHAR NOT NULL,
    side VARCHAR NOT NULL CHECK (side IN ('buy', 'sell')),
    intent VARCHAR,
    qty DOUBLE PRECISION,
    reference_price DOUBLE PRECISION,
    status VARCHAR NOT NULL CHECK (status IN ('new', 'partially_filled', 'filled',
        'canceled', 'rejected')),
    filled_qty DOUBLE PRECISION,
    filled_avg_price DOUBLE PRECISION,
    fees DOUBLE PRECISION,
    broker VARCHAR,
    broker_order_id VARCHAR,
    reason VARCHAR,
    updated_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (run_id, client_order_id)
)""",
    """CREATE TABLE fills (
    run_id VARCHAR,
    client_order_id VARCHAR,
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL,
    bar_time TIMESTAMP WITH TIME ZONE,
    symbol VARCHAR NOT NULL,
    side VARCHAR NOT NULL CHECK (side IN ('buy', 'sell')),
    qty DOUBLE PRECISION NOT NULL CHECK (qty > 0),
    price DOUBLE PRECISION NOT NULL,
    fees DOUBLE PRECISION
)""",
    """CREATE TABLE equity (
    run_id VARCHAR,
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL,
    portfolio VARCHAR NOT NULL,
    equity DOUBLE PRECISION NOT NULL,
    cash DOUBLE PRECISION
)""",
    """CREATE TABLE positions (
    run_id VARCHAR,
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL,
    symbol VARCHAR NOT NULL,
    qty DOUBLE PRECISION NOT NULL,
    price DOUBLE PRECISION
)""",
    """CREATE TABLE feed_events (
    run_id VARCHAR,
    timestamp TIMESTAMP WITH TIME ZONE,
    received_at TIMESTAMP WITH TIME ZONE,
    symbol VARCHAR,
    kind VARCHAR NOT NULL,
    detail VARCHAR
)""",
    """CREATE TABLE live_state (
    run_id VARCHAR PRIMARY KEY NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    last_bar_time TIMESTAMP WITH TIME ZONE,
    state JSON
)""",
    """CREATE TABLE reconciliation (
    run_id VARCHAR NOT NULL,
    symbol VARCHAR,
    kind VARCHAR NOT NULL,
    backtest_time TIMESTAMP WITH TIME ZONE,
    live_time TIMESTAMP WITH TIME ZONE,
    side VARCHAR,
    backtest_value DOUBLE PRECISION,
    live_value DOUBLE PRECISION,
    value DOUBLE PRECISION,
    impact DOUBLE PRECISION,
    detail VARCHAR
)""",
)

#: Version 4, written out (frozen, as V1_SQL).
V4_SQL: tuple[str, ...] = (
    """CREATE TABLE news (
    url_key VARCHAR PRIMARY KEY NOT NULL,
    published_at TIMESTAMP WITH TIME ZONE NOT NULL,
    source VARCHAR,
    title VARCHAR NOT NULL,
    description VARCHAR,
    url VARCHAR,
    symbols JSON,
    language VARCHAR,
    query VARCHAR,
    fetched_at TIMESTAMP WITH TIME ZONE NOT NULL,
    scores JSON
)""",
)


@dataclass(frozen=True)
class Migration:
    """One forward step: the version it brings a file to and what it runs."""

    version: int
    description: str
    statements: tuple[str, ...] | Callable[[Any], None]


#: Every step, in order; the last one's version is SCHEMA_VERSION.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial lab layout", V1_SQL),
    Migration(2, "run provenance, trade details, drift_stats and alerts", V2_SQL),
    Migration(3, "live trading: orders, fills, equity, positions, feed_events, live_state",
              V3_SQL),
    Migration(4, "news cache: news", V4_SQL),
)

assert MIGRATIONS[-1].version == SCHEMA_VERSION


def _has_table(con, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
        "AND table_schema = current_schema()", [name]).fetchone()
    return bool(row[0])


def current_version(con) -> int:
    """The file's schema version (0 for an empty file)."""
    if not _has_table(con, "schema_version"):
        if _has_table(con, "runs"):
            raise SchemaVersionError("the store has tables but no schema_version table; "
                                     "it was not created by alphatrade_lab.store")
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _apply(con, version: int, description: str, statements) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(VERSION_TABLE_SQL)
        if callable(statements):
            statements(con)
        else:
            for sql in statements:
                con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                    [version, datetime.now(UTC), description])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def migrate(con, target: int = SCHEMA_VERSION, *,
            create: Sequence[str] | None = None) -> tuple[int, int]:
    """Bring the database behind ``con`` to schema version ``target``.

    An empty database is created at ``target`` in one step when ``target`` is the current
    version, by the statements ``create`` (default: ``create_table_sql`` of every table;
    the PostgreSQL store passes its own, with JSONB, indexes and hypertables). Returns
    ``(version before, version after)``. Raises :class:`SchemaVersionError` when the file
    is newer than ``target``.
    """
    before = current_version(con)
    if before > target:
        raise SchemaVersionError(
            f"the store is at schema version {before}, newer than this code's {target}; "
            "migrations only go forward: upgrade alphatrade_lab to open it")
    if before == target:
        return before, before
    if before == 0 and target == SCHEMA_VERSION:
        _apply(con, target, f"created at version {target}",
               tuple(create) if create is not None
               else tuple(create_table_sql(t) for t in TABLES))
        return 0, target
    for step in MIGRATIONS:
        if before < step.version <= target:
            _apply(con, step.version, step.description, step.statements)
    return before, target
