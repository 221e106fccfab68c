"""Numba evaluation of fitted scikit-learn classifiers, for per-bar scoring.

:func:`compile_estimator` reads a fitted estimator's arrays (nothing is executed from
it) into a :class:`CompiledModel` whose :meth:`~CompiledModel.predict_proba` equals
scikit-learn's ``predict_proba`` to rounding (1e-12) without its per-call overhead.
Supported, as scikit-learn 1.x computes them:

- ``LogisticRegression``, bare or after one ``StandardScaler`` in a ``Pipeline``:
  ``expit`` of the score for two classes, a softmax of the scores for more;
- ``RandomForestClassifier`` / ``ExtraTreesClassifier``: the mean of the trees' leaf
  class proportions, inputs rounded to float32 as in ``tree_``, NaN sent where each split
  sends it;
- ``GradientBoostingClassifier`` (log loss, ``init`` the default prior or ``"zero"``) and
  ``HistGradientBoostingClassifier`` (numeric features): the baseline plus the trees'
  leaf values, then ``expit`` or a softmax.

Anything else gives None: the caller keeps using scikit-learn. Tree arrays that could
not be walked safely (a child before its parent or outside its tree, a feature that is
not an input) raise :class:`~alphatrade_lab.errors.UntrustedBundleError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alphatrade_lab.errors import UntrustedBundleError
from alphatrade_lab.models import kernels as nb

__all__ = ["CompiledModel", "compile_estimator"]


@dataclass(frozen=True)
class CompiledModel:
    """A fitted classifier as plain arrays and the numba kernel that evaluates them.

    Attributes
    ----------
    kind
        ``"linear"`` or ``"trees"``.
    classes
        The estimator's ``classes_`` (the column order of :meth:`predict_proba`).
    n_features
        Number of inputs.
    allow_nan
        Whether the estimator accepts NaN inputs (scikit-learn refuses them otherwise, so
        callers should let it raise its own error).
    args
        The kernel's arrays and settings (after ``A`` and ``out``).
    """

    kind: str
    classes: list
    n_features: int
    allow_nan: bool
    args: tuple

    def predict_proba_into(self, A: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write the probabilities of the rows of ``A`` (float64, C order,
        ``(m, n_features)``) into ``out`` (float64, ``(m, n_classes)``)."""
        if self.kind == "linear":
            return nb.linear_proba_nb(A, out, *self.args)
        return nb.trees_proba_nb(A, out, *self.args)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of one row (``float64[n_features]``) or of a matrix of rows.

        >>> import numpy as np
        >>> from sklearn.linear_model import LogisticRegression
        >>> X = np.random.default_rng(0).normal(size=(200, 3))
        >>> est = LogisticRegression().fit(X, np.where(X[:, 0] > 0, 1, -1))
        >>> cm = compile_estimator(est)
        >>> bool(np.allclose(cm.predict_proba(X[0]), est.predict_proba(X[:1])[0], atol=1e-12))
        True
        """
        A = np.ascontiguousarray(x, dtype=np.float64)
        P = self.predict_proba_into(A.reshape(-1, self.n_features),
                                    np.empty((A.size // self.n_features, len(self.classes))))
        return P[0] if A.ndim == 1 else P


def compile_estimator(est: object) -> CompiledModel | None:
    """A :class:`CompiledModel` of a fitted supported classifier, else None (malformed
    tree arrays raise :class:`~alphatrade_lab.errors.UntrustedBundleError`)."""
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = None
    if isinstance(est, Pipeline):
        steps = [s for _, s in est.steps if s not in (None, "passthrough")]
        if len(steps) == 2 and type(steps[0]) is StandardScaler:
            scaler = steps[0]
        elif len(steps) != 1:
            return None
        est = steps[-1]
    if not hasattr(est, "classes_"):
        return None
    if type(est) is LogisticRegression:
        return _linear(est, scaler)
    if scaler is not None:
        return None
    if type(est) in (RandomForestClassifier, ExtraTreesClassifier):
        return _forest(est)
    if type(est) is GradientBoostingClassifier:
        return _gradient_boosting(est)
    if type(est) is HistGradientBoostingClassifier:
        return _hist_gradient_boosting(est)
    return None


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _model(kind: str, est, n_features: int, allow_nan: bool, *args) -> CompiledModel:
    classes = [c.item() if isinstance(c, np.generic) else c for c in est.classes_]
    return CompiledModel(kind, classes, int(n_features), allow_nan, args)


def _finish(n_classes: int) -> int:
    return nb.FINISH_LOGISTIC if n_classes == 2 else nb.FINISH_SOFTMAX


def _linear(est, scaler) -> CompiledModel | None:
    coef = _f64(np.atleast_2d(est.coef_))
    n_classes, n_features = len(est.classes_), coef.shape[1]
    if n_classes < 2 or coef.shape[0] != (1 if n_classes == 2 else n_classes):
        return None
    mean, scale = np.zeros(n_features), np.ones(n_features)
    if scaler is not None:
        if scaler.with_mean:
            mean = _f64(scaler.mean_)
        if scaler.with_std:
            scale = _f64(scaler.scale_)
    return _model("linear", est, n_features, False, mean, scale, coef,
                  _f64(np.atleast_1d(est.intercept_)), _finish(n_classes))


def _trees(est, trees, cols, values, base, as_float32, finish) -> CompiledModel:
    """Concatenate ``(children_left, children_right, feature, threshold, nan_left)``
    node arrays of every tree (leaves: left -1) with their leaf ``values``."""
    sizes = np.array([len(t[0]) for t in trees], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    left = np.concatenate([np.where(t[0] >= 0, t[0] + o, -1) for t, o in zip(trees, offsets,
                                                                            strict=True)])
    right = np.concatenate([np.where(t[0] >= 0, t[1] + o, -1) for t, o in zip(trees, offsets,
                                                                             strict=True)])
    feature = np.concatenate([t[2] for t in trees]).astype(np.int64)
    value = _f64(np.concatenate(values))
    tree_col = np.asarray(cols, dtype=np.int64)
    _check_nodes(left.astype(np.int64), right.astype(np.int64), feature,
                 np.repeat(offsets + sizes, sizes), est.n_features_in_)
    if len(value) != len(left) or (tree_col + value.shape[1] > len(base)).any():
        raise UntrustedBundleError("the model's trees do not match their leaf values")
    return _model("trees", est, est.n_features_in_, _allow_nan(est), offsets,
                  left.astype(np.int64), right.astype(np.int64), feature,
                  _f64(np.concatenate([t[3] for t in trees])),
                  np.concatenate([t[4] for t in trees]).astype(np.bool_),
                  value, tree_col, _f64(base), as_float32, finish)


def _check_nodes(left: np.ndarray, right: np.ndarray, feature: np.ndarray,
                 tree_end: np.ndarray, n_features: int) -> None:
    """Refuse node arrays the kernel could not walk safely: every split's children must
    come after it and inside its tree (so every walk ends at a leaf) and its feature must
    be an input. The arrays come from a model file, which is untrusted."""
    node = np.arange(len(left))
    split = left >= 0
    bad = split & ~((left > node) & (right > node) & (left < tree_end) & (right < tree_end)
                    & (feature >= 0) & (feature < n_features))
    if bad.any():
        n = int(np.flatnonzero(bad)[0])
        raise UntrustedBundleError(
            f"the model's tree node {n} is malformed (children {int(left[n])}, "
            f"{int(right[n])}; feature {int(feature[n])} of {n_features}): refusing to "
            "evaluate it")


def _allow_nan(est) -> bool:
    return bool(est.__sklearn_tags__().input_tags.allow_nan)


def _tree_arrays(tree) -> tuple:
    return (tree.children_left, tree.children_right, tree.feature, tree.threshold,
            tree.missing_go_to_left)


def _forest(est) -> CompiledModel | None:
    if est.n_outputs_ != 1:
        return None
    n_classes = len(est.classes_)
    trees = [e.tree_ for e in est.estimators_]
    return _trees(est, [_tree_arrays(t) for t in trees], np.zeros(len(trees)),
                  [t.value[:, 0, :n_classes] for t in trees], np.zeros(n_classes), True,
                  nb.FINISH_MEAN)


def _gradient_boosting(est) -> CompiledModel | None:
    from sklearn.dummy import DummyClassifier

    init = est.init_
    if est.loss != "log_loss" or not (
            init == "zero" or (type(init) is DummyClassifier and init.strategy == "prior")):
        return None
    n_classes = len(est.classes_)
    base = est._raw_predict_init(np.zeros((1, est.n_features_in_), dtype=np.float32))[0]
    stages = est.estimators_  # (n_stages, n_scores) regression trees
    trees, cols, values = [], [], []
    for stage in stages:
        for k, reg in enumerate(stage):
            trees.append(_tree_arrays(reg.tree_))
            cols.append(k)
            values.append(est.learning_rate * reg.tree_.value[:, 0, :1])
    return _trees(est, trees, cols, values, base, True, _finish(n_classes))


def _hist_gradient_boosting(est) -> CompiledModel | None:
    if est._preprocessor is not None:
        return None
    trees, cols, values = [], [], []
    for stage in est._predictors:
        for k, predictor in enumerate(stage):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                return None
            leaf = nodes["is_leaf"].astype(bool)
            trees.append((np.where(leaf, -1, nodes["left"].astype(np.int64)),
                          nodes["right"].astype(np.int64), nodes["feature_idx"],
                          nodes["num_threshold"], nodes["missing_go_to_left"]))
            cols.append(k)
            values.append(nodes["value"][:, None])
    return _trees(est, trees, cols, values, np.ravel(est._baseline_prediction), False,
                  _finish(len(est.classes_)))
