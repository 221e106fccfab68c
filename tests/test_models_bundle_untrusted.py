"""Untrusted model files: no code runs without opt-in, bombs are refused with bounded
memory, and every malformed bundle is named at load time (issue 14, items 1, 9 and 12)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.models import (
    BundleIntegrityError,
    LegacyBundleWarning,
    ModelBundle,
    UntrustedBundleError,
    load_bundle,
    save_bundle,
)

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30


class Payload:
    """The issue's reproducer: unpickling runs a shell command."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def small_model():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = (X["a"] > 0).astype(int).to_numpy()
    return LogisticRegression().fit(X, y), X


@pytest.fixture(scope="module")
def saved(small_model, tmp_path_factory):
    model, X = small_model
    b = ModelBundle(model, ["a", "b", "c"], X.mean(), X.std(), [0, 1],
                    feature_spec=atl.features.FeatureSpec().to_dict(),
                    label_spec=atl.models.LabelSpec().to_dict(), fingerprint="0" * 64)
    return save_bundle(b, tmp_path_factory.mktemp("saved") / "m.atlb")


def _members(path: Path) -> tuple[dict, bytes]:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("bundle.json")), zf.read("model.skops")


def _write(out: Path, meta: dict | bytes, model: bytes) -> Path:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bundle.json", meta if isinstance(meta, bytes) else json.dumps(meta))
        zf.writestr("model.skops", model)
    return out


# --------------------------------------------------------------------- item 1: pickles
@pytest.fixture()
def evil(tmp_path, monkeypatch):
    """The reproducer pickle with a correct sidecar, in a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Payload()))
    (tmp_path / "model.pkl.sha256").write_text(f"{_sha(path.read_bytes())}  model.pkl\n")
    return path


def test_a_matching_sidecar_does_not_allow_unpickling(evil, tmp_path):
    with pytest.raises(UntrustedBundleError, match="allow_pickle") as info:
        load_bundle(evil)
    assert "sidecar" in str(info.value) and str(evil) in str(info.value)
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(UntrustedBundleError, match="does not match"):
        load_bundle(evil, sha256="ab" * 32)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("sidecar", ["", "\n\n", "not a hash  model.pkl\n", "ab" * 32,
                                     "é" * 10, "0" * 64 + "  model.pkl\n"])
def test_with_allow_pickle_a_bad_sidecar_still_refuses(evil, tmp_path, sidecar):
    (tmp_path / "model.pkl.sha256").write_text(sidecar)
    with pytest.raises(BundleIntegrityError, match="sidecar"):
        load_bundle(evil, allow_pickle=True)
    assert not (tmp_path / "PWNED").exists()


def test_sidecar_that_is_not_a_regular_file_refuses(evil, tmp_path):
    side = tmp_path / "model.pkl.sha256"
    side.unlink()
    os.mkfifo(side)  # reading it would block forever
    with pytest.raises(BundleIntegrityError, match="regular file"):
        load_bundle(evil, allow_pickle=True)
    assert not (tmp_path / "PWNED").exists()


def test_caller_hash_loads_a_vetted_legacy_file(small_model, tmp_path):
    model, _ = small_model
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps({"model": model, "feature_names": ["a", "b", "c"]}))
    with pytest.raises(UntrustedBundleError, match="does not match"):
        load_bundle(path, sha256=_sha(path.read_bytes()[:-1]))
    with pytest.warns(LegacyBundleWarning):
        b = load_bundle(path, sha256=_sha(path.read_bytes()).upper())
    assert b.feature_names == ["a", "b", "c"]
    with pytest.raises(ValueError, match="64 hex"):
        load_bundle(path, sha256="xyz")


def test_garbage_unpickled_with_opt_in_is_a_data_error(tmp_path):
    path = tmp_path / "junk.pkl"
    path.write_bytes(b"\x80\x05this is not a pickle")
    with pytest.raises(DataError, match="junk.pkl"):
        load_bundle(path, allow_pickle=True)
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_bundle(tmp_path / "empty.pkl", allow_pickle=True)
    with pytest.raises(DataError, match="regular file"):
        load_bundle(tmp_path)


# ----------------------------------------------------------------- item 12: sidecar of zips
@pytest.mark.parametrize("sidecar", ["", "   \n", "garbage\n", "00ff  m.atlb\n"])
def test_empty_or_garbled_sidecar_of_a_bundle_refuses(saved, tmp_path, sidecar):
    path = tmp_path / "m.atlb"
    path.write_bytes(saved.read_bytes())
    (tmp_path / "m.atlb.sha256").write_text(sidecar)
    with pytest.raises(BundleIntegrityError, match="sidecar"):
        load_bundle(path)


def test_sidecar_listing_several_files_uses_the_line_naming_the_bundle(saved, tmp_path):
    path = tmp_path / "m.atlb"
    path.write_bytes(saved.read_bytes())
    side = tmp_path / "m.atlb.sha256"
    side.write_text(f"{'1' * 64}  other.atlb\n{_sha(path.read_bytes())} *m.atlb\n")
    assert load_bundle(path).feature_names == ["a", "b", "c"]
    side.write_text(f"{'1' * 64}  other.atlb\n{'2' * 64}  third.atlb\n")
    with pytest.raises(BundleIntegrityError, match="m.atlb"):
        load_bundle(path)


# ----------------------------------------------------------------------- item 9: bombs
def _zeros_deflate(n_mib: int) -> bytes:
    """A raw deflate stream of ``n_mib`` MiB of zeros, built in milliseconds: after a full
    flush the compressor starts afresh, so every 1 MiB block compresses identically."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(2**20)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * n_mib + c.flush()


def _zeros_crc(n_mib: int) -> int:
    crc, block = 0, bytes(2**20)
    for _ in range(n_mib):
        crc = zlib.crc32(block, crc)
    return crc


def _raw_zip(members: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """A zip from (name, method, compressed bytes, crc, declared size) without recompressing,
    so a member's declared size can differ from what its data inflates to."""
    out, central = bytearray(), bytearray()
    for name, method, data, crc, size in members:
        fn = name.encode()
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc,
                           len(data), size, len(fn), 0) + fn + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc,
                               len(data), size, len(fn), 0, 0, 0, 0, 0, offset) + fn
    return bytes(out + central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members),
                                             len(members), len(central), len(out), 0))


def _stored(name: str, data: bytes) -> tuple[str, int, bytes, int, int]:
    return (name, 0, data, zlib.crc32(data), len(data))


@pytest.fixture(scope="module")
def bombs(saved, tmp_path_factory):
    """Bomb files, all loaded in one fresh process whose peak RSS growth is measured."""
    d = tmp_path_factory.mktemp("bombs")
    meta, model = _members(saved)
    gib = _zeros_deflate(1024)
    gib_crc, mib_crc = _zeros_crc(1024), _zeros_crc(1)
    meta_bytes = json.dumps(meta).encode()
    files = {
        # honest headers: 1 MB files that declare 1 GiB members
        "model": [_stored("bundle.json", meta_bytes), ("model.skops", 8, gib, gib_crc, GIB)],
        "json": [("bundle.json", 8, gib, gib_crc, GIB), _stored("model.skops", model)],
        # within the size limit, but a ratio of about 1,000
        "ratio": [_stored("bundle.json", meta_bytes),
                  ("model.skops", 8, _zeros_deflate(400), _zeros_crc(400), 400 * 2**20)],
        # lying header: declares 1 MiB (ratio 1), the data inflates to 1 GiB
        "lying": [_stored("bundle.json", meta_bytes), ("model.skops", 8, gib, mib_crc, 2**20)],
    }
    # a valid outer bundle whose inner skops archive has a lying schema.json
    inner = _raw_zip([("schema.json", 8, gib, mib_crc, 2**20)])
    files["inner"] = [_stored("bundle.json", json.dumps(
        {**meta, "model_sha256": _sha(inner)}).encode()), _stored("model.skops", inner)]
    paths = {}
    for key, members in files.items():
        paths[key] = d / f"{key}.atlb"
        paths[key].write_bytes(_raw_zip(members))
        assert paths[key].stat().st_size < 2_200_000
    script = textwrap.dedent("""
        import json, resource, sys
        from alphatrade_lab.models import load_bundle
        load_bundle(sys.argv[1])  # warm up: every lazy import happens before the baseline
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB
        base, out = peak(), {}
        for key, path in zip(sys.argv[2::2], sys.argv[3::2]):
            try:
                load_bundle(path)
                out[key] = ["ok", "", peak() - base]
            except Exception as exc:
                out[key] = [type(exc).__name__, str(exc), peak() - base]
        print(json.dumps(out))
    """)
    args = [str(saved)] + [x for k, p in paths.items() for x in (k, str(p))]
    res = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("key", "member", "match"), [
    ("model", "model.skops", "ratio|limit"),
    ("json", "bundle.json", "ratio|limit"),
    ("ratio", "model.skops", "ratio"),
    ("lying", "model.skops", ""),
    ("inner", "schema.json", ""),
])
@pytest.mark.slow
def test_bombs_are_refused_with_bounded_memory(bombs, key, member, match):
    name, message, growth_mib = bombs[key]
    assert name in ("DataError", "BundleIntegrityError"), (name, message)
    assert f"{key}.atlb" in message
    if match:
        assert member in message
        assert pd.Series([message]).str.contains(match).all(), message
    assert growth_mib < 200, f"peak RSS grew by {growth_mib:.0f} MiB"


def test_declared_sizes_are_checked_before_reading(saved, tmp_path):
    meta, model = _members(saved)
    path = tmp_path / "big.atlb"
    # a stored (ratio 1) model larger than the caller's limit
    path.write_bytes(_raw_zip([_stored("bundle.json", json.dumps(meta).encode()),
                               _stored("model.skops", model)]))
    with pytest.raises(DataError, match="limit"):
        load_bundle(path, max_bytes=len(model) // 2)
    assert load_bundle(path).feature_names == ["a", "b", "c"]
    # metadata of 3 MiB, stored (ratio 1): over its own limit, refused before parsing
    big = b"[" + b"{}," * 2**20 + b"{}]"
    path.write_bytes(_raw_zip([_stored("bundle.json", big), _stored("model.skops", model)]))
    with pytest.raises(DataError, match="'bundle.json'.*limit"):
        load_bundle(path)


@pytest.mark.parametrize("case", ["bzip2", "extra", "duplicate", "encrypted", "npy_shape",
                                  "npy_object", "only_json"])
def test_unsupported_archive_content_is_refused(saved, tmp_path, case):
    meta, model = _members(saved)
    mj = json.dumps(meta).encode()
    members = [_stored("bundle.json", mj), _stored("model.skops", model)]
    if case == "bzip2":
        members[1] = ("model.skops", 12, __import__("bz2").compress(model), zlib.crc32(model),
                      len(model))
    elif case == "extra":
        members.append(_stored("notes.txt", b"hi"))
    elif case == "duplicate":
        members.append(_stored("bundle.json", mj))
    elif case == "encrypted":
        raw = bytearray(_raw_zip(members))
        # set the "encrypted" flag bit in the central directory entry of model.skops
        at = raw.rfind(b"PK\x01\x02")
        raw[at + 8] |= 1
        (tmp_path / "x.atlb").write_bytes(bytes(raw))
    elif case == "only_json":
        members = [members[0]]
    else:
        with zipfile.ZipFile(io.BytesIO(model)) as zf:
            inner = {n: zf.read(n) for n in zf.namelist()}
        npy = next(n for n in inner if n.endswith(".npy"))
        buf = io.BytesIO()
        if case == "npy_shape":  # header declares 8 GiB, the member holds a few bytes
            np.lib.format.write_array_header_1_0(
                buf, {"descr": "<f8", "fortran_order": False, "shape": (2**30,)})
            inner[npy] = buf.getvalue() + b"\0" * 64
        else:
            np.lib.format.write_array_header_1_0(
                buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
            inner[npy] = buf.getvalue() + pickle.dumps(Payload())
        model = _raw_zip([_stored(n, b) for n, b in inner.items()])
        meta["model_sha256"] = _sha(model)
        members = [_stored("bundle.json", json.dumps(meta).encode()),
                   _stored("model.skops", model)]
    if case != "encrypted":
        (tmp_path / "x.atlb").write_bytes(_raw_zip(members))
    with pytest.raises(DataError, match="x.atlb") as info:
        load_bundle(tmp_path / "x.atlb")
    assert not isinstance(info.value, UntrustedBundleError) or case == "npy_object"
    assert not (tmp_path / "PWNED").exists()


def test_truncated_or_damaged_zip_is_a_data_error(saved, tmp_path):
    data = saved.read_bytes()
    cuts = [4, 30, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1]
    for i, cut in enumerate(cuts):
        p = tmp_path / f"cut{i}.atlb"
        p.write_bytes(data[:cut])
        with pytest.raises(DataError, match=f"cut{i}.atlb") as info:
            load_bundle(p)
        assert not isinstance(info.value, UntrustedBundleError), info.value  # not "a pickle"
    rng = np.random.default_rng(1)
    for i, at in enumerate(rng.integers(0, len(data), 40)):
        bad = bytearray(data)
        bad[at] ^= 0xFF
        p = tmp_path / f"flip{i}.atlb"
        p.write_bytes(bytes(bad))
        try:
            load_bundle(p)  # a flip in unused header bytes may still load
        except DataError as exc:
            assert f"flip{i}.atlb" in str(exc)


# ------------------------------------------------------------- item 12: bad metadata
def _set(**kw):
    return lambda m: m.update(kw)


def _drop(key):
    return lambda m: m.pop(key)


BAD_METADATA = [
    # (id, edit of the meta dict or raw bytes of bundle.json, expected words)
    ("not_utf8", b"\xff\xfe{}", "UTF-8"),
    ("not_json", b"{'format': 1}", "not valid JSON"),
    ("truncated_json", b'{"format": "alphatrade_lab.model_bundle", ', "not valid JSON"),
    ("not_object", b"[1, 2, 3]", "JSON object"),
    ("deep_nesting", b"[" * 200_000 + b"]" * 200_000, "cannot be parsed"),
    ("huge_integer", b'{"format": ' + b"9" * 5000 + b"}", "cannot be parsed"),
    ("duplicate_key", b'{"format_version": 1, "format_version": 99}', "'format_version' twice"),
    ("format_missing", _drop("format"), "'format'"),
    ("format_other", _set(format="sklearn"), "'format'"),
    ("version_true", _set(format_version=True), "'format_version'"),
    ("version_string", _set(format_version="1"), "'format_version'"),
    ("version_float", _set(format_version=2.5), "'format_version'"),
    ("version_zero", _set(format_version=0), "'format_version'"),
    ("version_missing", _drop("format_version"), "'format_version'"),
    ("version_future", _set(format_version=2), "newer"),
    ("unknown_key", _set(colour="blue"), "unknown field.*'colour'"),
    ("missing_means", _drop("means"), "missing field.*'means'"),
    ("missing_model_sha", _drop("model_sha256"), "missing field.*'model_sha256'"),
    ("names_string", _set(feature_names="abc"), "'feature_names'"),
    ("names_numbers", _set(feature_names=[1, 2, 3]), "'feature_names'"),
    ("names_empty_string", _set(feature_names=["a", "", "c"]), "'feature_names'"),
    ("names_duplicate", _set(feature_names=["a", "a", "c"]), "'feature_names'.*duplicate"),
    ("names_reordered", _set(feature_names=["c", "b", "a"]), "feature_names"),
    ("names_too_few", _set(feature_names=["a", "b"], means=[0, 0], stds=[1, 1]), "feature_names"),
    ("means_length", _set(means=[0.0, 1.0]), "'means'.*2 values for 3"),
    ("means_text", _set(means=["0", 1, 2]), "'means'"),
    ("means_bool", _set(means=[True, 1, 2]), "'means'"),
    ("means_inf", lambda m: m.update(means=[float("inf"), 0, 0]), "'means'"),
    ("means_object", _set(means={"a": 1}), "'means'"),
    ("stds_negative", _set(stds=[1, -1, 1]), "'stds'"),
    ("classes_object", _set(classes={"0": 1}), "'classes'"),
    ("classes_empty", _set(classes=[]), "'classes'"),
    ("classes_duplicate", _set(classes=[1, 1.0]), "'classes'"),
    ("classes_nested", _set(classes=[[0], [1]]), "'classes'"),
    ("classes_other_than_model", _set(classes=[0, 2]), "classes"),
    ("nan_policy_unknown", _set(nan_policy="median"), "'nan_policy'"),
    ("nan_policy_list", _set(nan_policy=["mean"]), "'nan_policy'"),
    ("max_missing_bool", _set(max_missing=True), "'max_missing'"),
    ("max_missing_text", _set(max_missing="0.2"), "'max_missing'"),
    ("max_missing_range", _set(max_missing=1.5), "'max_missing'"),
    ("max_missing_nan", lambda m: m.update(max_missing=float("nan")), "'max_missing'"),
    ("feature_spec_text", _set(feature_spec="technical"), "'feature_spec'"),
    ("feature_spec_unknown", _set(feature_spec={"bogus": 1}), "'feature_spec'"),
    ("feature_spec_bad_window", _set(feature_spec={"rsi_window": -3}), "'feature_spec'"),
    ("label_spec_bad", _set(label_spec={"horizon": "x"}), "'label_spec'"),
    ("metrics_list", _set(metrics=[1]), "'metrics'"),
    ("metrics_folds", _set(metrics={"folds": [{"accuracy": 1}]}), "'metrics'"),
    ("fingerprint_not_hex", _set(fingerprint="xyz"), "'fingerprint'"),
    ("versions_list", _set(versions=["1.0"]), "'versions'"),
    ("versions_number", _set(versions={"scikit-learn": 1.5}), "'versions'"),
    ("created_number", _set(created=5), "'created'"),
    ("created_text", _set(created="yesterday"), "'created'"),
    ("meta_text", _set(meta="x"), "'meta'"),
    ("model_file_other", _set(model_file="other.skops"), "'model_file'"),
    ("model_file_meta", _set(model_file="bundle.json"), "'model_file'"),
    ("model_sha_short", _set(model_sha256="abc"), "'model_sha256'"),
    ("model_sha_number", _set(model_sha256=5), "'model_sha256'"),
]


@pytest.mark.parametrize(("edit", "match"), [c[1:] for c in BAD_METADATA],
                         ids=[c[0] for c in BAD_METADATA])
def test_bad_metadata_is_named_at_load_time(saved, tmp_path, edit, match):
    meta, model = _members(saved)
    if isinstance(edit, bytes):
        raw = edit
    else:
        edit(meta)
        raw = json.dumps(meta).encode()
    path = _write(tmp_path / "bad.atlb", raw, model)
    with pytest.raises(DataError, match=match) as info:
        load_bundle(path)
    assert str(path) in str(info.value)


def test_a_secret_in_a_bad_field_is_not_echoed(saved, tmp_path, monkeypatch):
    """Values quoted in metadata errors are redacted before they are cut short."""
    secret = "Q7fZ2mX9kL4pR8sT1vW6yB3nH5jD0cA"
    monkeypatch.setenv("VENDOR_API_KEY", secret)   # a known secret, configured
    meta, model = _members(saved)
    meta["format_version"] = "v" * 20 + secret   # cut inside the secret
    with pytest.raises(DataError, match="'format_version'") as info:
        load_bundle(_write(tmp_path / "leaky.atlb", meta, model))
    text = str(info.value)
    assert not any(secret[i:i + 8] in text for i in range(len(secret) - 7)), text


def test_nan_statistics_are_allowed(saved, tmp_path):
    """``save_bundle`` writes NaN for unknown means (JSON's NaN literal): still valid."""
    meta, model = _members(saved)
    meta["means"] = [float("nan"), 0.0, 0.0]
    b = load_bundle(_write(tmp_path / "nan.atlb", meta, model))
    assert np.isnan(b.means[0])


@pytest.mark.parametrize(("change", "match"), [
    ({"means": [0.0, 1.0]}, "'means'"),
    ({"classes": [0, 2]}, "classes"),
    ({"feature_names": ["a", "a", "b"]}, "duplicate"),
    ({"fingerprint": "not a hash"}, "'fingerprint'"),
])
def test_save_refuses_what_load_would_refuse(small_model, tmp_path, change, match):
    model, X = small_model
    fields = {"model": model, "feature_names": ["a", "b", "c"], "means": X.mean(),
              "stds": X.std(), "classes": [0, 1]}
    with pytest.raises(DataError, match=match):
        save_bundle(ModelBundle(**{**fields, **change}), tmp_path / "m.atlb")
    assert list(tmp_path.iterdir()) == []  # nothing written
    save_bundle(ModelBundle(**fields), tmp_path / "m.atlb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.atlb", "m.atlb.sha256"]
