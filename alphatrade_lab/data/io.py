"""Loading bars from CSV, Parquet and DuckDB files."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import re
import zlib
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import zstandard

from alphatrade_lab.data.duckdb_io import (
    ConfigConflictError,
    LockTimeout,
    file_lock,
    quote_identifier,
)
from alphatrade_lab.data.duckdb_io import connect as _duckdb_connect
from alphatrade_lab.data.schema import BAR_COLUMNS, DuplicatePolicy, _Context, _validate
from alphatrade_lab.errors import DataError, location

__all__ = ["load"]

_CSV = (".csv", ".csv.gz", ".csv.zst", ".txt")
_PARQUET = (".parquet", ".pq")
_DUCKDB = (".duckdb", ".db", ".ddb")
_DUCKDB_LOCK_WAIT = 30.0  # seconds load() waits for a lab store writer to finish
_SLICE = 1 << 24  # bytes decoded at a time when checking that a CSV file is UTF-8


def _kind(path: Path) -> str:
    name = path.name.lower()
    for kind, suffixes in (("csv", _CSV), ("parquet", _PARQUET), ("duckdb", _DUCKDB)):
        if name.endswith(suffixes):
            return kind
    raise DataError(f"{path}: unknown file type; expected one of {_CSV + _PARQUET + _DUCKDB}")


def _names(columns: list, rename: dict[str, str] | None) -> list[str]:
    """Standard column names: ``rename`` applied, then stripped and lower-cased."""
    return [str(rename.get(c, c) if rename else c).strip().lower() for c in columns]


def _check_names(path: Path, raw: list, names: list[str]) -> None:
    """Refuse two source columns that end up with the same name ("Close" and "close")."""
    seen: dict[str, object] = {}
    for source, name in zip(raw, names, strict=True):
        if name in seen:
            raise DataError(f"{path}, column '{name}': columns {seen[name]!r} and {source!r} "
                            f"both give '{name}'; drop one or rename it with rename=...")
        seen[name] = source


def _normalise_columns(frame: pd.DataFrame, rename: dict[str, str] | None,
                       path: Path) -> pd.DataFrame:
    names = _names(list(frame.columns), rename)
    _check_names(path, list(frame.columns), names)
    return frame.set_axis(names, axis=1)


# A compressed CSV may inflate to at most this many times its size, and at least to
# _INFLATE_FLOOR: real bar files compress 5-20x, a bomb thousands of times.
MAX_INFLATE_RATIO = 200
_INFLATE_FLOOR = 256 * 2**20
_STEP = 1 << 20


def _inflate(path: Path, data: bytes, codec: str, max_bytes: int | None) -> bytes:
    """Decompress ``data`` in bounded steps; refuse output past the size limit.

    Output is produced a step at a time so a small file that claims gigabytes (a
    compression bomb) is refused after ``limit`` bytes, never inflated first.
    """
    limit = max_bytes if max_bytes is not None else max(
        _INFLATE_FLOOR, MAX_INFLATE_RATIO * len(data))
    out = bytearray()

    def grow(piece: bytes) -> None:
        out.extend(piece)
        if len(out) > limit:
            raise DataError(
                f"{path}: {codec} data inflates to more than {limit:,} bytes from "
                f"{len(data):,}; if the file is genuine, pass a larger max_bytes= to load()")

    if codec == "gzip":
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            while piece := f.read(_STEP):
                grow(piece)
        return bytes(out)
    rest = bytes(data)
    while rest:   # every frame of the stream
        d = zstandard.ZstdDecompressor().decompressobj()
        # small input steps: one zstd block can inflate 32,000-fold
        i = 0
        while not d.eof and i < len(rest):
            grow(d.decompress(rest[i:i + 1024]))
            i += 1024
        if not d.eof:
            raise EOFError("compressed data ended before the end of a zstd frame")
        rest = d.unused_data + rest[i:]
    return bytes(out)


def _file_bytes(path: Path, max_bytes: int | None = None) -> bytes:
    """The file's bytes, decompressed for ``.gz``/``.zst`` (bounded, see :func:`_inflate`)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    name = path.name.lower()
    codec = "gzip" if name.endswith(".gz") else "zstd" if name.endswith(".zst") else None
    if codec is None:
        return data
    try:
        return _inflate(path, data, codec, max_bytes)
    except (EOFError, OSError, zlib.error, zstandard.ZstdError) as exc:
        raise DataError(f"{path}: truncated or corrupt {codec} data ({exc})") from exc


def _check_utf8(path: Path, data: bytes) -> None:
    """Decode in slices (memory stays bounded) and name the line of the first bad byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(data), _SLICE):
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(view[start:start + _SLICE], final=start + _SLICE >= len(data))
        except UnicodeDecodeError as exc:
            offset = max(start - pending + exc.start, 0)
            line = data.count(b"\n", 0, offset) + 1
            hint = "; it looks like a Parquet file" if data[:4] == b"PAR1" else ""
            raise DataError(f"{path}, line {line}: not UTF-8 text (byte {offset}){hint}; "
                            "save the file as UTF-8") from None


def _records(data: bytes):
    """(first line, fields) of each non-blank CSV record, as the Arrow reader splits them."""
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    reader = csv.reader(stream)
    end = 0
    # The csv module refuses fields over 128 KiB by default; the Arrow reader does not.
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, min(len(data) + 1, 2**31 - 1)))
    try:
        for fields in reader:
            start, end = end + 1, reader.line_num
            if fields:
                yield start, fields
    finally:
        csv.field_size_limit(limit)


def _line_finder(data: bytes, n_rows: int) -> Callable[[int], int | None]:
    """Row → line of the file where that record starts, computed on the first error only."""
    starts: list[list[int] | None] = []

    def line_of(row: int) -> int | None:
        if not starts:
            try:
                found = [line for line, _ in _records(data)]
            except csv.Error:
                found = []
            # Trust the map only if this parser saw the records the Arrow reader saw.
            starts.append(found if len(found) == n_rows + 1 else None)
        lines = starts[0]
        return None if lines is None else lines[row + 1]

    return line_of


def _parse_error(path: Path, data: bytes, width: int, exc: Exception) -> DataError:
    try:
        for line, fields in _records(data):
            if len(fields) != width:
                return DataError(f"{path}, line {line}: {len(fields)} fields where the header "
                                 f"has {width}")
    except csv.Error as err:
        return DataError(f"{path}: cannot parse as CSV ({err})")
    return DataError(f"{path}: cannot parse as CSV ({exc})")


def _extra_column(values: pd.Series) -> pd.Series:
    """A non-standard column: numbers if every non-empty cell is one, else text."""
    values = values.where(values != "")
    try:
        return pd.to_numeric(values)
    except (ValueError, TypeError):
        return values


def _read_csv(path: Path, rename: dict[str, str] | None, max_bytes: int | None = None
              ) -> tuple[pd.DataFrame, Callable[[int], int | None]]:
    data = _file_bytes(path, max_bytes)
    if re.search(rb"\S", data) is None:
        raise DataError(f"{path}: empty file (no header line)")
    _check_utf8(path, data)
    try:
        header = next(_records(data))[1]
    except csv.Error as exc:
        raise DataError(f"{path}, line 1: cannot parse the header ({exc})") from exc
    names = _names(header, rename)
    _check_names(path, header, names)
    # Every cell is read as text, without NA conversion: symbols such as "NA" or "NULL"
    # stay symbols, and validation names the row of any cell that is not a number.
    options = pa_csv.ConvertOptions(column_types={h: pa.string() for h in header},
                                    strings_can_be_null=False)
    parse = pa_csv.ParseOptions(newlines_in_values=True)
    try:
        try:
            table = pa_csv.read_csv(pa.BufferReader(data), parse_options=parse,
                                    convert_options=options)
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc):
                raise
            # A record longer than a block (1 MiB): read the file as a single block.
            whole = pa_csv.ReadOptions(block_size=min(len(data) + 1, 2**31 - 1))
            table = pa_csv.read_csv(pa.BufferReader(data), read_options=whole,
                                    parse_options=parse, convert_options=options)
    except pa.ArrowException as exc:
        raise _parse_error(path, data, len(header), exc) from exc
    if table.column_names != header:
        raise DataError(f"{path}, line 1: cannot parse the header consistently "
                        f"({table.column_names} vs {header})")
    frame = table.to_pandas().set_axis(names, axis=1)
    for name in names:
        if name not in BAR_COLUMNS:
            frame[name] = _extra_column(frame[name])
    return frame, _line_finder(data, len(frame))


_ARROW_ERRORS = (pa.ArrowException, OSError, EOFError, ValueError, TypeError, OverflowError,
                 MemoryError)


def _bad_text_row(column: pa.ChunkedArray) -> int | None:
    """Position of the first value of a string column that is not valid UTF-8."""
    offset = 0
    for chunk in column.chunks:
        try:
            chunk.validate(full=True)
        except pa.ArrowInvalid:
            for i, value in enumerate(chunk.cast(pa.binary()).to_pylist()):
                try:
                    if value is not None:
                        value.decode("utf-8")
                except UnicodeDecodeError:
                    return offset + i
        offset += len(chunk)
    return None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
        names = table.column_names  # decoding a damaged name fails here
    except _ARROW_ERRORS as exc:
        raise DataError(f"{path}: cannot read as Parquet ({exc})") from exc
    # Parquet readers do not check that text is UTF-8; a damaged file must not carry
    # invalid strings into pandas, where they fail later with raw Arrow errors.
    for name, column in zip(names, table.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            row = _bad_text_row(column)
            if row is not None:
                raise DataError(f"{location(str(path), name, row)}: not UTF-8 text")
    try:
        return table.to_pandas()
    except (*_ARROW_ERRORS, KeyError, IndexError) as exc:  # also damaged pandas metadata
        raise DataError(f"{path}: cannot convert the Parquet data ({exc})") from exc


def _read_duckdb(path: Path, table: str) -> pd.DataFrame:
    # A lab store's lock file, when there is one, is held as the store holds it (see
    # duckdb_io.file_lock): without it a store committing meanwhile can be read from
    # stale headers.
    try:
        with file_lock(path, shared=True, timeout=_DUCKDB_LOCK_WAIT, create=False):
            return _read_duckdb_unlocked(path, table)
    except LockTimeout as exc:
        raise DataError(f"{path}: a lab store process kept the file locked ({exc})") from None


def _read_duckdb_unlocked(path: Path, table: str) -> pd.DataFrame:
    # The file is untrusted: its views and macros run with external access disabled,
    # read-only (see alphatrade_lab.data.duckdb_io).
    try:
        con = _duckdb_connect(path, read_only=True)
    except ConfigConflictError:
        raise DataError(f"{path}: this process already has the file open through another "
                        "DuckDB connection; close it before loading") from None
    except duckdb.Error as exc:
        raise DataError(f"{path}: cannot open as a DuckDB database ({exc})") from None
    try:
        tables = {row[0] for row in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = current_schema()"
        ).fetchall()}
        if table not in tables:
            listed = sorted(tables)
            more = f" and {len(listed) - 20} more" if len(listed) > 20 else ""
            raise DataError(f"{path}: no table {table!r} (tables: {listed[:20]}{more})")
        try:
            return con.execute(f"SELECT * FROM {quote_identifier(table)}").df()
        except duckdb.Error as exc:
            raise DataError(f"{path}: cannot read table {table!r} "
                            f"({type(exc).__name__}: {exc})") from None
    finally:
        con.close()


def load(
    path: str | os.PathLike,
    *,
    table: str = "bars",
    sort: bool = False,
    drop_duplicates: DuplicatePolicy = None,
    rename: dict[str, str] | None = None,
    max_bytes: int | None = None,
) -> pd.DataFrame:
    """Read and validate long-form bars from a CSV, Parquet or DuckDB file.

    Parameters
    ----------
    path
        ``.csv``/``.txt`` (UTF-8, optionally ``.csv.gz``/``.csv.zst``),
        ``.parquet``/``.pq`` (a file or a directory dataset) or a DuckDB database
        (``.duckdb``/``.db``/``.ddb``). CSV cells are read as text without
        missing-value conversion, so tickers such as ``NA`` or ``NULL`` stay
        symbols; extra columns become numbers when every non-empty cell is one.
    table
        Table to read from a DuckDB database.
    sort, drop_duplicates
        Explicit repairs, see :func:`~alphatrade_lab.data.validate`. Without them
        unsorted or duplicated rows are an error.
    rename
        Map of source column names to the standard ones, applied before the
        names are stripped and lower-cased (``{"Date": "timestamp"}``). Two
        source columns that end up with one name (``Close`` and ``close``) are
        an error, never silently renamed.
    max_bytes
        Largest decompressed size of a ``.csv.gz``/``.csv.zst`` file. By default
        ``MAX_INFLATE_RATIO`` (200) times the compressed size, and at least 256 MiB;
        a file that inflates past it (a compression bomb) is refused before it
        fills memory.

    Returns
    -------
    pandas.DataFrame
        Validated bars (see :mod:`alphatrade_lab.data.schema`).

    Raises
    ------
    DataError
        If the file is missing, not a regular file, unreadable, empty, of an
        unknown type, truncated or corrupt (compressed data, Parquet), inflates past
        ``max_bytes``, not UTF-8,
        has rows with the wrong number of fields or duplicate column names, or if
        its bars break the contract; the message names the file, and the column
        and first offending row where there is one. For CSV files the line where
        that record starts is given too (the header is line 1; blank lines and
        quoted multi-line fields are counted).

    Examples
    --------
    >>> import tempfile, pathlib, alphatrade_lab as atl
    >>> bars = atl.data.load_sample().head(3)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "bars.csv"
    >>> bars.to_csv(path, index=False)
    >>> atl.data.load(path).equals(bars)
    True
    """
    path = Path(path)
    try:
        exists = path.exists()
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: invalid path ({exc})") from exc
    if not exists:
        raise DataError(f"{path}: no such file")
    kind = _kind(path)
    if path.is_dir():
        if kind != "parquet":  # a directory of Parquet files is a dataset
            raise DataError(f"{path}: is a directory, not a {kind} file")
    elif not path.is_file():
        raise DataError(f"{path}: not a regular file")
    line_of = None
    if kind == "csv":
        frame, line_of = _read_csv(path, rename, max_bytes)
    elif kind == "parquet":
        frame = _normalise_columns(_read_parquet(path), rename, path)
    else:
        frame = _normalise_columns(_read_duckdb(path, table), rename, path)
    return _validate(frame, source=str(path), sort=sort, drop_duplicates=drop_duplicates,
                     ctx=_Context(str(path), line_of=line_of), stacklevel=3)
