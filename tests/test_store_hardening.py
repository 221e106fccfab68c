"""The lab store against hostile SQL and hostile or broken files: query() cannot write,
read files or the environment; bad files and arguments raise the library's errors naming
the path; a duplicate run id writes nothing."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.errors import DataError, StoreError
from alphatrade_lab.store import LabStore

N_TRADES = 2500


def _trades(n: int = N_TRADES) -> pd.DataFrame:
    return pd.DataFrame({"symbol": "AAA", "side": "long", "quantity": np.arange(1.0, n + 1),
                         "entry_time": pd.Timestamp("2024-01-01", tz="UTC"),
                         "entry_price": 10.0})


def _where(kind: str, request, tmp_path):
    if kind == "postgres":
        return request.getfixturevalue("pg_url")
    return ":memory:" if kind == "memory" else tmp_path / "lab.duckdb"


def _filled(where) -> LabStore:
    s = LabStore(where)
    run = s.record_run("backtest", run_id="r1")
    s.record_trades(_trades(), run_id=run)
    return s


@pytest.fixture(params=["memory", "file", "postgres"])
def store(request, tmp_path):
    """A store holding run r1 and its trades, on every backend (PostgreSQL's own
    untrusted-SQL cases are in test_store_postgres.py)."""
    with _filled(_where(request.param, request, tmp_path)) as s:
        yield s


@pytest.fixture(params=["memory", "file"])
def duckdb_store(request, tmp_path):
    """The same, DuckDB only: its table functions that read files or run SQL."""
    with _filled(_where(request.param, request, tmp_path)) as s:
        yield s


def _intact(store: LabStore) -> None:
    assert store.counts()["trades"] == N_TRADES and store.counts()["runs"] == 1
    assert store.query("SELECT sum(quantity) AS q FROM trades")["q"].iloc[0] == \
        N_TRADES * (N_TRADES + 1) / 2


# --------------------------------------------------------------- query(): item 3
DESTRUCTIVE = [
    "WITH d AS (DELETE FROM runs RETURNING *) SELECT count(*) FROM d",
    "WITH d AS (DELETE FROM trades RETURNING *) SELECT count(*) FROM d",
    "WITH u AS (UPDATE trades SET quantity = 0 RETURNING *) SELECT count(*) FROM u",
    "WITH i AS (INSERT INTO runs VALUES ('x', now(), 'k', NULL, NULL, NULL, NULL) "
    "RETURNING *) SELECT * FROM i",
    "SELECT * FROM (WITH d AS (DELETE FROM trades RETURNING *) SELECT * FROM d)",
    "EXPLAIN ANALYZE DROP TABLE trades",
    "EXPLAIN ANALYZE DELETE FROM trades",
    "EXPLAIN DELETE FROM trades",
    "DELETE FROM trades",
    "DROP TABLE trades",
    "UPDATE trades SET quantity = 0",
    "SELECT 1; DELETE FROM trades",
    "SELECT 1; SELECT 2",
    "PRAGMA version",
    "SET threads = 1",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "ATTACH ':memory:' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "CALL checkpoint()",
    "CHECKPOINT",
    "CREATE MACRO m() AS 1",
    "CREATE TABLE t AS SELECT 1",
    "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "BEGIN TRANSACTION",
    "VACUUM",
    "",
]


@pytest.mark.slow
@pytest.mark.parametrize("sql", DESTRUCTIVE)
def test_query_refuses_statements_that_change_anything(store, sql):
    with pytest.raises(ValueError, match="^query: "):
        store.query(sql)
    _intact(store)


def test_query_table_function_running_sql_cannot_write(duckdb_store):
    # query() runs its text as SQL: the read-only transaction stops the DELETE inside
    with pytest.raises(DataError, match="query on"):
        duckdb_store.query("SELECT count(*) FROM query('DELETE FROM trades RETURNING *')")
    _intact(duckdb_store)


def test_query_cannot_write_files(store, tmp_path):
    target = tmp_path / "written.csv"
    for sql in (f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{target}'",
                f"COPY (SELECT 1) TO '{target}'", f"COPY trades TO '{target}'"):
        with pytest.raises(ValueError):
            store.query(sql)
    assert not target.exists()
    _intact(store)


@pytest.mark.parametrize("template", [
    "SELECT content FROM read_text('{p}')",
    "SELECT content FROM read_blob('{p}')",
    "SELECT * FROM read_csv('{p}', header=false)",
    "SELECT * FROM glob('{d}/*')",
    "SELECT * FROM read_json('{p}')",
    "SELECT * FROM '{p}'",
])
@pytest.mark.slow
def test_query_cannot_read_files(duckdb_store, secret_file, template):
    secret, value = secret_file
    with pytest.raises(DataError) as info:
        duckdb_store.query(template.format(p=secret, d=secret.parent))
    assert value not in str(info.value)


def test_query_cannot_read_the_environment(duckdb_store):
    with open("/proc/self/environ", "rb") as f:
        values = [kv.split(b"=", 1)[1].decode(errors="replace")
                  for kv in f.read().split(b"\0") if b"=" in kv]
    values = [v for v in values if len(v) >= 8]
    assert values  # the test means something only if the environment has values
    with pytest.raises(DataError) as info:
        duckdb_store.query("SELECT content FROM read_blob('/proc/self/environ')")
    assert not any(v in str(info.value) for v in values)
    with pytest.raises(DataError):
        duckdb_store.query("SELECT current_setting('enable_external_access') AS on_ "
                    "FROM read_text('/proc/self/environ')")


def test_query_cannot_see_python_variables(store):
    hidden_frame = pd.DataFrame({"x": ["python-variable"]})  # noqa: F841 (replacement scan)
    with pytest.raises(DataError):
        store.query("SELECT * FROM hidden_frame")


def test_normal_selects_with_parameters_still_work(store):
    got = store.query("select symbol, sum(quantity) AS q from trades where run_id = $run "
                      "group by 1", {"run": "r1"})
    assert got.to_dict("records") == [{"symbol": "AAA", "q": N_TRADES * (N_TRADES + 1) / 2}]
    got = store.query("WITH t AS (SELECT * FROM trades WHERE quantity > ?) "
                      "SELECT count(*) AS n FROM t UNION ALL SELECT 0", [N_TRADES - 2])
    assert got["n"].tolist() == [2, 0]
    assert store.query("SELECT current_setting('TimeZone') AS tz")["tz"].tolist() == ["UTC"]


def test_a_bad_select_is_a_data_error(store):
    with pytest.raises(DataError, match="query on .*no_such_table"):
        store.query("SELECT * FROM no_such_table")


def test_a_file_held_open_by_this_process_is_refused_not_written(tmp_path):
    path = tmp_path / "lab.duckdb"
    store = LabStore(path)
    store.record_run("backtest", run_id="r1")
    store.record_trades(_trades(), run_id="r1")
    with duckdb.connect(str(path)) as con:  # the user's own read-write connection
        for sql in ("EXPLAIN ANALYZE DELETE FROM trades", "DELETE FROM trades"):
            with pytest.raises((ValueError, StoreError)):
                store.query(sql)
        with pytest.raises(StoreError, match=r"lab\.duckdb: this process already has"):
            store.query("SELECT count(*) FROM trades")
        assert con.execute("SELECT count(*) FROM trades").fetchone()[0] == N_TRADES
    _intact(store)


def test_a_hostile_store_file_cannot_read_files_through_its_views(tmp_path, secret_file):
    secret, value = secret_file
    path = tmp_path / "lab.duckdb"
    LabStore(path).record_run("x", run_id="r1")
    with duckdb.connect(str(path)) as con:
        con.execute("ALTER TABLE runs RENAME TO runs_real")
        con.execute(f"CREATE VIEW runs AS SELECT run_id, created_at, "
                    f"(SELECT content FROM read_text('{secret}')) AS kind, params, "
                    "code_version, data_fingerprint, notes FROM runs_real")
    store = LabStore(path, read_only=True)
    for call in (store.runs, store.counts, lambda: store.query("SELECT * FROM runs")):
        with pytest.raises(DataError) as info:
            call()
        assert value not in str(info.value)


# --------------------------------------------------------------- bad files: item 12
@pytest.mark.parametrize("content", [b"", b"x", b"not a database " * 1000,
                                     b"DUCK" + bytes(5000)], ids=["empty", "1-byte",
                                                                  "text", "zeros"])
@pytest.mark.parametrize("read_only", [False, True])
def test_corrupt_or_empty_file_is_a_store_error_and_left_alone(tmp_path, content, read_only):
    path = tmp_path / "lab.duckdb"
    path.write_bytes(content)
    with pytest.raises(StoreError, match=r"lab\.duckdb: cannot open the lab store"):
        LabStore(path, read_only=read_only)
    assert path.read_bytes() == content


@pytest.mark.parametrize("where", ["parent is a file", "path is a folder", "under /proc"])
def test_unusable_paths_are_store_errors_naming_the_path(tmp_path, where):
    if where == "parent is a file":
        (tmp_path / "plain.txt").write_text("x")
        path = tmp_path / "plain.txt" / "lab.duckdb"
    elif where == "path is a folder":
        path = tmp_path / "lab.duckdb"
        path.mkdir()
    else:
        path = Path("/proc/atl-no-such-dir/lab.duckdb")  # /proc takes no new folders
    with pytest.raises(StoreError, match=str(path).replace(".", r"\.")):
        LabStore(path)


def _read_only(path: Path, on: bool) -> None:
    """chmod for a normal user; root ignores modes, so it needs the immutable flag."""
    if os.geteuid() != 0:
        path.chmod((0o555 if path.is_dir() else 0o444) if on else 0o755)
        return
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"root cannot make {path} read-only here: {done.stderr.decode()[:100]}")


@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_file_or_folder_is_a_store_error(tmp_path, what):
    folder = tmp_path / "d"
    folder.mkdir()
    path = folder / "lab.duckdb"
    locked = [folder]
    if what == "file":
        LabStore(path).record_run("x", run_id="r1")
        locked = [p for p in (path, Path(f"{path}.lock")) if p.exists()] + [folder]
    try:
        for p in locked:
            _read_only(p, True)
        with pytest.raises(StoreError, match=r"lab\.duckdb"):
            LabStore(path).record_run("y")
        if what == "file":
            assert LabStore(path, read_only=True).runs()["run_id"].tolist() == ["r1"]
    finally:
        for p in reversed(locked):
            _read_only(p, False)
    if what == "file":
        assert LabStore(path).runs()["run_id"].tolist() == ["r1"]


@pytest.mark.parametrize("kind", ["memory", "file", "postgres"])
def test_duplicate_run_id_writes_nothing_and_keeps_the_first(request, tmp_path, kind):
    store = LabStore(_where(kind, request, tmp_path))
    store.record_run("first", {"a": 1}, run_id="r1", notes="keep me")
    store.record_trades(_trades(10), run_id="r1")
    before = store.counts()
    with pytest.raises(DataError, match="runs: run_id 'r1' is already in"):
        store.record_run("second", {"a": 2}, run_id="r1")
    assert store.counts() == before
    runs = store.runs()
    assert runs[["run_id", "kind", "notes"]].to_dict("records") == [
        {"run_id": "r1", "kind": "first", "notes": "keep me"}]
    assert store.trades(run_id="r1")["quantity"].tolist() == list(np.arange(1.0, 11))


@pytest.mark.parametrize("timeout", [-1, -0.001, math.nan, math.inf, -math.inf, "5", None,
                                     True, [1]])
def test_lock_timeout_must_be_a_finite_non_negative_number(tmp_path, timeout):
    with pytest.raises(ValueError, match=r"lock_timeout must be a finite number"):
        LabStore(tmp_path / "lab.duckdb", lock_timeout=timeout)
    assert not (tmp_path / "lab.duckdb").exists()


@pytest.mark.parametrize("timeout", [0, 0.5, 30, np.float64(2.0), np.int64(3)])
def test_valid_lock_timeouts(tmp_path, timeout):
    assert LabStore(tmp_path / "lab.duckdb", lock_timeout=timeout).lock_timeout == timeout
