"""The lab store: a DuckDB file of runs, trades, signals, daily and model performance,
drift statistics and alerts, with forward-only migrations.

>>> import alphatrade_lab as atl
>>> store = atl.store.LabStore(":memory:")
>>> sorted(store.counts()) == sorted(atl.store.TABLES)
True
>>> store.schema_version == atl.store.SCHEMA_VERSION
True

See :mod:`alphatrade_lab.store.store` for the concurrency model,
:mod:`alphatrade_lab.backtest.frames` for how a backtest becomes rows (re-exported here:
``daily_performance``, ``fingerprint``, ``trades_from_portfolio``), and
:mod:`alphatrade_lab.store.schema` for the tables and their portability to PostgreSQL.
"""

from alphatrade_lab.backtest.frames import daily_performance, fingerprint, trades_from_portfolio
from alphatrade_lab.store.convert import signals_from_wide
from alphatrade_lab.store.migrations import MIGRATIONS, SchemaVersionError, migrate
from alphatrade_lab.store.schema import SCHEMA_VERSION, TABLES, create_table_sql
from alphatrade_lab.store.store import LabStore, StoreError, StoreLockedError, code_version

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
    "daily_performance",
    "fingerprint",
    "migrate",
    "signals_from_wide",
    "trades_from_portfolio",
]
