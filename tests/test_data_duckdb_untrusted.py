"""DuckDB files are untrusted input: `atl.data.load` must not let a file's views and macros
read the environment or local files, load extensions, or break on odd table names."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.data import duckdb_io
from alphatrade_lab.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def hostile(path: Path, bars: pd.DataFrame, *statements: str) -> Path:
    """A DuckDB file holding ``bars`` as table ``base`` plus the given SQL (views, macros)."""
    with duckdb.connect(str(path)) as con:
        con.register("frame", bars)
        con.execute("CREATE TABLE base AS SELECT * FROM frame")
        for sql in statements:
            con.execute(sql)
    return path


def outcome(path: Path, **kwargs) -> str:
    """Everything load() gives back: the frame's text, or the error's text."""
    try:
        return atl.data.load(path, **kwargs).to_csv()
    except DataError as exc:
        return f"DataError: {exc} {exc.__cause__!r} {exc.__context__!r}"


def _view(symbol: str = "symbol", open_: str = "open") -> str:
    return (f"CREATE VIEW bars AS SELECT timestamp, {symbol} AS symbol, {open_} AS open, "
            "high, low, close, volume FROM base")


def _file_views(secret: Path) -> dict[str, list[str]]:
    s, folder = repr(str(secret)), repr(str(secret.parent / "*"))
    return {
        "read_text in symbol": [_view(f"(SELECT content FROM read_text({s}))")],
        "read_csv in symbol": [_view(f"(SELECT column0 FROM read_csv({s}, header=false))")],
        "value in a cast error": [
            _view(open_=f"CAST((SELECT content FROM read_text({s})) AS DOUBLE)")],
        "table macro": [f"CREATE MACRO leak() AS TABLE SELECT content FROM read_blob({s})",
                        _view("(SELECT content::VARCHAR FROM leak())")],
        "scalar macro": [f"CREATE MACRO leak() AS (SELECT content FROM read_text({s}))",
                         _view("leak()")],
        "glob of the folder": [_view(f"(SELECT string_agg(file) FROM glob({folder}))")],
    }


@pytest.mark.parametrize("case", list(_file_views(Path("/x"))))
def test_views_cannot_read_local_files(tmp_path, small_bars, secret_file, case):
    secret, value = secret_file
    path = hostile(tmp_path / "x.duckdb", small_bars, *_file_views(secret)[case])
    got = outcome(path)
    assert value not in got and "secret.txt" not in got.replace(str(secret), "")
    assert got.startswith("DataError: ") and str(path) in got


@pytest.mark.slow
def test_views_cannot_read_the_environment(tmp_path, small_bars):
    # /proc/self/environ holds the environment the process started with: use a child
    marker = f"marker-{uuid.uuid4().hex}"
    path = hostile(
        tmp_path / "env.duckdb", small_bars,
        _view("(SELECT content::VARCHAR FROM read_blob('/proc/self/environ'))"),
        _view(open_="CAST((SELECT content FROM read_text('/proc/self/environ')) AS DOUBLE)"
              ).replace("VIEW bars", "VIEW prices"))
    code = textwrap.dedent("""
        import sys, alphatrade_lab as atl
        for table in ("bars", "prices"):
            try:
                print(atl.data.load(sys.argv[1], table=table).to_csv())
            except Exception as exc:
                print(type(exc).__name__, exc, repr(exc.__cause__), repr(exc.__context__))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ATL_TEST_MARKER": marker}
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert marker not in out.stdout and marker not in out.stderr
    assert out.stdout.count("DataError") == 2, out.stdout


def test_sql_in_the_file_cannot_switch_protection_back_on(tmp_path):
    con = duckdb_io.connect(":memory:")
    for sql in ("SET enable_external_access = true", "SET lock_configuration = false",
                "SET autoload_known_extensions = true", "RESET enable_external_access"):
        with pytest.raises(duckdb.Error):
            con.execute(sql)
    for sql in (f"ATTACH '{tmp_path / 'other.duckdb'}' AS other", "INSTALL httpfs",
                "LOAD httpfs", f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'"):
        with pytest.raises(duckdb.Error):
            con.execute(sql)
    assert list(tmp_path.iterdir()) == []
    settings = dict(con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
        "'autoload_known_extensions', 'autoinstall_known_extensions', "
        "'allow_community_extensions', 'lock_configuration', 'TimeZone')").fetchall())
    assert settings == {"enable_external_access": "false", "autoload_known_extensions": "false",
                        "autoinstall_known_extensions": "false",
                        "allow_community_extensions": "false", "lock_configuration": "true",
                        "TimeZone": "UTC"}


def test_a_plain_file_still_loads_and_stays_unchanged(tmp_path, small_bars):
    path = hostile(tmp_path / "ok.duckdb", small_bars,
                   _view())
    before = path.read_bytes()
    out = atl.data.load(path)
    pd.testing.assert_frame_equal(out, atl.data.validate(small_bars), check_exact=True)
    assert path.read_bytes() == before and not Path(str(path) + ".wal").exists()


@pytest.mark.parametrize("name", ['we"ird', "spa ce", "semi;colon",
                                  'bars"; DROP TABLE base; --'])
def test_odd_table_names_are_quoted(tmp_path, small_bars, name):
    path = hostile(tmp_path / "odd.duckdb", small_bars,
                   f"CREATE VIEW {duckdb_io.quote_identifier(name)} AS SELECT * FROM base")
    out = atl.data.load(path, table=name)
    assert len(out) == len(small_bars)
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM base").fetchone()[0] == len(small_bars)


def test_missing_table_names_the_file_and_the_table(tmp_path, small_bars):
    path = hostile(tmp_path / "t.duckdb", small_bars)
    with pytest.raises(DataError, match=r"t\.duckdb: no table 'we\"ird' \(tables: \['base'\]\)"):
        atl.data.load(path, table='we"ird')


def test_a_file_this_process_holds_open_is_refused_not_reused(tmp_path, small_bars):
    path = hostile(tmp_path / "held.duckdb", small_bars,
                   _view())
    with duckdb.connect(str(path)):
        with pytest.raises(DataError, match=r"held\.duckdb: this process already has"):
            atl.data.load(path)
    assert len(atl.data.load(path)) == len(small_bars)


def _hold_lock(path: Path) -> int:
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


@pytest.mark.slow
def test_load_waits_for_a_store_writer_holding_the_lock_file(tmp_path, small_bars):
    path = hostile(tmp_path / "lab.duckdb", small_bars, _view())
    fd = _hold_lock(path)
    released = threading.Event()

    def release():
        time.sleep(0.5)
        released.set()
        os.close(fd)

    threading.Thread(target=release, daemon=True).start()
    out = atl.data.load(path)
    assert released.is_set() and len(out) == len(small_bars)


def test_load_names_a_lock_held_too_long(tmp_path, small_bars, monkeypatch):
    from alphatrade_lab.data import io

    path = hostile(tmp_path / "lab.duckdb", small_bars, _view())
    monkeypatch.setattr(io, "_DUCKDB_LOCK_WAIT", 0.2)
    fd = _hold_lock(path)
    try:
        with pytest.raises(DataError, match=r"lab\.duckdb: a lab store process kept the file"):
            atl.data.load(path)
    finally:
        os.close(fd)
    assert len(atl.data.load(path)) == len(small_bars)


def test_load_creates_no_lock_file(tmp_path, small_bars):
    path = hostile(tmp_path / "plain.duckdb", small_bars, _view())
    atl.data.load(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.duckdb"]
