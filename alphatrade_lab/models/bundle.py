"""Model bundles: a fitted model with everything needed to use it safely later.

File format (version 1)
-----------------------
One zip file (suffix of your choice, ``.atlb`` by convention) with two members:

``bundle.json``
    ``format`` (``"alphatrade_lab.model_bundle"``), ``format_version``, the feature
    names in training order, the training means and standard deviations, the class
    labels, the feature spec and label spec, the NaN policy, the allowed share of
    missing features, library versions, a fingerprint (SHA-256) of the training data,
    the validation metrics, the creation time (UTC, ISO 8601) and ``model_sha256``.
``model.skops``
    The estimator in the skops format (no pickle).

Security
--------
A model file is untrusted input. Loading never unpickles a bundle: the model is read with
:func:`skops.io.loads`, which only rebuilds types it is told to trust. Before that,
:func:`load_bundle` reads the zip within limits (each member's declared size and
compression ratio are checked before it is read, and reads stop at a hard byte count:
see :mod:`alphatrade_lab.models._archive`), checks every field of ``bundle.json`` (a bad
one is a :class:`~alphatrade_lab.errors.DataError` naming the file and the field), checks
``model_sha256`` (a corrupted or edited model member is refused) and lists the types the
model needs: any type outside skops' defaults, :data:`TRUSTED_TYPES` and the caller's
``trusted_types`` is refused with :class:`UntrustedBundleError` naming it. The whole file
is also checked against ``sha256=`` and against the sidecar ``<path>.sha256`` that
:func:`save_bundle` writes, when there is one (an empty or unreadable sidecar is refused,
not skipped). The hashes only catch accidents: whoever edits the file can edit the hashes
next to it. The explicit trusted-type list is what protects against a malicious file.

Legacy files (what older code saved with pickle/joblib: a dict with a ``"model"`` key,
or a bare estimator) can run arbitrary code when unpickled. They are unpickled only with
``allow_pickle=True``, or when their SHA-256 matches the ``sha256=`` the caller passes
after vetting the file. A sidecar ``<path>.sha256`` never allows unpickling (whoever can
write the file can write its sidecar); with one of those opt-ins it is checked as well.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import platform
import stat
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.errors import (
    BundleIntegrityError,
    DataError,
    FeatureMismatchWarning,
    LegacyBundleWarning,
    UntrustedBundleError,
    VersionMismatchWarning,
)
from alphatrade_lab.models import _archive, _metadata

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "NAN_POLICIES",
    "TRUSTED_TYPES",
    "BundleIntegrityError",
    "FeatureMismatchWarning",
    "LegacyBundleWarning",
    "ModelBundle",
    "UntrustedBundleError",
    "VersionMismatchWarning",
    "load_bundle",
    "save_bundle",
]

BUNDLE_FORMAT = "alphatrade_lab.model_bundle"
BUNDLE_VERSION = 1
NAN_POLICIES: tuple[str, ...] = ("mean", "zero", "passthrough", "error")
_KEYS = ("timestamp", "symbol")
_META = "bundle.json"
_MODEL = "model.skops"
_SIDECAR_BYTES = 2**16

#: Types trusted on top of skops' defaults (exact names, as listed by
#: ``skops.io.get_untrusted_types``): the tree structures of scikit-learn's forests and
#: gradient boosting, and numpy dtypes.
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries a bundle depends on."""
    import numba
    import sklearn

    try:
        from alphatrade_lab import __version__ as atl_version
    except ImportError:  # pragma: no cover
        atl_version = "unknown"
    return {"python": platform.python_version(), "alphatrade_lab": atl_version,
            "scikit-learn": sklearn.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "numba": numba.__version__}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, pd.Timestamp | datetime):
        return obj.isoformat()
    if isinstance(obj, pd.Timedelta):
        return str(obj)
    if isinstance(obj, np.integer | np.bool_):
        return obj.item()
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


@dataclass
class ModelBundle:
    """A fitted classifier with its features, statistics, specs, metrics and provenance.

    Made by :func:`~alphatrade_lab.models.train`; saved and loaded with
    :func:`save_bundle` / :func:`load_bundle`. The estimator is fitted on a float64
    array whose columns are ``feature_names`` in order.

    Attributes
    ----------
    model
        The fitted scikit-learn classifier.
    feature_names
        The feature columns in training order (None only for a legacy file without
        names; then inputs must be arrays of the right width).
    means, stds
        Training mean and standard deviation (ddof=1) of each feature (NaN if unknown).
    classes
        The class labels, the column order of :meth:`predict_proba`.
    feature_spec, label_spec
        ``FeatureSpec.to_dict()`` / ``LabelSpec.to_dict()`` used to build the training
        data (None if unknown).
    nan_policy
        What :meth:`predict_proba` does with NaN inputs: ``"mean"`` (fill with the
        training mean), ``"zero"``, ``"passthrough"`` (the model handles NaN) or
        ``"error"``.
    max_missing
        Largest share of missing feature columns that is filled with training means
        (with a warning); more is an error.
    metrics, fingerprint, versions, created, meta
        Validation results, SHA-256 of the training data, library versions, creation
        time (ISO 8601 UTC) and free-form extras.
    """

    model: Any
    feature_names: list[str] | None
    means: np.ndarray
    stds: np.ndarray
    classes: list
    feature_spec: dict | None = None
    label_spec: dict | None = None
    nan_policy: str = "mean"
    max_missing: float = 0.2
    metrics: dict = field(default_factory=dict)
    fingerprint: str | None = None
    versions: dict = field(default_factory=library_versions)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy {self.nan_policy!r} is not one of {NAN_POLICIES}")
        if not 0.0 <= float(self.max_missing) <= 1.0:
            raise ValueError(f"max_missing must be in [0, 1], got {self.max_missing!r}")
        if self.feature_names is not None:
            self.feature_names = [str(c) for c in self.feature_names]
        k = self.n_features
        self.means = np.asarray(self.means if self.means is not None else np.full(k, np.nan),
                                dtype=np.float64)
        self.stds = np.asarray(self.stds if self.stds is not None else np.full(k, np.nan),
                               dtype=np.float64)
        self.classes = [c.item() if isinstance(c, np.generic) else c for c in self.classes]

    # ------------------------------------------------------------------ properties
    @property
    def n_features(self) -> int:
        """Number of model inputs."""
        if self.feature_names is not None:
            return len(self.feature_names)
        return int(getattr(self.model, "n_features_in_", 0))

    @property
    def spec(self):
        """The :class:`~alphatrade_lab.features.FeatureSpec`, or None if not recorded."""
        if self.feature_spec is None:
            return None
        from alphatrade_lab.features import FeatureSpec

        return FeatureSpec.from_dict(self.feature_spec)

    def metrics_frame(self) -> pd.DataFrame:
        """The per-fold validation metrics as a frame (one row per fold)."""
        return pd.DataFrame(self.metrics.get("folds", [])).set_index("fold") \
            if self.metrics.get("folds") else pd.DataFrame()

    # ------------------------------------------------------------------ alignment
    def column_plan(self, columns: Sequence[str]) -> tuple[np.ndarray, list[str], list[str]]:
        """Where each bundle feature is in ``columns`` (-1 if missing), the missing names
        and the extra names. Raises DataError when too many are missing."""
        if self.feature_names is None:
            raise DataError("this legacy bundle has no feature names, so inputs cannot be "
                            "aligned by name: pass a float array with the training column "
                            "order, or load it with load_bundle(..., feature_names=[...])")
        cols = [str(c) for c in columns]
        where = {c: i for i, c in enumerate(cols)}
        idx = np.array([where.get(f, -1) for f in self.feature_names], dtype=np.int64)
        missing = [f for f, i in zip(self.feature_names, idx, strict=True) if i < 0]
        wanted = set(self.feature_names)
        extra = [c for c in cols if c not in wanted]
        if missing and len(missing) > self.max_missing * len(self.feature_names):
            raise DataError(f"predict: {len(missing)} of {len(self.feature_names)} features "
                            f"are missing (more than max_missing={self.max_missing:.0%}): "
                            f"{missing}")
        no_mean = [f for f in missing if not np.isfinite(self.means[self.feature_names.index(f)])]
        if no_mean:
            raise DataError(f"predict: features {no_mean} are missing and the bundle has no "
                            "training mean to fill them with")
        return idx, missing, extra

    def align(self, X: pd.DataFrame | np.ndarray, *, warn: bool = True) -> np.ndarray:
        """The model's input matrix: columns of ``X`` reordered by name to the training
        order, missing ones filled with training means, extras dropped, then the NaN
        policy applied.

        ``X`` is a DataFrame (``timestamp``/``symbol`` columns are ignored) or a 2-D array
        already in training order with exactly :attr:`n_features` columns.
        """
        if isinstance(X, pd.DataFrame):
            cols = [c for c in X.columns if c not in _KEYS]
            idx, missing, extra = self.column_plan(cols)
            if warn and missing:
                warnings.warn(f"{len(missing)} feature(s) missing from the input, filled with "
                              f"their training means: {missing}", FeatureMismatchWarning,
                              stacklevel=3)
            if warn and extra:
                warnings.warn(f"{len(extra)} column(s) not used by the model were dropped: "
                              f"{extra}", FeatureMismatchWarning, stacklevel=3)
            used = [cols[i] for i in idx if i >= 0]
            bad = [c for c in used if not pd.api.types.is_numeric_dtype(X[c].dtype)
                   or pd.api.types.is_bool_dtype(X[c].dtype)]
            if bad:
                raise DataError(f"predict, column {bad[0]!r}: expected numbers, got dtype "
                                f"{X[bad[0]].dtype}")
            A = np.empty((len(X), len(idx)), dtype=np.float64)
            for j, i in enumerate(idx):
                if i >= 0:
                    A[:, j] = X[cols[i]].to_numpy(dtype=np.float64, na_value=np.nan)
                else:
                    A[:, j] = self.means[j]
        else:
            A = np.asarray(X, dtype=np.float64)
            if A.ndim != 2 or A.shape[1] != self.n_features:
                raise DataError(f"predict: an array input needs shape (n, {self.n_features}) "
                                f"in training column order, got {A.shape}; pass a DataFrame "
                                "to align columns by name")
            A = A.copy()
        return self.apply_nan_policy(A)

    def apply_nan_policy(self, A: np.ndarray) -> np.ndarray:
        """Apply :attr:`nan_policy` to a float matrix in training column order (in place)."""
        if self.nan_policy == "passthrough":
            return A
        nan = np.isnan(A)
        if not nan.any():
            return A
        if self.nan_policy == "error":
            r, c = np.argwhere(nan)[0]
            name = self.feature_names[c] if self.feature_names else str(c)
            raise DataError(f"predict, column {name!r}, row {r}: NaN input and the bundle's "
                            "nan_policy is 'error'")
        fill = self.means if self.nan_policy == "mean" else np.zeros(A.shape[1])
        if self.nan_policy == "mean" and not np.isfinite(fill[nan.any(axis=0)]).all():
            raise DataError("predict: NaN inputs in a column without a training mean")
        rows, cols = np.nonzero(nan)
        A[rows, cols] = fill[cols]
        return A

    # ------------------------------------------------------------------ prediction
    def proba_matrix(self, A: np.ndarray) -> np.ndarray:
        """``model.predict_proba`` of an aligned matrix, columns in :attr:`classes` order."""
        names_in = getattr(self.model, "feature_names_in_", None)
        if names_in is not None and len(names_in) == A.shape[1]:  # fitted on a DataFrame
            A = pd.DataFrame(A, columns=list(names_in))
        p = np.asarray(self.model.predict_proba(A), dtype=np.float64)
        model_classes = [c.item() if isinstance(c, np.generic) else c
                         for c in getattr(self.model, "classes_", self.classes)]
        if model_classes == self.classes:
            return p
        out = np.zeros((p.shape[0], len(self.classes)))
        for j, c in enumerate(model_classes):
            out[:, self.classes.index(c)] = p[:, j]
        return out

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Class probabilities, with the input aligned by column name (see :meth:`align`).

        Returns
        -------
        pandas.DataFrame
            One column per class (in :attr:`classes` order), the input's index.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from sklearn.linear_model import LogisticRegression
        >>> rng = np.random.default_rng(0)
        >>> X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
        >>> y = np.where(X["a"] > 0, 1, -1)
        >>> model = LogisticRegression().fit(X.to_numpy(), y)
        >>> b = ModelBundle(model, ["a", "b", "c"], X.mean(), X.std(), [-1, 1])
        >>> p1 = b.predict_proba(X)
        >>> p2 = b.predict_proba(X[["c", "a", "b"]])
        >>> bool(np.array_equal(p1.to_numpy(), p2.to_numpy())), list(p1.columns)
        (True, [-1, 1])
        """
        index = X.index if isinstance(X, pd.DataFrame) else None
        p = self.proba_matrix(self.align(X))
        return pd.DataFrame(p, index=index, columns=pd.Index(self.classes))

    def predict(self, X: pd.DataFrame | np.ndarray) -> pd.Series:
        """The most probable class of each row."""
        p = self.predict_proba(X)
        return pd.Series(np.asarray(self.classes)[p.to_numpy().argmax(axis=1)], index=p.index,
                         name="prediction")

    def save(self, path: str | Path) -> Path:
        """:func:`save_bundle` of this bundle."""
        return save_bundle(self, path)


# ---------------------------------------------------------------------- saving
def save_bundle(bundle: ModelBundle, path: str | Path) -> Path:
    """Write a bundle to one versioned file (format in the module docstring).

    Parameters
    ----------
    bundle
        A :class:`ModelBundle`.
    path
        Destination file (parents are created).

    Returns
    -------
    pathlib.Path
        The path written. Its SHA-256 is also written to ``<path>.sha256``
        (``sha256sum`` format) so the file can be checked before it is shipped. Both
        are replaced atomically.

    Raises
    ------
    DataError
        The bundle would not load back (a field :func:`load_bundle` refuses, or names,
        width or classes that differ from the model's); nothing is written.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = np.random.default_rng(0).normal(size=(50, 2)); y = (X[:, 0] > 0).astype(int)
    >>> b = ModelBundle(LogisticRegression().fit(X, y), ["a", "b"], X.mean(0), X.std(0), [0, 1])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     b2 = load_bundle(save_bundle(b, d + "/m.atlb"))
    >>> b2.feature_names, bool(np.allclose(b2.means, b.means))
    (['a', 'b'], True)
    """
    import skops.io as sio

    if not isinstance(bundle, ModelBundle):
        raise TypeError(f"save_bundle expects a ModelBundle, not {type(bundle).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model_bytes = sio.dumps(bundle.model)
    meta = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "feature_names": bundle.feature_names,
        "means": bundle.means.tolist(),
        "stds": bundle.stds.tolist(),
        "classes": bundle.classes,
        "feature_spec": bundle.feature_spec,
        "label_spec": bundle.label_spec,
        "nan_policy": bundle.nan_policy,
        "max_missing": bundle.max_missing,
        "metrics": bundle.metrics,
        "fingerprint": bundle.fingerprint,
        "versions": bundle.versions,
        "created": bundle.created,
        "meta": bundle.meta,
        "model_file": _MODEL,
        "model_sha256": _sha256(model_bytes),
    }
    meta_text = json.dumps(_jsonable(meta), indent=1, sort_keys=True)
    # Refuse now what load_bundle would refuse later.
    _metadata.parse_metadata(meta_text.encode(), f"save_bundle({path})",
                             format_name=BUNDLE_FORMAT, version=BUNDLE_VERSION,
                             nan_policies=NAN_POLICIES, model_member=_MODEL)
    _check_model(bundle, f"save_bundle({path})")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_META, meta_text)
        zf.writestr(_MODEL, model_bytes)
    data = buf.getvalue()
    _write_atomic(path, data)
    _write_atomic(Path(str(path) + ".sha256"), f"{_sha256(data)}  {path.name}\n".encode())
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` in one step: a crash leaves the old file or the new, not a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------- loading
def _load_skops(data: bytes, trusted_types: Sequence[str], where: str, max_bytes: int) -> Any:
    """The estimator of an untrusted skops archive (checked and rebuilt within limits)."""
    import skops.io as sio

    data = _archive.safe_skops(data, where, max_bytes)
    try:
        needed = sio.get_untrusted_types(data=data)
    except Exception as exc:  # whatever skops raises on a damaged schema
        raise DataError(f"{where}: the skops model cannot be read "
                        f"({type(exc).__name__}: {exc})") from None
    allowed = set(TRUSTED_TYPES) | set(trusted_types)
    refused = [t for t in needed if t not in allowed]
    if refused:
        raise UntrustedBundleError(f"{where}: the model needs types that are not trusted: "
                                   f"{refused}. Inspect the file; if you trust them, pass "
                                   "trusted_types=[...] to load_bundle")
    try:
        return sio.loads(data, trusted=needed)
    except Exception as exc:
        raise DataError(f"{where}: the skops model cannot be rebuilt "
                        f"({type(exc).__name__}: {exc})") from None


def _check_version(saved: str | None, where: str) -> None:
    import sklearn

    if saved and saved != sklearn.__version__:
        warnings.warn(f"{where} was saved with scikit-learn {saved}; running scikit-learn "
                      f"{sklearn.__version__}: predictions may differ or fail",
                      VersionMismatchWarning, stacklevel=3)


def _sidecar_hash(path: Path) -> str | None:
    """The SHA-256 that ``<path>.sha256`` records for ``path``, None without a sidecar.

    A sidecar that exists but is empty, unreadable or not in ``sha256sum`` format is a
    :class:`BundleIntegrityError`: it was meant to check the file, so it is not skipped.
    """
    side = Path(str(path) + ".sha256")
    where = f"{path}: the sidecar {side.name}"
    try:
        st = os.stat(side)
    except FileNotFoundError:
        if os.path.islink(side):
            raise BundleIntegrityError(f"{where} is a broken link") from None
        return None
    except OSError as exc:
        raise BundleIntegrityError(f"{where} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise BundleIntegrityError(f"{where} is not a regular file")
    try:
        with side.open("rb") as f:
            raw = f.read(_SIDECAR_BYTES + 1)
        text = raw.decode("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleIntegrityError(f"{where} is not a readable sha256sum file "
                                   f"({exc})") from None
    if len(raw) > _SIDECAR_BYTES:
        raise BundleIntegrityError(f"{where} is larger than {_SIDECAR_BYTES:,} bytes")
    entries = []
    for line in text.splitlines():
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        if not _is_sha256(parts[0]):
            raise BundleIntegrityError(f"{where} does not hold a SHA-256 (64 hex digits) "
                                       "in sha256sum format")
        name = parts[1].strip().removeprefix("*") if len(parts) > 1 else None
        entries.append((parts[0].lower(), name))
    if not entries:
        raise BundleIntegrityError(f"{where} is empty")
    named = [h for h, name in entries if name == path.name]
    if named:
        return named[0]
    if len(entries) == 1:  # one hash, maybe recorded under the name before a rename
        return entries[0][0]
    raise BundleIntegrityError(f"{where} lists {len(entries)} files but not {path.name}")


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def _check_integrity(path: Path, digest: str, sha256: str | None, side: str | None,
                     caller_error: type[DataError]) -> None:
    if sha256 is not None and digest != sha256:
        raise caller_error(f"{path}: its SHA-256 {digest} does not match the expected "
                           f"{sha256}")
    if side is not None and digest != side:
        raise BundleIntegrityError(f"{path}: SHA-256 {digest} does not match the sidecar "
                                   f"{path.name}.sha256: {side}")


def _load_legacy(path: Path, data: bytes, allow_pickle: bool, sha256: str | None,
                 feature_names: Sequence[str] | None) -> ModelBundle:
    digest = _sha256(data)
    if not allow_pickle and sha256 is None:
        raise UntrustedBundleError(
            f"{path} is a legacy pickle/joblib file, which can run arbitrary code when loaded; "
            "it was refused because neither allow_pickle=True nor sha256= was given (a "
            f"sidecar {path.name}.sha256 does not vouch for it: whoever can write the file "
            "can write the sidecar). Pass allow_pickle=True only for a file you trust, or "
            "sha256='<hex>' of the file you vetted")
    _check_integrity(path, digest, sha256, _sidecar_hash(path), UntrustedBundleError)
    import joblib
    from sklearn.exceptions import InconsistentVersionWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            obj = joblib.load(io.BytesIO(data))
        except Exception as exc:  # pickle, joblib and numpy raise many kinds on bad bytes
            raise DataError(f"{path}: not a readable pickle/joblib model file "
                            f"({type(exc).__name__}: {exc})") from None
    for w in caught:
        if isinstance(w.message, InconsistentVersionWarning):
            _check_version(w.message.original_sklearn_version, str(path))
            break
    else:
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    extras: dict[str, Any] = {}
    if isinstance(obj, dict):
        if "model" not in obj:
            raise DataError(f"{path}: legacy dict has no 'model' key (keys: "
                            f"{sorted(map(str, obj))})")
        model = obj["model"]
        extras = {k: v for k, v in obj.items() if k != "model"}
    else:
        model = obj
    if not hasattr(model, "predict_proba"):
        raise DataError(f"{path}: the legacy object {type(model).__name__} has no predict_proba")
    names = None if feature_names is None else list(feature_names)
    if names is None:
        for key in ("feature_names", "features", "columns"):
            if key in extras:
                names = list(extras[key])
                break
    if names is None and hasattr(model, "feature_names_in_"):
        names = list(model.feature_names_in_)
    means = extras.get("means", extras.get("feature_means"))
    if isinstance(means, dict | pd.Series) and names is not None:
        means = [pd.Series(means).get(n, np.nan) for n in names]
    k = len(names) if names is not None else int(getattr(model, "n_features_in_", 0))
    warnings.warn(f"{path} is a legacy model file: no feature spec or label spec"
                  + ("" if means is not None else ", no training means (missing features "
                     "cannot be filled)"), LegacyBundleWarning, stacklevel=3)
    try:
        means = np.asarray(means, dtype=np.float64) if means is not None else np.full(k, np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: the legacy training means are not numbers ({exc})") from None
    bundle = ModelBundle(model=model, feature_names=names, means=means,
                         stds=np.full(k, np.nan), classes=list(getattr(model, "classes_", [])),
                         meta={"legacy": True, "source": str(path), "sha256": digest},
                         versions={})
    _check_model(bundle, str(path))
    return bundle


def _check_model(bundle: ModelBundle, where: str) -> None:
    """The estimator agrees with the bundle's names, width and classes (checked at load,
    so a mismatch is not found only when predicting)."""
    model = bundle.model
    if not callable(getattr(model, "predict_proba", None)):
        raise DataError(f"{where}: the model {type(model).__name__} has no predict_proba")
    names_in = getattr(model, "feature_names_in_", None)
    if (names_in is not None and bundle.feature_names is not None
            and [str(n) for n in names_in] != bundle.feature_names):
        raise DataError(f"{where}: feature_names {bundle.feature_names} differ from the "
                        f"names the model was fitted with {[str(n) for n in names_in]}")
    n_in = getattr(model, "n_features_in_", None)
    if n_in is not None and bundle.feature_names is not None and int(n_in) != bundle.n_features:
        raise DataError(f"{where}: {bundle.n_features} feature_names for a model fitted on "
                        f"{int(n_in)} features")
    if len(bundle.means) != bundle.n_features or len(bundle.stds) != bundle.n_features:
        raise DataError(f"{where}: {len(bundle.means)} training means for "
                        f"{bundle.n_features} features")
    model_classes = getattr(model, "classes_", None)
    if model_classes is not None:
        got = [c.item() if isinstance(c, np.generic) else c for c in model_classes]
        if len(got) != len(bundle.classes) or any(c not in bundle.classes for c in got):
            raise DataError(f"{where}: classes {bundle.classes} differ from the model's "
                            f"classes {got}")


def load_bundle(path: str | Path, *, trusted_types: Sequence[str] = (),
                allow_pickle: bool = False, sha256: str | None = None,
                feature_names: Sequence[str] | None = None,
                max_bytes: int = _archive.MAX_MODEL_BYTES) -> ModelBundle:
    """Read a bundle written by :func:`save_bundle`, or a legacy model file.

    Parameters
    ----------
    path
        The file (untrusted: see the module's Security section).
    trusted_types
        Extra type names (as listed in the error) the skops model may contain, on top of
        skops' defaults and :data:`TRUSTED_TYPES`.
    allow_pickle
        Unpickle a legacy pickle/joblib file. Only for files you trust: unpickling can run
        arbitrary code.
    sha256
        Expected SHA-256 (64 hex digits) of the whole file; the file is refused if it
        differs. For legacy files, a match allows unpickling. Independently, a sidecar
        ``<path>.sha256`` (written by :func:`save_bundle`) is checked when present; it
        never allows unpickling.
    feature_names
        Feature names of a legacy model saved without them.
    max_bytes
        Largest file, and largest uncompressed model, accepted (default 512 MiB).

    Returns
    -------
    ModelBundle
        Legacy files give a bundle with ``meta["legacy"] = True`` (and a
        :class:`LegacyBundleWarning`): the model of a ``{"model": ...}`` dict (the old
        loader returned the dict), or the bare estimator.

    Raises
    ------
    BundleIntegrityError
        The model member or the file does not match its recorded SHA-256, or the sidecar
        is empty or unreadable.
    UntrustedBundleError
        The model needs untrusted types, or a legacy file was not vouched for.
    DataError
        Not a bundle, a damaged archive, a member over its size or compression limit, a
        bad ``bundle.json`` field (named), or a newer format version. The two errors
        above are DataErrors too.

    Warns
    -----
    VersionMismatchWarning
        The file was saved with another scikit-learn version (both are named).
    """
    if isinstance(trusted_types, str):
        raise TypeError("trusted_types must be a sequence of type names, not a string")
    trusted = tuple(str(t) for t in trusted_types)
    if sha256 is not None:
        if not isinstance(sha256, str) or not _is_sha256(sha256):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
        sha256 = sha256.lower()
    path = Path(path)
    data = _archive.read_file(path, max_bytes)
    if not data:
        raise DataError(f"{path}: empty file")
    if not _archive.is_zip(data):
        return _load_legacy(path, data, allow_pickle, sha256, feature_names)
    _check_integrity(path, _sha256(data), sha256, _sidecar_hash(path), BundleIntegrityError)
    where = str(path)
    with _archive.open_zip(data, where) as zf:
        names = zf.namelist()
        if _META not in names:
            if "schema.json" in names:  # a bare skops file
                model = _load_skops(data, trusted, where, max_bytes)
                return _load_legacy_model(model, path, feature_names)
            raise DataError(f"{path}: not a model bundle (zip without {_META})")
        members = _archive.read_members(zf, where, {_META: _archive.MAX_METADATA_BYTES,
                                                    _MODEL: max_bytes})
    meta = _metadata.parse_metadata(members[_META], where, format_name=BUNDLE_FORMAT,
                                    version=BUNDLE_VERSION, nan_policies=NAN_POLICIES,
                                    model_member=_MODEL)
    model_bytes = members.get(_MODEL)
    if model_bytes is None:
        raise DataError(f"{path}: the bundle has no {_MODEL} member")
    if _sha256(model_bytes) != meta["model_sha256"]:
        raise BundleIntegrityError(f"{path}: the model does not match the SHA-256 recorded at "
                                   "export (the file was corrupted or edited)")
    _check_version(meta["versions"].get("scikit-learn"), where)
    model = _load_skops(model_bytes, trusted, f"{path}, member {_MODEL}", max_bytes)
    fields = {f.name for f in dataclasses.fields(ModelBundle)}
    kwargs = {k: v for k, v in meta.items() if k in fields and k != "model"}
    bundle = ModelBundle(model=model, **kwargs)
    _check_model(bundle, where)
    return bundle


def _load_legacy_model(model: Any, path: Path, feature_names: Sequence[str] | None
                       ) -> ModelBundle:
    names = list(feature_names) if feature_names is not None else (
        list(model.feature_names_in_) if hasattr(model, "feature_names_in_") else None)
    k = len(names) if names is not None else int(getattr(model, "n_features_in_", 0))
    warnings.warn(f"{path} is a bare skops model: no feature spec, label spec or training "
                  "means", LegacyBundleWarning, stacklevel=3)
    bundle = ModelBundle(model=model, feature_names=names, means=np.full(k, np.nan),
                         stds=np.full(k, np.nan), classes=list(getattr(model, "classes_", [])),
                         meta={"legacy": True, "source": str(path)}, versions={})
    _check_model(bundle, str(path))
    return bundle
