"""Loading bars from CSV, Parquet and DuckDB files, and file-level errors."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError, RepairWarning


def write(bars: pd.DataFrame, path):
    if path.suffix == ".csv":
        bars.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        bars.to_parquet(path, index=False)
    else:
        with duckdb.connect(str(path)) as con:
            con.register("frame", bars)
            con.execute("create table bars as select * from frame")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".duckdb"])
def test_round_trip(tmp_path, small_bars, suffix):
    path = write(small_bars, tmp_path / f"bars{suffix}")
    out = atl.data.load(path)
    pd.testing.assert_frame_equal(out, atl.data.validate(small_bars), check_exact=True)
    assert out.attrs["source"] == str(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".duckdb"])
def test_errors_name_the_file_column_and_row(tmp_path, small_bars, suffix):
    bad = small_bars.copy()
    bad.loc[7, "low"] = bad.loc[7, "open"] + 1.0
    path = write(bad, tmp_path / f"bad{suffix}")
    with pytest.raises(DataError) as info:
        atl.data.load(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "column 'low'" in msg and "row 7" in msg, msg


def test_csv_errors_give_the_line(tmp_path, small_bars):
    text = small_bars.to_csv(index=False).splitlines()
    text[3] = text[3].replace("2024-03-01 00:02:00+00:00", "yesterday")
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"column 'timestamp', row 2 \(line 4\): cannot parse "
                                        r"timestamp 'yesterday'"):
        atl.data.load(path)


def test_csv_with_other_column_names(tmp_path, small_bars):
    renamed = small_bars.rename(columns={"timestamp": "Date", "open": " Open ", "close": "CLOSE"})
    path = write(renamed, tmp_path / "bars.csv")
    with pytest.raises(DataError, match="column 'timestamp': missing column"):
        atl.data.load(path)
    out = atl.data.load(path, rename={"Date": "timestamp"})
    pd.testing.assert_frame_equal(out, atl.data.validate(small_bars))


def test_repairs_through_load(tmp_path, small_bars):
    messy = pd.concat([small_bars.iloc[::-1], small_bars.iloc[[0]]], ignore_index=True)
    path = write(messy, tmp_path / "messy.parquet")
    with pytest.raises(DataError, match="not sorted"):
        atl.data.load(path)
    with pytest.warns(RepairWarning, match=r"messy.parquet: sorted .*; dropped 1 duplicate"):
        out = atl.data.load(path, sort=True, drop_duplicates="first")
    pd.testing.assert_frame_equal(out, atl.data.validate(small_bars))


def test_duckdb_table_choice(tmp_path, small_bars):
    path = write(small_bars, tmp_path / "lab.duckdb")
    with pytest.raises(DataError, match=r"no table 'prices' \(tables: \['bars'\]\)"):
        atl.data.load(path, table="prices")


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        atl.data.load(tmp_path / "nope.csv")
    other = tmp_path / "bars.xlsx"
    other.write_text("x")
    with pytest.raises(DataError, match="unknown file type"):
        atl.data.load(other)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot read as Parquet"):
        atl.data.load(path)
