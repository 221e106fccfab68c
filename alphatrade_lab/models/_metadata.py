"""Validation of a bundle's ``bundle.json``: every field checked at load time.

Each problem is a :class:`~alphatrade_lab.errors.DataError` naming the file and the field,
so a damaged or hand-edited file fails when it is loaded, not later when it predicts.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from types import UnionType
from typing import Any

from alphatrade_lab.errors import DataError
from alphatrade_lab.redact import redact_truncate

__all__ = ["FIELDS", "parse_metadata"]

#: Every field of format version 1, as written by ``save_bundle``.
FIELDS: tuple[str, ...] = (
    "classes", "created", "feature_names", "feature_spec", "fingerprint", "format",
    "format_version", "label_spec", "max_missing", "means", "meta", "metrics", "model_file",
    "model_sha256", "nan_policy", "stds", "versions",
)
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


class _Checker:
    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, what: str) -> DataError:
        return DataError(f"{self.where}: bundle.json field {key!r}: {what}")

    def of_type(self, key: str, value: Any, types: type | UnionType | tuple, name: str,
                nullable: bool = False) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple)
                                                    else (types,)):
            raise self.fail(key, f"expected {name}, got {json.dumps(value)}")
        if not isinstance(value, types):
            raise self.fail(key, f"expected {name}, got {_kind(value)}")
        return value

    def hex64(self, key: str, value: Any, nullable: bool = False) -> str | None:
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise self.fail(key, "expected a SHA-256 as 64 lowercase hex digits, got "
                            f"{_short(value)}")
        return value

    def numbers(self, key: str, value: Any, n: int | None, nonnegative: bool) -> list[float]:
        self.of_type(key, value, list, "an array of numbers")
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise self.fail(key, f"item {i} is {_kind(v)}, not a number")
            if math.isinf(v) or (nonnegative and v < 0):
                raise self.fail(key, f"item {i} is {v}, expected a finite "
                                f"{'non-negative ' if nonnegative else ''}number or NaN")
        if n is not None and len(value) != n:
            raise self.fail(key, f"{len(value)} values for {n} features")
        return [float(v) for v in value]


def _short(value: Any) -> str:
    # redacted before the cut, so a secret in a metadata field cannot leak its prefix
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return redact_truncate(text, 40)


def _decode(raw: bytes, where: str) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: bundle.json is not UTF-8 text (byte {exc.start})") from None
    def unique_keys(pairs: list[tuple[str, Any]]) -> dict:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):  # parsers disagree on which value wins
            dup = next(k for k in keys if keys.count(k) > 1)
            raise DataError(f"{where}: bundle.json has the key {dup!r} twice in one object")
        return dict(pairs)

    try:
        meta = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: bundle.json is not valid JSON ({exc.msg} at line "
                        f"{exc.lineno}, column {exc.colno})") from None
    except (RecursionError, ValueError) as exc:  # nesting too deep, integers too long
        raise DataError(f"{where}: bundle.json cannot be parsed "
                        f"({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{where}: bundle.json must be a JSON object, got {_kind(meta)}")
    return meta


def parse_metadata(raw: bytes, where: str, *, format_name: str, version: int,
                   nan_policies: tuple[str, ...], model_member: str) -> dict[str, Any]:
    """The checked fields of a bundle's ``bundle.json``.

    Parameters
    ----------
    raw
        The member's bytes.
    where
        The file, named in every error.
    format_name, version, nan_policies, model_member
        What the running code supports.

    Returns
    -------
    dict
        Every field of :data:`FIELDS`, checked (``means`` and ``stds`` as float lists).

    Raises
    ------
    DataError
        Naming the field: not JSON, not an object, another format, an unsupported
        version, unknown or missing fields, or a field of the wrong type or value.
    """
    meta = _decode(raw, where)
    c = _Checker(where)
    if meta.get("format") != format_name:
        raise DataError(f"{where}: not a model bundle (bundle.json field 'format' is "
                        f"{_short(meta.get('format'))}, expected {format_name!r})")
    v = meta.get("format_version")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise c.fail("format_version", f"expected a positive integer, got {_short(v)}")
    if v > version:
        raise DataError(f"{where}: bundle format version {v} is newer than this "
                        f"alphatrade_lab supports ({version}); upgrade it")
    unknown = sorted(set(meta) - set(FIELDS))
    if unknown:
        raise DataError(f"{where}: bundle.json has unknown field(s) {unknown}")
    missing = [k for k in FIELDS if k not in meta]
    if missing:
        raise DataError(f"{where}: bundle.json is missing field(s) {missing}")

    names = meta["feature_names"]
    if names is not None:
        c.of_type("feature_names", names, list, "an array of strings")
        for i, n in enumerate(names):
            if not isinstance(n, str) or not n:
                raise c.fail("feature_names", f"item {i} is {_short(n)}, not a non-empty "
                             "string")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise c.fail("feature_names", f"duplicate names {dup}")
    k = None if names is None else len(names)
    meta["means"] = c.numbers("means", meta["means"], k, nonnegative=False)
    meta["stds"] = c.numbers("stds", meta["stds"], len(meta["means"]), nonnegative=True)

    classes = c.of_type("classes", meta["classes"], list, "an array")
    if not classes:
        raise c.fail("classes", "empty")
    for i, cl in enumerate(classes):
        if not isinstance(cl, str | int | float) or (isinstance(cl, float)
                                                     and not math.isfinite(cl)):
            raise c.fail("classes", f"item {i} is {_short(cl)}, not a string or finite "
                         "number")
    if len(set(classes)) != len(classes):  # as Python compares them: 1, 1.0 and true collide
        raise c.fail("classes", f"duplicate labels in {_short(classes)}")

    from alphatrade_lab.features import FeatureSpec
    from alphatrade_lab.models.labels import LabelSpec

    for key, cls in (("feature_spec", FeatureSpec), ("label_spec", LabelSpec)):
        spec = c.of_type(key, meta[key], dict, "an object", nullable=True)
        if spec is not None:
            try:
                cls.from_dict(spec)
            except (TypeError, ValueError) as exc:
                raise c.fail(key, f"not a valid {cls.__name__} ({exc})") from None

    policy = meta["nan_policy"]
    if policy not in nan_policies or not isinstance(policy, str):
        raise c.fail("nan_policy", f"{_short(policy)} is not one of {list(nan_policies)}")
    mm = c.of_type("max_missing", meta["max_missing"], int | float, "a number")
    if not 0.0 <= mm <= 1.0:  # also refuses NaN
        raise c.fail("max_missing", f"{mm} is not in [0, 1]")

    metrics = c.of_type("metrics", meta["metrics"], dict, "an object")
    folds = metrics.get("folds")
    if folds is not None and (not isinstance(folds, list) or not all(
            isinstance(f, dict) and "fold" in f for f in folds)):
        raise c.fail("metrics", "'folds' must be an array of objects with a 'fold' key")
    c.hex64("fingerprint", meta["fingerprint"], nullable=True)
    versions = c.of_type("versions", meta["versions"], dict, "an object")
    bad = [name for name, val in versions.items() if not isinstance(val, str)]
    if bad:
        raise c.fail("versions", f"the version of {bad[0]!r} is not a string")
    created = c.of_type("created", meta["created"], str, "an ISO 8601 time")
    try:
        datetime.fromisoformat(created)
    except ValueError:
        raise c.fail("created", f"{_short(created)} is not an ISO 8601 time") from None
    c.of_type("meta", meta["meta"], dict, "an object")
    if meta["model_file"] != model_member:
        raise c.fail("model_file", f"expected {model_member!r}, got "
                     f"{_short(meta['model_file'])}")
    c.hex64("model_sha256", meta["model_sha256"])
    return meta
