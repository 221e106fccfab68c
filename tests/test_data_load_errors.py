"""Every unreadable file raises DataError naming it (issue 14, items 10 and 11)."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError


def _csv(bars: pd.DataFrame) -> str:
    return bars.to_csv(index=False)


def empty_csv(tmp: Path, bars) -> Path:
    (tmp / "empty.csv").write_bytes(b"")
    return tmp / "empty.csv"


def blank_csv(tmp: Path, bars) -> Path:
    (tmp / "blank.csv").write_bytes(b"\n \n\r\n")
    return tmp / "blank.csv"


def dev_null(tmp: Path, bars) -> Path:
    return Path("/dev/null")


def dev_null_named_csv(tmp: Path, bars) -> Path:
    link = tmp / "null.csv"
    link.symlink_to("/dev/null")
    return link


def latin1(tmp: Path, bars) -> Path:
    text = _csv(bars.assign(symbol=np.where(bars["symbol"] == "BBB", "BÄB", bars["symbol"])))
    (tmp / "latin1.csv").write_bytes(text.encode("latin-1"))
    return tmp / "latin1.csv"


def ragged(tmp: Path, bars) -> Path:
    lines = _csv(bars).splitlines()
    lines[4] += ",1,2"
    (tmp / "ragged.csv").write_text("\n".join(lines) + "\n")
    return tmp / "ragged.csv"


def short_row(tmp: Path, bars) -> Path:
    lines = _csv(bars).splitlines()
    lines[4] = lines[4].rsplit(",", 2)[0]
    (tmp / "short.csv").write_text("\n".join(lines) + "\n")
    return tmp / "short.csv"


def parquet_named_csv(tmp: Path, bars) -> Path:
    bars.to_parquet(tmp / "real.parquet", index=False)
    (tmp / "bars.csv").write_bytes((tmp / "real.parquet").read_bytes())
    return tmp / "bars.csv"


def truncated_gz(tmp: Path, bars) -> Path:
    data = gzip.compress(_csv(bars).encode())
    (tmp / "bars.csv.gz").write_bytes(data[: len(data) // 2])
    return tmp / "bars.csv.gz"


def truncated_zst(tmp: Path, bars) -> Path:
    data = zstandard.ZstdCompressor().compress(_csv(bars).encode())
    (tmp / "bars.csv.zst").write_bytes(data[: len(data) // 2])
    return tmp / "bars.csv.zst"


def not_gzip(tmp: Path, bars) -> Path:
    (tmp / "bars.csv.gz").write_text(_csv(bars))
    return tmp / "bars.csv.gz"


def year_3024_csv(tmp: Path, bars) -> Path:
    (tmp / "future.csv").write_text(_csv(bars).replace("2024-03-01 00:03", "3024-03-01 00:03", 1))
    return tmp / "future.csv"


def year_3024_parquet(tmp: Path, bars) -> Path:
    stamps = [t.to_pydatetime() for t in bars["timestamp"]]
    stamps[3] = dt.datetime(3024, 3, 1, tzinfo=dt.UTC)
    table = pa.Table.from_pandas(bars, preserve_index=False).set_column(
        0, "timestamp", pa.array(stamps, pa.timestamp("us", tz="UTC")))
    pq.write_table(table, tmp / "future.parquet")
    return tmp / "future.parquet"


def close_and_Close(tmp: Path, bars) -> Path:
    bars.assign(Close=bars["close"]).to_csv(tmp / "cc.csv", index=False)
    return tmp / "cc.csv"


def close_and_Close_parquet(tmp: Path, bars) -> Path:
    bars.assign(Close=bars["close"]).to_parquet(tmp / "cc.parquet", index=False)
    return tmp / "cc.parquet"


def directory_csv(tmp: Path, bars) -> Path:
    (tmp / "x.csv").mkdir()
    return tmp / "x.csv"


def missing(tmp: Path, bars) -> Path:
    return tmp / "nope.csv"


def unknown_suffix(tmp: Path, bars) -> Path:
    (tmp / "bars.xlsx").write_text("x")
    return tmp / "bars.xlsx"


def corrupt_parquet(tmp: Path, bars) -> Path:
    bars.to_parquet(tmp / "good.parquet", index=False)
    data = bytearray((tmp / "good.parquet").read_bytes())
    data[len(data) // 2:] = b"\0" * (len(data) - len(data) // 2)
    (tmp / "bad.parquet").write_bytes(bytes(data))
    return tmp / "bad.parquet"


def unreadable_proc_file(tmp: Path, bars) -> Path:
    # Reading /proc/self/mem at offset 0 fails with EIO, even for root.
    link = tmp / "mem.csv"
    link.symlink_to("/proc/self/mem")
    return link


CASES = [
    (empty_csv, r"empty\.csv: empty file"),
    (blank_csv, r"blank\.csv: empty file"),
    (dev_null, r"/dev/null: unknown file type"),
    (dev_null_named_csv, r"null\.csv: not a regular file"),
    (latin1, r"latin1\.csv, line 8: not UTF-8 text"),
    (ragged, r"ragged\.csv, line 5: 9 fields where the header has 7"),
    (short_row, r"short\.csv, line 5: 5 fields where the header has 7"),
    (parquet_named_csv, r"bars\.csv, line 1: not UTF-8 text .*looks like a Parquet file"),
    (truncated_gz, r"bars\.csv\.gz: truncated or corrupt gzip data"),
    (truncated_zst, r"bars\.csv\.zst: truncated or corrupt zstd data"),
    (not_gzip, r"bars\.csv\.gz: truncated or corrupt gzip data"),
    (year_3024_csv, r"future\.csv, column 'timestamp', row 3 \(line 5\): timestamp 3024-03-01 "
                    r"00:03:00\+00:00 is outside the supported range"),
    (year_3024_parquet, r"future\.parquet, column 'timestamp', row 3: timestamp 3024-03-01 "
                        r".*outside the supported range"),
    (close_and_Close, r"cc\.csv, column 'close': columns 'close' and 'Close' both give 'close'"),
    (close_and_Close_parquet, r"cc\.parquet, column 'close': columns 'close' and 'Close'"),
    (directory_csv, r"x\.csv: is a directory"),
    (missing, r"nope\.csv: no such file"),
    (unknown_suffix, r"bars\.xlsx: unknown file type"),
    (corrupt_parquet, r"bad\.parquet: cannot read as Parquet"),
    pytest.param(unreadable_proc_file, r"mem\.csv: cannot read the file",
                 marks=pytest.mark.skipif(not Path("/proc/self/mem").exists(),
                                          reason="needs Linux /proc")),
]


@pytest.mark.parametrize(("make", "message"), CASES, ids=[
    (c.values[0] if hasattr(c, "values") else c[0]).__name__ for c in CASES])
def test_unreadable_file_raises_data_error(tmp_path, small_bars, make, message):
    path = make(tmp_path, small_bars)
    with pytest.raises(DataError, match=message) as info:
        atl.data.load(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.zst", ".txt", ".pq"])
def test_compressed_and_other_suffixes_round_trip(tmp_path, small_bars, suffix):
    path = tmp_path / f"bars{suffix}"
    if suffix == ".pq":
        small_bars.to_parquet(path, index=False)
    else:
        small_bars.to_csv(path, index=False)  # pandas picks gzip / zstd from the suffix
    if suffix == ".csv.zst":
        assert path.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # a real zstd frame
    pd.testing.assert_frame_equal(atl.data.load(path), atl.data.validate(small_bars))


def test_zstd_file_of_several_frames(tmp_path, small_bars):
    text = _csv(small_bars).encode()
    cut = text.index(b"\n", len(text) // 2) + 1
    c = zstandard.ZstdCompressor()
    path = tmp_path / "bars.csv.zst"
    path.write_bytes(c.compress(text[:cut]) + c.compress(text[cut:]))
    pd.testing.assert_frame_equal(atl.data.load(path), atl.data.validate(small_bars))


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.zst"])
def test_compression_bomb_is_refused_before_it_fills_memory(tmp_path, suffix):
    """A few hundred KB that inflate to 300 MiB: refused once past the limit (256 MiB,
    or 200x the file), never inflated whole, and named as what it is."""
    block = b"0" * 2**20
    zstd = zstandard.ZstdCompressor()
    one = gzip.compress(block) if suffix == ".csv.gz" else zstd.compress(block)
    path = tmp_path / f"bomb{suffix}"
    path.write_bytes(b"".join([one] * 300))   # 300 members/frames of 1 MiB each
    assert path.stat().st_size < 2**20
    with pytest.raises(DataError, match=r"bomb.* inflates to more than 268,435,456 bytes"):
        atl.data.load(path)


def test_max_bytes_bounds_a_compressed_csv(tmp_path, small_bars):
    path = tmp_path / "bars.csv.gz"
    path.write_bytes(gzip.compress(_csv(small_bars).encode()))
    with pytest.raises(DataError, match="inflates to more than 100 bytes"):
        atl.data.load(path, max_bytes=100)
    assert len(atl.data.load(path, max_bytes=10**6)) == len(small_bars)


# Item 11: silent wrong answers when loading.

@pytest.mark.parametrize("column", ["close", "volume"])
def test_boolean_cells_are_refused_in_csv(tmp_path, small_bars, column):
    lines = _csv(small_bars).splitlines()
    fields = lines[3].split(",")
    fields[list(atl.data.BAR_COLUMNS).index(column)] = "True"
    lines[3] = ",".join(fields)
    path = tmp_path / "bool.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"column '{column}', row 2 \(line 4\): boolean value "
                                        r"'True' is not a number"):
        atl.data.load(path)


@pytest.mark.parametrize("column", ["open", "volume"])
def test_boolean_columns_are_refused_in_parquet(tmp_path, small_bars, column):
    path = tmp_path / "bool.parquet"
    small_bars.assign(**{column: True}).to_parquet(path, index=False)
    with pytest.raises(DataError, match=rf"column '{column}', row 0: boolean values"):
        atl.data.load(path)


def test_second_close_column_is_refused(tmp_path, small_bars):
    lines = _csv(small_bars).splitlines()
    lines = [lines[0] + ",close"] + [line + ",1.0" for line in lines[1:]]
    path = tmp_path / "two_close.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"column 'close': columns 'close' and 'close' both"):
        atl.data.load(path)


def test_rename_onto_an_existing_column_is_refused(tmp_path, small_bars):
    path = tmp_path / "bars.csv"
    small_bars.assign(Date=small_bars["timestamp"]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"columns 'timestamp' and 'Date' both give 'timestamp'"):
        atl.data.load(path, rename={"Date": "timestamp"})


TICKERS = ["NA", "NULL", "None", "nan", "N/A", "NaN", "null", "#N/A"]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_tickers_that_look_like_missing_values(tmp_path, suffix):
    ts = pd.date_range("2024-03-01", periods=2, freq="1min", tz="UTC")
    rows = [(t, sym, 10.0, 11.0, 9.0, 10.5, 3.0) for sym in sorted(TICKERS) for t in ts]
    bars = pd.DataFrame(rows, columns=list(atl.data.BAR_COLUMNS))
    path = tmp_path / f"bars{suffix}"
    if suffix == ".parquet":
        bars.to_parquet(path, index=False)
    else:
        bars.to_csv(path, index=False)
    out = atl.data.load(path)
    assert out["symbol"].tolist() == bars["symbol"].tolist()
    pd.testing.assert_frame_equal(out, atl.data.validate(bars))


@pytest.mark.parametrize("symbol", ["", "   "])
def test_empty_symbols_are_still_an_error(tmp_path, small_bars, symbol):
    lines = _csv(small_bars).splitlines()
    lines[2] = lines[2].replace(",AAA,", f",{symbol},")
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"column 'symbol', row 1 \(line 3\): empty symbol"):
        atl.data.load(path)


def test_line_numbers_after_blank_lines(tmp_path, small_bars):
    lines = _csv(small_bars).splitlines()
    lines[5] = lines[5].replace("AAA", "")
    text = "\n".join(lines[:2]) + "\n\n\n" + "\n".join(lines[2:4]) + "\n\r\n" + \
        "\n".join(lines[4:]) + "\n\n"
    path = tmp_path / "blank_lines.csv"
    path.write_text(text, newline="")
    # Rows 0..: header line 1, row 0 line 2, blanks 3-4, rows 1-2 lines 5-6, blank 7, row 3
    # line 8, row 4 (the bad one) line 9.
    with pytest.raises(DataError, match=r"column 'symbol', row 4 \(line 9\): empty symbol"):
        atl.data.load(path)


def test_line_numbers_after_quoted_multiline_fields(tmp_path, small_bars):
    bars = small_bars.assign(note="plain")
    bars.loc[1, "note"] = "first\nsecond\nthird"
    bars.loc[2, "note"] = 'quote " and\r\nnewline'
    bars.loc[4, "low"] = 1e9
    path = tmp_path / "notes.csv"
    bars.to_csv(path, index=False)
    # Header 1, row 0: 2, row 1: 3-5, row 2: 6-7, row 3: 8, row 4: 9.
    with pytest.raises(DataError, match=r"column 'low', row 4 \(line 9\)"):
        atl.data.load(path)


def test_extra_columns_keep_their_values(tmp_path, small_bars):
    bars = small_bars.assign(note="a\nb", trades=np.arange(len(small_bars)),
                             vwap=np.where(np.arange(len(small_bars)) == 2, np.nan, 1.5))
    path = tmp_path / "extra.csv"
    bars.to_csv(path, index=False)
    out = atl.data.load(path)
    assert out.columns.tolist() == [*atl.data.BAR_COLUMNS, "note", "trades", "vwap"]
    assert out["note"].tolist() == ["a\nb"] * len(bars)
    assert out["trades"].tolist() == list(range(len(bars)))
    np.testing.assert_array_equal(out["vwap"].to_numpy(), bars["vwap"].to_numpy())


@pytest.mark.slow
def test_records_longer_than_a_read_block(tmp_path, small_bars):
    """A legitimate file with a 3 MB cell loads, and line numbers still count its lines."""
    bars = small_bars.assign(note="x" * 3_000_000)
    bars.loc[1, "note"] = "line\n" * 200_000
    path = tmp_path / "long.csv"
    bars.to_csv(path, index=False)
    out = atl.data.load(path)
    assert out["note"].str.len().tolist() == [3_000_000, 1_000_000, *[3_000_000] * 10]
    bars.loc[2, "high"] = 1.0
    bars.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'high', row 2 \(line 200004\)"):
        atl.data.load(path)
