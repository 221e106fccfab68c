"""Reading untrusted zip archives (model bundles, skops files) within hard limits.

A zip declares each member's compressed and uncompressed size in its central directory.
Members are refused *before* they are read when a declared size exceeds its limit or the
declared compression ratio is implausible; then each member is read in small chunks with a
hard byte count, so a header that lies about a size cannot make a read exceed the limit
either. Only the stored and deflate methods are accepted: ``zipfile`` decompresses bzip2 and
LZMA members in one unbounded call. A skops archive is further rebuilt from the verified
bytes with every member stored uncompressed before skops sees it, so skops' own
``ZipFile.read`` calls cannot inflate anything, and every ``.npy`` member must declare
exactly the number of bytes it holds (numpy allocates what the header declares).
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from alphatrade_lab.errors import DataError

__all__ = [
    "MAX_COMPRESSION_RATIO",
    "MAX_METADATA_BYTES",
    "MAX_MODEL_BYTES",
    "MAX_SCHEMA_BYTES",
    "is_zip",
    "open_zip",
    "read_file",
    "read_members",
    "safe_skops",
]

#: Default largest model: the file, and the model's total uncompressed size.
MAX_MODEL_BYTES = 512 * 2**20
#: Largest ``bundle.json`` (a few KB for tens of features). Parsed JSON can take up to
#: about 25 times its text (``[{}, {}, ...]``), so this also bounds the parser's memory.
MAX_METADATA_BYTES = 2 * 2**20
#: Largest ``schema.json`` inside a skops model (about 3 KB per fitted tree); skops parses
#: it with ``json.loads``, with the same amplification.
MAX_SCHEMA_BYTES = 64 * 2**20
#: Largest uncompressed/compressed ratio of a member above :data:`_RATIO_FLOOR` bytes.
MAX_COMPRESSION_RATIO = 100
_RATIO_FLOOR = 2**20
_MAX_SKOPS_MEMBERS = 200_000
_CHUNK = 2**16
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
# What zipfile and zlib raise on damaged archives.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
               NotImplementedError, RuntimeError, ValueError, struct.error)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def read_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (checked before reading)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: not a regular file")
    if st.st_size > max_bytes:
        raise DataError(f"{path}: {_mib(st.st_size)} is larger than the limit of "
                        f"{_mib(max_bytes)} (pass max_bytes=... to load a larger model)")
    with path.open("rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew since stat
        raise DataError(f"{path}: larger than the limit of {_mib(max_bytes)}")
    return data


def is_zip(data: bytes) -> bool:
    """Whether ``data`` starts like a zip archive (a local header or an empty archive)."""
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def open_zip(data: bytes, where: str) -> zipfile.ZipFile:
    """A zip archive over ``data``; a truncated or corrupt one is a :class:`DataError`."""
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as exc:
        raise DataError(f"{where}: not a readable zip archive, truncated or corrupt "
                        f"({exc})") from None


def _check_infos(zf: zipfile.ZipFile, where: str, limits: Mapping[str, int] | None,
                 default_limit: int, total_limit: int, max_members: int
                 ) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > max_members:
        raise DataError(f"{where}: {len(infos):,} members, more than the limit of "
                        f"{max_members:,}")
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        if name in seen:
            raise DataError(f"{where}: member {name!r} appears twice")
        seen.add(name)
        if limits is not None and name not in limits:
            raise DataError(f"{where}: unexpected member {name!r} (expected only "
                            f"{sorted(limits)})")
        if info.flag_bits & 0x1:
            raise DataError(f"{where}, member {name!r}: encrypted members are not supported")
        if info.compress_type not in _METHODS:
            raise DataError(f"{where}, member {name!r}: compression method "
                            f"{info.compress_type} is not supported (only stored or deflate)")
        limit = limits[name] if limits is not None else default_limit
        if info.file_size > limit:
            raise DataError(f"{where}, member {name!r}: declares {_mib(info.file_size)} "
                            f"uncompressed, more than the limit of {_mib(limit)}")
        if (info.file_size > _RATIO_FLOOR
                and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1)):
            raise DataError(f"{where}, member {name!r}: compression ratio "
                            f"{info.file_size / max(info.compress_size, 1):,.0f} exceeds "
                            f"{MAX_COMPRESSION_RATIO} (a zip bomb?)")
        total += info.file_size
        if total > total_limit:
            raise DataError(f"{where}: members declare more than {_mib(total_limit)} "
                            "uncompressed in total")
    return infos


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, limit: int) -> bytes:
    """Stream one member with a hard limit; the result has exactly the declared size."""
    name = info.filename
    parts: list[bytes] = []
    n = 0
    try:
        with zf.open(info) as f:
            while chunk := f.read(_CHUNK):
                n += len(chunk)
                if n > min(limit, info.file_size):
                    raise DataError(f"{where}, member {name!r}: inflates to more than its "
                                    f"declared {info.file_size:,} bytes")
                parts.append(chunk)
    except DataError:
        raise
    except _ZIP_ERRORS as exc:
        raise DataError(f"{where}, member {name!r}: corrupt ({exc})") from None
    if n != info.file_size:
        raise DataError(f"{where}, member {name!r}: {n:,} bytes instead of the declared "
                        f"{info.file_size:,} (truncated?)")
    return b"".join(parts)


def read_members(zf: zipfile.ZipFile, where: str, limits: Mapping[str, int]
                 ) -> dict[str, bytes]:
    """Every member of ``zf``, which must be among ``limits`` (name → byte limit)."""
    infos = _check_infos(zf, where, limits, 0, sum(limits.values()), len(limits))
    return {info.filename: _read_member(zf, info, where, limits[info.filename])
            for info in infos}


def _check_npy(name: str, data: bytes, where: str) -> None:
    fmt = np.lib.format
    try:
        buf = io.BytesIO(data)
        major, _ = fmt.read_magic(buf)
        read_header = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
        shape, _, dtype = read_header(buf, max_header_size=2**16)
    except Exception as exc:  # numpy raises ValueError, SyntaxError, ... on bad headers
        raise DataError(f"{where}, member {name!r}: not a valid .npy array ({exc})") from None
    if dtype.hasobject:
        raise DataError(f"{where}, member {name!r}: object arrays are not allowed")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if declared != len(data) - buf.tell():
        raise DataError(f"{where}, member {name!r}: the array header declares "
                        f"{declared:,} bytes of data, the member holds "
                        f"{len(data) - buf.tell():,}")


def safe_skops(data: bytes, where: str, max_bytes: int) -> bytes:
    """A skops archive checked within limits and rebuilt with stored members.

    Parameters
    ----------
    data
        The untrusted skops bytes.
    where
        Names the source in errors (file, member).
    max_bytes
        Limit of the uncompressed total (and of each member).

    Returns
    -------
    bytes
        An equivalent archive whose members are stored uncompressed.
    """
    zf = open_zip(data, where)
    with zf:
        infos = _check_infos(zf, where, None, max_bytes, max_bytes, _MAX_SKOPS_MEMBERS)
        names = [i.filename for i in infos]
        if "schema.json" not in names:
            raise DataError(f"{where}: not a skops model (no schema.json)")
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
            for info in infos:
                limit = (min(MAX_SCHEMA_BYTES, max_bytes) if info.filename == "schema.json"
                         else max_bytes)
                if info.file_size > limit:
                    raise DataError(f"{where}, member {info.filename!r}: declares "
                                    f"{_mib(info.file_size)}, more than the limit of "
                                    f"{_mib(limit)}")
                body = _read_member(zf, info, where, limit)
                if info.filename.endswith(".npy"):
                    _check_npy(info.filename, body, where)
                dst.writestr(zipfile.ZipInfo(info.filename, date_time=info.date_time), body)
    return out.getvalue()
