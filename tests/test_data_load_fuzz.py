"""Property: over mutated CSV and Parquet files, ``atl.data.load`` either returns bars
that satisfy the whole bar contract or raises DataError (issue 14, item 10).

The contract is checked here from its definition in the design document, not with the
library's own validator. Examples are deterministic (see the profile in conftest.py).
"""

from __future__ import annotations

import datetime as dt
import gzip
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError

COLUMNS = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
PRICES = ["open", "high", "low", "close"]


def base_bars() -> pd.DataFrame:
    """Two symbols, four minute bars each: valid, sorted, unique."""
    ts = pd.date_range("2024-03-01", periods=4, freq="1min", tz="UTC")
    rows = []
    for sym, p in (("AAA", 100.0), ("NA", 20.0)):
        for i, t in enumerate(ts):
            o = p + i
            c = o + 0.5
            rows.append((t, sym, o, c + 1.0, o - 1.0, c, 10.0 * i))
    return pd.DataFrame(rows, columns=COLUMNS)


def assert_bar_contract(out: object) -> None:
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns[:7]) == COLUMNS, list(out.columns)
    assert out.columns.is_unique
    assert isinstance(out.index, pd.RangeIndex) and out.index.start == 0 and out.index.step == 1
    assert str(out["timestamp"].dtype) == "datetime64[ns, UTC]", out["timestamp"].dtype
    assert not out["timestamp"].isna().any()
    symbols = out["symbol"].tolist()
    assert all(isinstance(s, str) and s.strip() for s in symbols), symbols
    for col in [*PRICES, "volume"]:
        assert out[col].dtype == np.float64, (col, out[col].dtype)
    o, h, lo, c, v = (out[col].to_numpy() for col in [*PRICES, "volume"])
    for values in (o, h, lo, c):
        assert np.isfinite(values).all() and (values > 0).all()
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    assert np.isfinite(v).all() and (v >= 0).all()
    ns = out["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64).tolist()
    keys = list(zip(symbols, ns, strict=True))
    assert keys == sorted(keys), "not sorted by (symbol, timestamp)"
    assert len(set(keys)) == len(keys), "duplicate (symbol, timestamp)"


def load_or_data_error(path: Path) -> None:
    try:
        out = atl.data.load(path)
    except DataError as exc:
        assert str(exc).startswith(str(path)), str(exc)
        return
    assert_bar_contract(out)


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


# Cell values that break the contract in every way the issue lists, and a few that do not.
CELLS = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "-1", "0", "-0.0", "1e308", "1e400", "True",
                     "False", "", " ", "NA", "NULL", "None", "N/A", "abc", '"', '""', "\n",
                     "2024-03-01 00:01:00+00:00", "3024-01-01", "2024-13-01", "1", "10"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.booleans().map(str),
    st.text(max_size=6),
)

LINE_OPS = st.one_of(
    st.tuples(st.just("cell"), st.integers(0, 9), st.integers(0, 6), CELLS),
    st.tuples(st.just("delete"), st.integers(0, 9)),
    st.tuples(st.just("duplicate"), st.integers(0, 9)),
    st.tuples(st.just("blank"), st.integers(0, 9)),
    st.tuples(st.just("swap"), st.integers(0, 6), st.integers(0, 6)),
    st.tuples(st.just("swap_header"), st.integers(0, 6), st.integers(0, 6)),
    st.tuples(st.just("header"), st.integers(0, 6), st.sampled_from(
        ["Close", "CLOSE", " close ", "close", "symbol", "", "timestamp", "x"])),
)

BYTE_OPS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
)


def mutate_lines(text: str, ops: list) -> str:
    lines = text.splitlines()
    for op in ops:
        i = op[1] % len(lines) if lines else 0
        if not lines:
            break
        if op[0] == "cell" and i > 0:
            fields = lines[i].split(",")
            fields[op[2] % len(fields)] = op[3]
            lines[i] = ",".join(fields)
        elif op[0] == "delete":
            del lines[i]
        elif op[0] == "duplicate":
            lines.insert(i, lines[i])
        elif op[0] == "blank":
            lines.insert(i, "")
        elif op[0] in ("swap", "swap_header"):
            rows = range(len(lines)) if op[0] == "swap" else [0]
            for r in rows:
                fields = lines[r].split(",")
                a, b = op[1] % len(fields), op[2] % len(fields)
                fields[a], fields[b] = fields[b], fields[a]
                lines[r] = ",".join(fields)
        elif op[0] == "header":
            fields = lines[0].split(",")
            fields[op[1] % len(fields)] = op[2]
            lines[0] = ",".join(fields)
    return "\n".join(lines) + "\n"


def mutate_bytes(data: bytes, ops: list) -> bytes:
    buf = bytearray(data)
    for op in ops:
        if not buf:
            break
        if op[0] == "flip":
            buf[op[1] % len(buf)] = op[2]
        else:
            del buf[op[1] % (len(buf) + 1):]
    return bytes(buf)


@given(line_ops=st.lists(LINE_OPS, max_size=4), byte_ops=st.lists(BYTE_OPS, max_size=2),
       suffix=st.sampled_from([".csv", ".csv", ".csv.gz", ".csv.zst"]),
       compressed_ops=st.lists(BYTE_OPS, max_size=1))
@pytest.mark.slow
def test_mutated_csv_loads_valid_bars_or_raises_data_error(workdir, line_ops, byte_ops, suffix,
                                                          compressed_ops):
    data = mutate_bytes(mutate_lines(base_bars().to_csv(index=False), line_ops).encode(),
                        byte_ops)
    if suffix == ".csv.gz":
        data = mutate_bytes(gzip.compress(data), compressed_ops)
    elif suffix == ".csv.zst":
        data = mutate_bytes(zstandard.ZstdCompressor().compress(data), compressed_ops)
    path = workdir / f"bars{suffix}"
    path.write_bytes(data)
    load_or_data_error(path)


FLOATS = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 1e308, 1e-308]),
                   st.floats(allow_nan=True, allow_infinity=True))
COLUMN_VALUES = {
    "float": st.lists(FLOATS, min_size=8, max_size=8),
    "int": st.lists(st.integers(-(2**63), 2**63 - 1), min_size=8, max_size=8),
    "bool": st.lists(st.booleans(), min_size=8, max_size=8),
    "text": st.lists(st.one_of(st.none(), st.text(max_size=4), st.sampled_from(
        ["", " ", "NA", "nan", "1.5", "True", "2024-03-01"])), min_size=8, max_size=8),
    "time": st.lists(st.one_of(st.none(), st.datetimes(
        min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 1, 1),
        timezones=st.just(dt.UTC))), min_size=8, max_size=8),
}
TYPES = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "text": pa.string(),
         "time": pa.timestamp("us", tz="UTC")}

TABLE_OPS = st.one_of(
    st.tuples(st.just("cell"), st.integers(0, 7), st.sampled_from(PRICES + ["volume"]), FLOATS),
    st.tuples(st.just("time_cell"), st.integers(0, 7), COLUMN_VALUES["time"]),
    st.tuples(st.just("symbol_cell"), st.integers(0, 7), st.one_of(
        st.none(), st.sampled_from(["", " ", "NA", "NULL", "None", "nan", "N/A", "ZZZ"]))),
    st.tuples(st.just("column"), st.sampled_from(COLUMNS),
              st.sampled_from(sorted(COLUMN_VALUES)).flatmap(
                  lambda kind: st.tuples(st.just(kind), COLUMN_VALUES[kind]))),
    st.tuples(st.just("swap"), st.sampled_from(COLUMNS), st.sampled_from(COLUMNS)),
    st.tuples(st.just("rows"), st.sampled_from(["reverse", "duplicate", "drop", "shuffle"]),
              st.integers(0, 7)),
    st.tuples(st.just("rename"), st.sampled_from(COLUMNS), st.sampled_from(
        ["Close", "CLOSE", "close", "Timestamp", "extra"])),
)


def build_table(ops: list) -> pa.Table:
    bars = base_bars()
    cols = {name: (TYPES["float"], bars[name].tolist()) for name in [*PRICES, "volume"]}
    cols["timestamp"] = (TYPES["time"], [t.to_pydatetime() for t in bars["timestamp"]])
    cols["symbol"] = (TYPES["text"], bars["symbol"].tolist())
    names = list(COLUMNS)
    for op in ops:
        n = len(cols["symbol"][1])
        if n == 0:
            break
        if op[0] == "cell" and cols[op[2]][0] == TYPES["float"]:
            cols[op[2]][1][op[1] % n] = op[3]
        elif op[0] == "time_cell" and cols["timestamp"][0] == TYPES["time"]:
            cols["timestamp"][1][op[1] % n] = op[2][op[1]]
        elif op[0] == "symbol_cell" and cols["symbol"][0] == TYPES["text"]:
            cols["symbol"][1][op[1] % n] = op[2]
        elif op[0] == "column":
            kind, values = op[2]
            cols[op[1]] = (TYPES[kind], (list(values) * 2)[:n])
        elif op[0] == "swap":
            cols[op[1]], cols[op[2]] = cols[op[2]], cols[op[1]]
        elif op[0] == "rows":
            i = op[2] % n
            order = {"reverse": list(range(n))[::-1],
                     "duplicate": sorted([*range(n), i]),
                     "drop": [j for j in range(n) if j != i],
                     "shuffle": [*range(i, n), *range(i)]}[op[1]]
            cols = {k: (t, [v[j] for j in order]) for k, (t, v) in cols.items()}
        elif op[0] == "rename" and op[1] in names:
            names[names.index(op[1])] = op[2]
    arrays = [pa.array(cols[c][1], cols[c][0]) for c in COLUMNS]
    return pa.Table.from_arrays(arrays, names=names)


@pytest.mark.slow
@given(ops=st.lists(TABLE_OPS, max_size=4), byte_ops=st.lists(BYTE_OPS, max_size=2))
def test_mutated_parquet_loads_valid_bars_or_raises_data_error(workdir, ops, byte_ops):
    path = workdir / "bars.parquet"
    pq.write_table(build_table(ops), path)
    path.write_bytes(mutate_bytes(path.read_bytes(), byte_ops))
    load_or_data_error(path)


def test_unmutated_files_load(workdir):
    """The generators' starting point is valid, so the 'returns bars' branch is reached."""
    csv_path = workdir / "plain.csv"
    csv_path.write_text(mutate_lines(base_bars().to_csv(index=False), []))
    pq_path = workdir / "plain.parquet"
    pq.write_table(build_table([]), pq_path)
    for path in (csv_path, pq_path):
        out = atl.data.load(path)
        assert_bar_contract(out)
        assert out["symbol"].unique().tolist() == ["AAA", "NA"]
