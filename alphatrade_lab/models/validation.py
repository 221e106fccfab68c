"""Purged walk-forward validation and training of a model bundle (López de Prado, ch. 7).

Each sample i has a start time ``t0[i]`` (its bar's timestamp: when its features are
known and a trade would be made) and an end time ``t1[i]`` (when its label is known:
the last bar the label uses). Two samples *overlap* when ``[t0, t1]`` intervals
intersect. A test fold is a contiguous block of start times (all symbols together); its
window is ``[min t0, max t1]`` over the test rows.

- **Purge**: a training row whose interval intersects the test window is dropped, so no
  training label uses prices that a test row's features or label also see.
- **Embargo** (a duration): in ``mode="kfold"``, training rows that start within
  ``embargo`` after the test window ends are dropped too (serial correlation). In
  ``mode="walk_forward"`` (training rows only before the test block) the embargo is a gap
  before the test window: training labels must end more than ``embargo`` before it.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.models.bundle import ModelBundle

__all__ = ["Fold", "classification_metrics", "purged_splits", "train"]

_KEYS = ("timestamp", "symbol")


@dataclass(frozen=True)
class Fold:
    """One split: row positions of the training and test rows and what was removed."""

    train: np.ndarray
    test: np.ndarray
    test_start: Any
    test_end: Any
    purged: int
    embargoed: int


def _as_int_times(t: Any) -> tuple[np.ndarray, bool]:
    """int64 times (ns for datetimes) and whether they were datetimes."""
    if isinstance(t, pd.Series | pd.Index) and pd.api.types.is_datetime64_any_dtype(t.dtype):
        idx = pd.DatetimeIndex(t)
        idx = idx.tz_localize("UTC") if idx.tz is None else idx
        return idx.as_unit("ns").asi8.copy(), True
    arr = np.asarray(t)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[ns]").view(np.int64).copy(), True
    return arr.astype(np.int64), False


def _embargo_ns(embargo: Any, t0: np.ndarray, is_time: bool) -> int:
    if embargo is None:
        return 0
    if isinstance(embargo, float) and 0 <= embargo < 1:
        return int(round(embargo * (t0.max() - t0.min()))) if len(t0) else 0
    if isinstance(embargo, str | pd.Timedelta) or hasattr(embargo, "total_seconds"):
        if not is_time:
            raise ValueError("a duration embargo needs datetime t0/t1")
        return int(pd.Timedelta(embargo).value)
    if isinstance(embargo, int | np.integer) and embargo >= 0:
        return int(embargo)  # in the units of t (e.g. bar numbers)
    raise ValueError(f"embargo must be None, a duration, a fraction in [0, 1) or an int >= 0, "
                     f"got {embargo!r}")


def purged_splits(t0: Any, t1: Any = None, *, n_splits: int = 5, embargo: Any = None,
                  mode: str = "walk_forward", max_train: Any = None) -> list[Fold]:
    """Walk-forward (or k-fold) splits with purge and embargo.

    Parameters
    ----------
    t0, t1
        Start and end time of each sample (datetimes, or integers such as bar
        numbers). ``t1`` defaults to ``t0`` (labels known at once: nothing to purge).
    n_splits
        Number of test folds. Walk-forward cuts the sorted unique start times into
        ``n_splits + 1`` equal blocks and tests on blocks 2..n+1, training on what
        precedes each; k-fold cuts them into ``n_splits`` blocks.
    embargo
        None, a duration (``"1D"``, Timedelta), a fraction in [0, 1) of the time span,
        or an int in the units of integer times (see the module docstring).
    mode
        ``"walk_forward"`` or ``"kfold"``.
    max_train
        Walk-forward only: keep only training rows starting within this duration (or
        int distance) before the test block (a rolling window; default: expanding).

    Returns
    -------
    list of Fold
        Row positions into the inputs.

    Examples
    --------
    >>> import numpy as np
    >>> t0 = np.arange(100); t1 = t0 + 5     # labels use the next 5 bars
    >>> folds = purged_splits(t0, t1, n_splits=4, embargo=2)
    >>> f = folds[0]
    >>> int(f.test.min()), int(f.train.max()), f.purged, f.embargoed
    (20, 12, 5, 2)
    >>> bool((t1[f.train] < t0[f.test].min()).all())
    True
    """
    a0, is_time = _as_int_times(t0)
    a1 = a0.copy() if t1 is None else _as_int_times(t1)[0]
    return _splits(a0, a1, is_time, n_splits, embargo, mode, max_train)


def _splits(a0: np.ndarray, a1: np.ndarray, is_time: bool, n_splits: int, embargo: Any,
            mode: str, max_train: Any) -> list[Fold]:
    if mode not in ("walk_forward", "kfold"):
        raise ValueError(f"mode must be 'walk_forward' or 'kfold', got {mode!r}")
    if a0.shape != a1.shape:
        raise DataError(f"purged_splits: t0 and t1 differ in length ({len(a0)}, {len(a1)})")
    if (a1 < a0).any():
        i = int(np.flatnonzero(a1 < a0)[0])
        raise DataError(f"purged_splits: t1 is before t0 at row {i}")
    if not isinstance(n_splits, int) or n_splits < 2 - (mode == "walk_forward"):
        raise ValueError(f"n_splits must be an int >= {2 - (mode == 'walk_forward')}, got "
                         f"{n_splits!r}")
    emb = _embargo_ns(embargo, a0, is_time)
    times = np.unique(a0)
    n_blocks = n_splits + 1 if mode == "walk_forward" else n_splits
    if len(times) < n_blocks:
        raise DataError(f"purged_splits: {len(times)} distinct times cannot make {n_blocks} "
                        "blocks")
    blocks = np.array_split(times, n_blocks)
    first_test = 1 if mode == "walk_forward" else 0
    span = None if max_train is None else _embargo_ns(
        pd.Timedelta(max_train) if isinstance(max_train, str) else max_train, a0, is_time)
    folds = []
    conv = (lambda v: pd.Timestamp(v, tz="UTC")) if is_time else int
    for b in blocks[first_test:]:
        lo, hi = b[0], b[-1]
        test = np.flatnonzero((a0 >= lo) & (a0 <= hi))
        end = int(a1[test].max())
        if mode == "walk_forward":
            cand = a0 < lo
            if span is not None:
                cand &= a0 >= lo - span
            overlap = cand & (a1 >= lo)
            embargoed = cand & ~overlap & (a1 >= lo - emb) if emb else np.zeros_like(cand)
        else:
            cand = (a0 < lo) | (a0 > hi)
            overlap = cand & (a0 <= end) & (a1 >= lo)
            embargoed = cand & ~overlap & (a0 > end) & (a0 <= end + emb) if emb else \
                np.zeros_like(cand)
        train = np.flatnonzero(cand & ~overlap & ~embargoed)
        folds.append(Fold(train, test, conv(lo), conv(end), int(overlap.sum()),
                          int(embargoed.sum())))
    return folds


def classification_metrics(y_true: Any, proba: np.ndarray, classes: Sequence) -> dict:
    """Accuracy, per-class precision and recall, and log-loss of probabilistic predictions.

    The prediction is the most probable class. Precision of a class never predicted and
    recall of a class absent from ``y_true`` are NaN. Log-loss clips probabilities to
    ``[eps, 1 - eps]`` (``eps`` of float64) and renormalises rows, as scikit-learn does.

    Examples
    --------
    >>> import numpy as np
    >>> m = classification_metrics([1, -1, 1], np.array([[0.2, 0.8], [0.6, 0.4],
    ...                                                  [0.7, 0.3]]), [-1, 1])
    >>> m["accuracy"], m["precision_1"], m["recall_1"]
    (0.6666666666666666, 1.0, 0.5)
    """
    y = np.asarray(y_true)
    classes = list(classes)
    p = np.asarray(proba, dtype=np.float64)
    pred = np.asarray(classes)[p.argmax(axis=1)]
    out: dict[str, float] = {"n": int(len(y)), "accuracy": float(np.mean(pred == y))}
    for c in classes:
        tp = float(np.sum((pred == c) & (y == c)))
        npred, ntrue = float(np.sum(pred == c)), float(np.sum(y == c))
        out[f"precision_{c}"] = tp / npred if npred else float("nan")
        out[f"recall_{c}"] = tp / ntrue if ntrue else float("nan")
    eps = np.finfo(np.float64).eps
    q = np.clip(p, eps, 1 - eps)
    q = q / q.sum(axis=1, keepdims=True)
    pos = {c: j for j, c in enumerate(classes)}
    idx = np.array([pos.get(v, -1) for v in y.tolist()])
    if (idx < 0).any():
        out["log_loss"] = float("nan")
    else:
        out["log_loss"] = float(-np.mean(np.log(q[np.arange(len(y)), idx])))
    return out


def _fingerprint(names: list[str], A: np.ndarray, y: np.ndarray, t0: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update("\x1f".join(names).encode())
    for arr in (A, y.astype(np.float64), t0):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _utc_times(s: pd.Series) -> pd.DatetimeIndex:
    t = pd.DatetimeIndex(s)
    return t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")


def _check_same_rows(X: pd.DataFrame, y: pd.DataFrame) -> None:
    """DataError when X and a label frame of the same length are not the same
    (timestamp, symbol) row by row (a label would train on another bar's features)."""
    keys = [k for k in _KEYS if k in X.columns and k in y.columns]
    if not keys:
        return
    differ = np.zeros(len(X), dtype=bool)
    for k in keys:
        if k == "timestamp":
            differ |= np.asarray(_utc_times(X[k]) != _utc_times(y[k]))
        else:
            differ |= X[k].to_numpy() != y[k].to_numpy()
    if differ.any():
        i = int(differ.argmax())
        raise DataError(f"train: row {i} of X is {tuple(X[keys].iloc[i])} but row {i} of y "
                        f"is {tuple(y[keys].iloc[i])}; match the rows by (timestamp, symbol) "
                        "first: X, y = atl.models.align(features, labels)")


def train(X: pd.DataFrame, y: Any, estimator: Any, *, t1: Any = None, n_splits: int = 5,
          embargo: Any = None, mode: str = "walk_forward", max_train: Any = None,
          feature_spec: Any = None, label_spec: Any = None, nan_policy: str = "mean",
          max_missing: float = 0.2, progress: bool = True, threads: int | None = None
          ) -> ModelBundle:
    """Validate a classifier with purged walk-forward splits, then fit it on all rows.

    Parameters
    ----------
    X
        Features: every numeric column other than ``timestamp``/``symbol`` is a feature
        (order kept). Start times ``t0`` come from its ``timestamp`` column (else a
        DatetimeIndex, else row numbers). Rows with a NaN feature or label are dropped.
    y
        Labels: a label frame from :func:`~alphatrade_lab.models.labels` (uses its
        ``label`` and ``t1`` columns), or a Series/array with the same rows as ``X``.
        A label frame must hold the same (timestamp, symbol) rows as ``X``, in the same
        order (:func:`~alphatrade_lab.models.align` makes them so); else DataError.
    estimator
        Any scikit-learn classifier with ``predict_proba``; it is cloned per fold and fit
        on a float64 array in feature order.
    t1
        End times of the labels (needed to purge when ``y`` is not a label frame; default
        ``t0 + horizon`` bars when a label spec is known, else ``t0``).
    n_splits, embargo, mode, max_train
        Passed to :func:`purged_splits`.
    feature_spec, label_spec
        Stored in the bundle (default: ``X.attrs["feature_spec"]``,
        ``y.attrs["label_spec"]``); FeatureSpec/LabelSpec objects or their dicts.
    nan_policy, max_missing
        The bundle's input policies (see :class:`ModelBundle`).
    progress
        Show a tqdm progress bar over the folds.
    threads
        Limit BLAS/OpenMP threads while fitting (threadpoolctl); small fits often run
        several times faster with 1 on a busy machine. None leaves the defaults.

    Returns
    -------
    ModelBundle
        ``metrics["folds"]`` (one dict per fold: times, sizes, purged and embargoed counts,
        :func:`classification_metrics`), ``metrics["overall"]`` (all out-of-sample
        predictions pooled) and the final model fit on every row.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> bars = atl.data.resample(atl.data.load_sample(["AAA"]), "1h").head(1500)
    >>> y = atl.models.labels(bars, horizon=4, threshold=0.005)
    >>> X, y = atl.models.align(atl.features.technical(bars), y)
    >>> model = make_pipeline(StandardScaler(), LogisticRegression())
    >>> b = train(X, y, model, n_splits=3, embargo="1D", progress=False)
    >>> len(b.metrics["folds"]), b.classes
    (3, [-1, 0, 1])
    >>> f = b.metrics["folds"][0]
    >>> f["n_train"] > 0 and f["purged"] > 0 and 0 <= f["accuracy"] <= 1
    True
    """
    from threadpoolctl import threadpool_limits

    if not isinstance(X, pd.DataFrame):
        raise DataError(f"train: X must be a DataFrame, got {type(X).__name__}")
    if not hasattr(estimator, "fit") or not hasattr(estimator, "predict_proba"):
        raise TypeError("train: estimator needs fit and predict_proba (a scikit-learn "
                        "classifier)")
    names = [c for c in X.columns if c not in _KEYS and pd.api.types.is_numeric_dtype(X[c])
             and not pd.api.types.is_bool_dtype(X[c])]
    if not names:
        raise DataError("train: X has no numeric feature columns")
    if isinstance(y, pd.DataFrame):
        if "label" not in y.columns:
            raise DataError("train: a y frame needs a 'label' column")
        yv = y["label"].to_numpy()
        if t1 is None and "t1" in y.columns:
            t1 = y["t1"]
    else:
        yv = np.asarray(y)
    if len(yv) != len(X):
        raise DataError(f"train: X has {len(X)} rows but y has {len(yv)}; keep the rows "
                        "that have both features and a label first: "
                        "X, y = atl.models.align(features, labels)")
    if isinstance(y, pd.DataFrame):
        _check_same_rows(X, y)
    if "timestamp" in X.columns:
        t0 = X["timestamp"]
    elif isinstance(X.index, pd.DatetimeIndex):
        t0 = X.index.to_series()
    else:
        t0 = np.arange(len(X))
    a0, is_time = _as_int_times(t0)
    feature_spec = feature_spec if feature_spec is not None else X.attrs.get("feature_spec")
    label_spec = label_spec if label_spec is not None else getattr(y, "attrs", {}).get(
        "label_spec")
    feature_spec = feature_spec.to_dict() if hasattr(feature_spec, "to_dict") else feature_spec
    label_spec = label_spec.to_dict() if hasattr(label_spec, "to_dict") else label_spec
    if t1 is not None:
        a1 = _as_int_times(t1)[0]
    elif label_spec is not None:
        step = 1
        if is_time:
            u = np.unique(a0)
            step = int(np.median(np.diff(u))) if len(u) > 1 else 0
        a1 = a0 + step * int(label_spec.get("horizon", 0))
    else:
        warnings.warn("train: no label end times (t1) and no label spec: purging cannot "
                      "protect against overlapping labels", UserWarning, stacklevel=2)
        a1 = a0.copy()
    A = X[names].to_numpy(dtype=np.float64, na_value=np.nan)
    ok = ~np.isnan(A).any(axis=1) & pd.notna(yv)
    A, yv, a0, a1 = A[ok], yv[ok], a0[ok], a1[ok]
    if len(yv) == 0:
        raise DataError("train: no row has all features and a label")
    yv = yv.astype(np.int64) if np.issubdtype(np.asarray(yv).dtype, np.floating) else yv
    classes = sorted(np.unique(yv).tolist())
    folds = _splits(a0, a1, is_time, n_splits, embargo, mode, max_train)
    with threadpool_limits(limits=threads):
        return _fit(A, yv, a0, folds, is_time, estimator, names, classes, progress,
                    ModelBundle(None, names, np.full(len(names), np.nan),
                                np.full(len(names), np.nan), classes, feature_spec=feature_spec,
                                label_spec=label_spec, nan_policy=nan_policy,
                                max_missing=max_missing,
                                meta={"estimator": repr(estimator)}),
                    {"mode": mode, "n_splits": n_splits, "embargo": str(embargo),
                     "max_train": str(max_train)})


def _fit(A, yv, a0, folds, is_time, estimator, names, classes, progress, out, validation):
    """Fit per fold and on all rows; fill ``out`` (a bundle shell) with the results."""
    from sklearn.base import clone
    from tqdm import tqdm

    conv = (lambda v: pd.Timestamp(v, tz="UTC").isoformat()) if is_time else int
    rows, oos_y, oos_p = [], [], []
    for k, f in enumerate(tqdm(folds, desc="walk-forward folds", disable=not progress,
                               leave=False)):
        if len(f.train) == 0 or len(np.unique(yv[f.train])) < 2:
            raise DataError(f"train: fold {k} has fewer than two classes in its training rows "
                            f"({len(f.train)} rows); use fewer splits or more data")
        model = clone(estimator).fit(A[f.train], yv[f.train])
        bundle_k = ModelBundle(model, names, np.zeros(len(names)), np.zeros(len(names)),
                               classes, versions={})
        p = bundle_k.proba_matrix(A[f.test])
        m = classification_metrics(yv[f.test], p, classes)
        rows.append({"fold": k, "train_start": conv(a0[f.train].min()),
                     "train_end": conv(a0[f.train].max()), "test_start": conv(a0[f.test].min()),
                     "test_end": conv(a0[f.test].max()), "n_train": len(f.train),
                     "n_test": len(f.test), "purged": f.purged, "embargoed": f.embargoed, **m})
        oos_y.append(yv[f.test])
        oos_p.append(p)
    overall = classification_metrics(np.concatenate(oos_y), np.vstack(oos_p), classes)
    final = clone(estimator).fit(A, yv)
    stds = A.std(axis=0, ddof=1) if len(A) > 1 else np.full(len(names), np.nan)
    out.model = final
    out.means = A.mean(axis=0)
    out.stds = stds
    out.metrics = {"folds": rows, "overall": overall, "n_rows": int(len(yv)),
                   "validation": validation}
    out.fingerprint = _fingerprint(names, A, yv, a0)
    return out
