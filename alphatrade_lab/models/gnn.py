"""A small graph convolutional network (two layers, plain PyTorch) that predicts the
direction of every symbol at once from per-symbol features and the cross-asset graph.

Shapes: ``X`` is float ``[T, N, F]`` (T times, N symbols, F features per symbol at t),
``adjacency`` float ``[T, N, N]`` (one graph per time, e.g. the absolute weights of
:func:`alphatrade_lab.features.graph_adjacency`) or ``[N, N]`` (one graph for all times),
``y`` ``[T, N]`` in {0, 1} with NaN where a label is missing. Each layer mixes the
symbols through the normalised adjacency ``D^-1/2 (A + I) D^-1/2`` (Kipf and Welling):

    H = relu(Â X W1 + b1),   logit = Â H W2 + b2,   P(up) = sigmoid(logit)

Needs the ``gnn`` extra (``pip install 'alphatrade-lab[gnn]'``, PyTorch on the CPU).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from alphatrade_lab.errors import DataError

try:
    import torch
except ImportError as exc:  # the optional extra is missing
    raise ImportError("alphatrade_lab.models.gnn needs PyTorch: pip install "
                      "'alphatrade-lab[gnn]'") from exc

__all__ = ["GCNClassifier", "normalized_adjacency"]

_FORMAT = "alphatrade-lab-gcn"
_VERSION = 1
_PARAMS = ("W1", "b1", "W2", "b2")
_MAX_FILE = 64 * 2**20  # bytes of a saved model, uncompressed


def normalized_adjacency(adjacency: Any, n_times: int | None = None) -> np.ndarray:
    """``D^-1/2 (|A| + I) D^-1/2`` per graph, NaN weights read as no edge.

    Parameters
    ----------
    adjacency
        ``[T, N, N]`` or ``[N, N]`` (repeated ``n_times`` times when given).
    n_times
        The number of times to broadcast an ``[N, N]`` graph to.

    Returns
    -------
    numpy.ndarray
        float64 ``[T, N, N]`` (or ``[N, N]`` without ``n_times``).

    Examples
    --------
    >>> a = normalized_adjacency(np.array([[0.0, 1.0], [1.0, 0.0]]))
    >>> a.round(3).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    a = np.abs(np.nan_to_num(np.asarray(adjacency, dtype=np.float64), nan=0.0))
    if a.ndim not in (2, 3) or a.shape[-1] != a.shape[-2]:
        raise DataError(f"GCNClassifier: adjacency must be [N, N] or [T, N, N], got shape "
                        f"{a.shape}")
    n = a.shape[-1]
    eye = np.eye(n)
    a = a * (1.0 - eye) + eye
    d = 1.0 / np.sqrt(a.sum(axis=-1))
    out = a * d[..., :, None] * d[..., None, :]
    if out.ndim == 2 and n_times is not None:
        out = np.broadcast_to(out, (n_times, n, n)).copy()
    return out


def _check_x(X: Any, n_features: int | None = None) -> np.ndarray:
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 3:
        raise DataError(f"GCNClassifier: X must be [T, N, F] (times, symbols, features), got "
                        f"shape {x.shape}")
    if x.shape[1] < 2:
        raise DataError(f"GCNClassifier: a graph needs at least 2 symbols, X has {x.shape[1]}")
    if n_features is not None and x.shape[2] != n_features:
        raise DataError(f"GCNClassifier: X has {x.shape[2]} features, the model was fitted on "
                        f"{n_features}")
    bad = ~np.isfinite(x)
    if bad.any():
        t, i, f = np.argwhere(bad)[0]
        raise DataError(f"GCNClassifier: X is not finite at time {t}, symbol {i}, feature {f} "
                        f"({x[t, i, f]!r}); fill or drop it first")
    return x


def _check_graph(adjacency: Any, x: np.ndarray) -> np.ndarray:
    a = normalized_adjacency(adjacency, n_times=x.shape[0])
    if a.shape != (x.shape[0], x.shape[1], x.shape[1]):
        raise DataError(f"GCNClassifier: adjacency shape {np.shape(adjacency)} does not fit X "
                        f"{x.shape} (need [T, N, N] or [N, N] with the same T and N)")
    return a


class GCNClassifier(BaseEstimator):
    """Two-layer graph convolutional network for the direction of all symbols at once.

    Parameters
    ----------
    hidden
        Width of the hidden layer.
    epochs
        Full-batch Adam steps.
    lr, weight_decay
        Adam's learning rate and L2 penalty.
    dropout
        Dropout on the hidden layer while training.
    seed
        Seeds the initial weights and the dropout (same seed, same model).
    threads
        Torch CPU threads while fitting and predicting (restored after).

    Attributes
    ----------
    classes_ : ndarray
        ``[0, 1]`` (down or flat, up).
    n_features_in_ : int
    mean_, scale_ : ndarray
        Feature standardisation learned on the training rows.
    weights_ : dict of ndarray
        ``W1 [F, hidden]``, ``b1 [hidden]``, ``W2 [hidden, 1]``, ``b2 [1]`` (float64).
    loss_curve_ : list of float
        Training log-loss per epoch.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4, 1))
    >>> ring = np.roll(np.eye(4), 1, axis=1) + np.roll(np.eye(4), -1, axis=1)
    >>> y = (X[:, :, 0] @ (ring + np.eye(4)) > 0).astype(float)  # sign of own + neighbours'
    >>> model = GCNClassifier(epochs=200, seed=1).fit(X, y, ring)
    >>> bool((model.predict(X, ring) == y).mean() > 0.8)
    True
    >>> model.predict_proba(X, ring).shape
    (200, 4, 2)
    """

    def __init__(self, hidden: int = 16, epochs: int = 200, lr: float = 0.01,
                 weight_decay: float = 5e-4, dropout: float = 0.0, seed: int = 0,
                 threads: int = 1) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.seed = seed
        self.threads = threads

    def _check_params(self) -> None:
        for name in ("hidden", "epochs", "threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"GCNClassifier: {name} must be a whole number >= 1 (got {v!r})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GCNClassifier: dropout must be in [0, 1) (got {self.dropout!r})")
        if not self.lr > 0 or not self.weight_decay >= 0:
            raise ValueError("GCNClassifier: lr must be > 0 and weight_decay >= 0")

    def fit(self, X: Any, y: Any, adjacency: Any) -> GCNClassifier:
        """Learn the weights from ``X [T, N, F]``, ``y [T, N]`` and the graphs.

        Returns ``self``. Raises DataError for shapes that do not fit, non-finite
        features, labels outside {0, 1} (NaN: not used), or no label at all.
        """
        self._check_params()
        x = _check_x(X)
        a = _check_graph(adjacency, x)
        yv = np.asarray(y, dtype=np.float64)
        if yv.shape != x.shape[:2]:
            raise DataError(f"GCNClassifier: y must be [T, N] = {x.shape[:2]}, got {yv.shape}")
        known = ~np.isnan(yv)
        if not known.any():
            raise DataError("GCNClassifier: y has no label (all NaN)")
        if not np.isin(yv[known], (0.0, 1.0)).all():
            t, i = np.argwhere(known & ~np.isin(yv, (0.0, 1.0)))[0]
            raise DataError(f"GCNClassifier: y must be 0 or 1 (or NaN), got {yv[t, i]!r} at "
                            f"time {t}, symbol {i}")
        rows = x.reshape(-1, x.shape[2])
        self.mean_ = rows.mean(axis=0)
        scale = rows.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.n_features_in_ = x.shape[2]
        self.classes_ = np.array([0, 1])
        with _threads(self.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.weights_, self.loss_curve_ = self._train(self._scaled(x), a, yv, known)
        return self

    def _scaled(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((x - self.mean_) / self.scale_)

    def _train(self, x: torch.Tensor, a: np.ndarray, y: np.ndarray, known: np.ndarray
               ) -> tuple[dict[str, np.ndarray], list[float]]:
        f, h = x.shape[2], int(self.hidden)
        params = {"W1": _glorot(f, h), "b1": torch.zeros(h, dtype=torch.float64),
                  "W2": _glorot(h, 1), "b2": torch.zeros(1, dtype=torch.float64)}
        for p in params.values():
            p.requires_grad_(True)
        opt = torch.optim.Adam(list(params.values()), lr=self.lr,
                               weight_decay=self.weight_decay)
        at = torch.from_numpy(a)
        target = torch.from_numpy(np.nan_to_num(y))
        mask = torch.from_numpy(known)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        curve = []
        for _ in range(int(self.epochs)):
            opt.zero_grad()
            logit = _forward(params, x, at, self.dropout, training=True)
            loss = loss_fn(logit[mask], target[mask])
            loss.backward()
            opt.step()
            curve.append(float(loss.detach()))
        return {k: v.detach().numpy().copy() for k, v in params.items()}, curve

    def decision_function(self, X: Any, adjacency: Any) -> np.ndarray:
        """Logits of "up", float64 ``[T, N]``."""
        if not hasattr(self, "weights_"):
            raise ValueError("GCNClassifier: call fit (or load) before predicting")
        x = _check_x(X, self.n_features_in_)
        a = torch.from_numpy(_check_graph(adjacency, x))
        params = {k: torch.from_numpy(v) for k, v in self.weights_.items()}
        with _threads(self.threads), torch.no_grad():
            return _forward(params, self._scaled(x), a, 0.0, training=False).numpy()

    def predict_proba(self, X: Any, adjacency: Any) -> np.ndarray:
        """``[T, N, 2]``: P(class 0), P(class 1) per time and symbol."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X, adjacency)))
        return np.stack([1.0 - p, p], axis=-1)

    def predict(self, X: Any, adjacency: Any) -> np.ndarray:
        """Most probable class, int64 ``[T, N]``."""
        return (self.decision_function(X, adjacency) > 0).astype(np.int64)

    def save(self, path: str | Path) -> Path:
        """Write the fitted model as plain arrays (a zip holding ``model.npz`` and
        ``meta.json``; no pickle). Returns the path."""
        if not hasattr(self, "weights_"):
            raise ValueError("GCNClassifier: nothing to save, call fit first")
        path = Path(path)
        meta = {"format": _FORMAT, "version": _VERSION, "params": self.get_params(),
                "n_features_in": int(self.n_features_in_)}
        arrays = {**self.weights_, "mean": self.mean_, "scale": self.scale_,
                  "loss_curve": np.asarray(self.loss_curve_)}
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("meta.json", json.dumps(meta))
            with z.open("model.npz", "w") as f:
                np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> GCNClassifier:
        """Read a model written by :meth:`save` (arrays only, ``allow_pickle=False``).

        Raises DataError naming the file when it is not such a model.
        """
        path = Path(path)
        try:
            with zipfile.ZipFile(path) as z:
                infos = {i.filename: i for i in z.infolist()}
                if set(infos) != {"meta.json", "model.npz"}:
                    raise DataError(f"{path}: not a GCN model file (members {sorted(infos)})")
                if sum(i.file_size for i in infos.values()) > _MAX_FILE:
                    raise DataError(f"{path}: GCN model file larger than {_MAX_FILE} bytes")
                meta = json.loads(z.read("meta.json"))
                with z.open("model.npz") as f, np.load(f, allow_pickle=False) as npz:
                    arrays = {k: np.asarray(npz[k], dtype=np.float64) for k in npz.files}
        except (zipfile.BadZipFile, json.JSONDecodeError, ValueError, KeyError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"{path}: not a readable GCN model file ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT or \
                meta.get("version") != _VERSION:
            raise DataError(f"{path}: not a GCN model file of format {_FORMAT} v{_VERSION}")
        missing = [k for k in (*_PARAMS, "mean", "scale", "loss_curve") if k not in arrays]
        if missing:
            raise DataError(f"{path}: GCN model file misses arrays {missing}")
        model = cls(**meta["params"])
        model.weights_ = {k: arrays[k] for k in _PARAMS}
        model.mean_, model.scale_ = arrays["mean"], arrays["scale"]
        model.loss_curve_ = arrays["loss_curve"].tolist()
        model.n_features_in_ = int(meta["n_features_in"])
        model.classes_ = np.array([0, 1])
        f, h = model.n_features_in_, int(model.hidden)
        shapes = {"W1": (f, h), "b1": (h,), "W2": (h, 1), "b2": (1,)}
        for k, shape in shapes.items():
            if model.weights_[k].shape != shape:
                raise DataError(f"{path}: array {k} has shape {model.weights_[k].shape}, "
                                f"expected {shape}")
        return model


def _glorot(n_in: int, n_out: int) -> torch.Tensor:
    bound = float(np.sqrt(6.0 / (n_in + n_out)))
    return (torch.rand(n_in, n_out, dtype=torch.float64) * 2.0 - 1.0) * bound


def _forward(params: dict[str, torch.Tensor], x: torch.Tensor, a: torch.Tensor,
             dropout: float, *, training: bool) -> torch.Tensor:
    h = torch.relu(torch.bmm(a, x @ params["W1"]) + params["b1"])
    if training and dropout > 0:
        h = torch.nn.functional.dropout(h, p=dropout, training=True)
    return (torch.bmm(a, h @ params["W2"]) + params["b2"])[..., 0]


class _threads:
    """Context manager: torch's intra-op threads set to ``n``, restored after."""

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def __enter__(self) -> None:
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.old)
