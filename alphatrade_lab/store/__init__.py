"""The lab store: a DuckDB file (or a PostgreSQL database: ``LabStore("postgresql://...")``)
of runs, trades, signals, daily and model performance, drift statistics and alerts, and the
live engine's orders, fills, equity, positions, feed events and resume state
(``LabStore.record_live``), and the news cache (``LabStore.record_news``: articles and
their scores, one row per normalised URL), with forward-only migrations.

>>> import alphatrade_lab as atl
>>> store = atl.store.LabStore(":memory:")
>>> sorted(store.counts()) == sorted(atl.store.TABLES)
True
>>> store.schema_version == atl.store.SCHEMA_VERSION
True

See :mod:`alphatrade_lab.store.lab_store` for the concurrency model,
:mod:`alphatrade_lab.backtest.frames` for how a backtest becomes rows
(``atl.backtest.portfolio_frames``),
:mod:`alphatrade_lab.store.live` for the live tables (one transaction per engine flush),
:mod:`alphatrade_lab.store.news` for the news cache (keys, what a re-fetch replaces),
:mod:`alphatrade_lab.store.schema` for the tables and their portability to PostgreSQL, and
:mod:`alphatrade_lab.store.postgres` for the PostgreSQL backend (TimescaleDB hypertables,
untrusted SQL, the role it needs).
"""

from alphatrade_lab.store.convert import signals_from_wide
from alphatrade_lab.store.lab_store import LabStore, StoreError, StoreLockedError, code_version
from alphatrade_lab.store.migrations import MIGRATIONS, SchemaVersionError, migrate
from alphatrade_lab.store.schema import SCHEMA_VERSION, TABLES, create_table_sql

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TABLES",
    "LabStore",
    "SchemaVersionError",
    "StoreError",
    "StoreLockedError",
    "code_version",
    "create_table_sql",
    "migrate",
    "signals_from_wide",
]
