"""Loading bars from CSV, Parquet and DuckDB files."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from alphatrade_lab.data.schema import DuplicatePolicy, validate
from alphatrade_lab.errors import DataError

__all__ = ["load"]

_CSV = (".csv", ".csv.gz", ".csv.zst", ".txt")
_PARQUET = (".parquet", ".pq")
_DUCKDB = (".duckdb", ".db", ".ddb")


def _kind(path: Path) -> str:
    name = path.name.lower()
    for kind, suffixes in (("csv", _CSV), ("parquet", _PARQUET), ("duckdb", _DUCKDB)):
        if name.endswith(suffixes):
            return kind
    raise DataError(f"{path}: unknown file type; expected one of {_CSV + _PARQUET + _DUCKDB}")


def _normalise_columns(frame: pd.DataFrame, rename: dict[str, str] | None) -> pd.DataFrame:
    frame = frame.rename(columns=rename) if rename else frame
    return frame.rename(columns=lambda c: str(c).strip().lower())


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # Timestamps stay text here so that validation can point at the bad row.
        return pd.read_csv(path, dtype={"timestamp": str, "symbol": str}, engine="pyarrow")
    except (pa.ArrowInvalid, ValueError):
        return pd.read_csv(path, dtype={"timestamp": str, "symbol": str})


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: cannot read as Parquet ({exc})") from exc
    return table.to_pandas()


def _read_duckdb(path: Path, table: str) -> pd.DataFrame:
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise DataError(f"{path}: cannot open as a DuckDB database ({exc})") from exc
    try:
        tables = {row[0] for row in con.execute(
            "select table_name from information_schema.tables").fetchall()}
        if table not in tables:
            raise DataError(f"{path}: no table {table!r} (tables: {sorted(tables)})")
        # The table name is checked against the catalogue above, so quoting it is safe.
        return con.execute(f'select * from "{table}"').df()
    finally:
        con.close()


def load(
    path: str | os.PathLike,
    *,
    table: str = "bars",
    sort: bool = False,
    drop_duplicates: DuplicatePolicy = None,
    rename: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Read and validate long-form bars from a CSV, Parquet or DuckDB file.

    Parameters
    ----------
    path
        ``.csv`` (optionally ``.gz``/``.zst``), ``.parquet``/``.pq`` or a DuckDB
        database (``.duckdb``/``.db``/``.ddb``).
    table
        Table to read from a DuckDB database.
    sort, drop_duplicates
        Explicit repairs, see :func:`~alphatrade_lab.data.validate`. Without them
        unsorted or duplicated rows are an error.
    rename
        Map of source column names to the standard ones, applied before the
        names are stripped and lower-cased (``{"Date": "timestamp"}``).

    Returns
    -------
    pandas.DataFrame
        Validated bars (see :mod:`alphatrade_lab.data.schema`).

    Raises
    ------
    DataError
        If the file cannot be read or its bars break the contract; the message
        names the file, the column and the first offending row. For CSV files
        the line number is given too (the header is line 1).

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
    if not path.exists():
        raise DataError(f"{path}: no such file")
    kind = _kind(path)
    if kind == "csv":
        frame, line_offset = _read_csv(path), 2
    elif kind == "parquet":
        frame, line_offset = _read_parquet(path), None
    else:
        frame, line_offset = _read_duckdb(path, table), None
    frame = _normalise_columns(frame, rename)
    return validate(frame, source=str(path), sort=sort, drop_duplicates=drop_duplicates,
                    line_offset=line_offset)
