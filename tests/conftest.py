"""Shared fixtures: the sample market, small hand-made bars and a random market builder."""

from __future__ import annotations

import uuid

import matplotlib
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

import alphatrade_lab as atl

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    return atl.data.load_sample()


@pytest.fixture()
def small_bars() -> pd.DataFrame:
    """Two symbols, six minute bars each, valid and sorted."""
    ts = pd.date_range("2024-03-01 00:00", periods=6, freq="1min", tz="UTC")
    rows = []
    for sym, p in (("AAA", 100.0), ("BBB", 20.0)):
        for i, t in enumerate(ts):
            o = p + i * 0.1
            c = o + 0.05
            rows.append((t, sym, o, c + 0.2, o - 0.2, c, 10.0 + i))
    return pd.DataFrame(rows, columns=list(atl.data.BAR_COLUMNS))


@pytest.fixture(scope="session")
def vbt():
    """vectorbt, the oracle: imported when a test first needs it (it takes seconds), not
    while every module is collected."""
    import vectorbt

    return vectorbt


def make_random_market(n: int, k: int, seed: int, *, freq: str = "1min", start=100.0,
                       p: float = 0.05, open_sd: float = 0.002):
    """``k`` symbols over ``n`` bars from 2024-01-01 UTC: (close, open, entries, exits) frames.

    Closes are a geometric random walk (1% a bar) from ``start`` (one price, or one per
    symbol); each open is the previous close times noise of ``open_sd``; entries and exits
    are independent draws with probability ``p``. Columns are ``s0``, ``s1``, ... (``s00``,
    ``s01``, ... from 11 symbols on).
    """
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC")
    cols = [f"s{j:0{len(str(k - 1))}d}" for j in range(k)]  # sort in column order
    close = pd.DataFrame(start * np.exp(np.cumsum(rng.normal(0, 0.01, (n, k)), axis=0)),
                         index=idx, columns=cols)
    open_ = close.shift(1).fillna(close.iloc[0]) * np.exp(rng.normal(0, open_sd, (n, k)))
    entries = pd.DataFrame(rng.random((n, k)) < p, index=idx, columns=cols)
    exits = pd.DataFrame(rng.random((n, k)) < p, index=idx, columns=cols)
    return close, open_, entries, exits


@pytest.fixture(scope="session")
def random_market():
    """The builder :func:`make_random_market`, for module fixtures that shape their market."""
    return make_random_market


# Doctests that take a second or more (numba compiles, model fits, whole-sample runs). They
# cannot carry a decorator, so they get the slow marker here, by name.
SLOW_DOCTESTS = {
    "alphatrade_lab.backtest",
    "alphatrade_lab.backtest.sweeps.api.sweep",
    "alphatrade_lab.backtest.sweeps.strategies.Strategy",
    "alphatrade_lab.data",
    "alphatrade_lab.data.resample.to_wide",
    "alphatrade_lab.models.streaming.StreamingScorer",
    "alphatrade_lab.models.validation.train",
    "alphatrade_lab.signals.core.crossed_below",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.name in SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)


# Property-based tests: the same examples on every run (derandomize, no example database),
# a bounded number of them, and no per-example deadline (a cold import can be slow).
settings.register_profile("atl", derandomize=True, database=None, max_examples=150,
                          deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("atl")


@pytest.fixture
def secret_file(tmp_path):
    """A local file holding a unique secret: (path, value). Nothing untrusted may read it."""
    value = f"secret-{uuid.uuid4().hex}"
    path = tmp_path / "secret.txt"
    path.write_text(value + "\n")
    return path, value


# ---------------------------------------------------------------------------------------
# PostgreSQL: the lab store's second backend (tests/test_store_*.py run on both).
#
# One server per session: the one in ATL_TEST_POSTGRES_URL (a role that may CREATE ROLE
# and CREATE DATABASE, e.g. the superuser of a CI service), or a LocalPostgres started in
# a temporary folder. The session has one database owned by an ordinary role (not a
# superuser: what the store's documentation asks for); each test gets a fresh schema of
# its own in it (the URLs set search_path), which takes milliseconds where a CREATE
# DATABASE takes up to a second. No server: the test fails under CI=true and is skipped
# elsewhere.
PG_ROLE = "atl_store"  # + a tag per session


@pytest.fixture(scope="session")
def postgres_admin():
    """``(admin URL of the session's database, store URL of it)``."""
    import os
    import secrets

    url = os.environ.get("ATL_TEST_POSTGRES_URL")
    server = None
    try:
        import psycopg
        from psycopg import sql

        if not url:
            from alphatrade_lab.testing.postgres import LocalPostgres

            server = LocalPostgres().start()
            url = server.url
        password, tag = secrets.token_urlsafe(16), uuid.uuid4().hex[:8]
        user, database = f"{PG_ROLE}_{tag}", f"atl_tests_{tag}"
        role, db = sql.Identifier(user), sql.Identifier(database)
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                                "PASSWORD {}").format(role, sql.Literal(password)))
            con.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, role))
    except (ImportError, OSError, RuntimeError) as exc:
        if server is not None:
            server.stop()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no PostgreSQL server for the store tests: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    info = psycopg.conninfo.conninfo_to_dict(url)
    host, port = info.get("host") or "127.0.0.1", info.get("port") or 5432
    where = f":{port}/{database}?host={host}" if host.startswith("/") else \
        f"{host}:{port}/{database}"  # a unix socket folder goes in the query
    yield (psycopg.conninfo.make_conninfo(url, dbname=database),
           f"postgresql://{user}:{password}@{where}")
    if server is not None:
        server.stop()
    else:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(db))
            con.execute(sql.SQL("DROP ROLE {}").format(role))


@pytest.fixture
def pg_schema(postgres_admin):
    """A fresh schema owned by the ordinary role: ``(store URL, admin conninfo)``, both
    with that schema as their search_path."""
    import psycopg
    from psycopg import sql

    admin, store = postgres_admin
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
            sql.Identifier(name), sql.Identifier(psycopg.conninfo.conninfo_to_dict(
                store)["user"])))
    path = f"-csearch_path={name}"
    yield (f"{store}{'&' if '?' in store else '?'}options={path.replace('=', '%3D')}",
           psycopg.conninfo.make_conninfo(admin, options=path))
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def pg_url(pg_schema):
    """The URL of a fresh, empty schema for one lab store (an ordinary role)."""
    return pg_schema[0]


@pytest.fixture
def pg_admin(pg_schema):
    """A superuser's conninfo onto :func:`pg_url`'s schema (to tamper, inspect, lock)."""
    return pg_schema[1]


@pytest.fixture(params=["duckdb", "postgres"])
def store_url(request, tmp_path):
    """Where a lab store lives, once per backend: a DuckDB file path, a PostgreSQL URL."""
    if request.param == "duckdb":
        return tmp_path / "lab.duckdb"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def hourly_bundle(tmp_path_factory):
    """An exported model (scaler + logistic regression, walk-forward on 2,000 hourly bars
    of the sample's AAA) and those bars: ``(bundle path, bars)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import alphatrade_lab as atl

    folder = tmp_path_factory.mktemp("hourly-bundle")
    bars = atl.data.resample(atl.data.load_sample(["AAA"]), "1h").head(2000)
    X, y = atl.models.align(atl.features.technical(bars), atl.models.labels(bars))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    path = atl.models.save_bundle(atl.models.train(X, y, model, n_splits=2, progress=False),
                                  folder / "m.atlb")
    return path, bars
