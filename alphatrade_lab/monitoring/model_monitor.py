"""Live model metrics per symbol over a bounded window, baselines and drift checks.

:class:`ModelMonitor` keeps, per symbol, a ring buffer of the last ``window_size``
predictions (class code, actual class code or pending, confidence, timestamp) and a dict
from timestamp to ring slot, so that :meth:`~ModelMonitor.update_actual` finds a prediction
in O(1); both are bounded by the window (a slot's key is removed when the slot is
overwritten). Classes may be any hashable labels (-1/0/1, "up"/"down"); they are coded in
order of first appearance, so the only other state is one entry per distinct class.

For backtests, :meth:`ModelMonitor.from_frame` loads a whole frame of predictions at once
(equal to feeding it row by row), :func:`model_timeline` gives the monitor's rolling
accuracy, confidence and drift flags after every prediction, vectorized, and
:func:`model_performance_frame` the daily rows of the store's ``model_performance`` table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError

__all__ = ["DriftCheck", "ModelMonitor", "model_performance_frame", "model_timeline"]

_PENDING = -1
FRAME_COLUMNS = ("symbol", "timestamp", "prediction", "actual", "confidence")


@dataclass(frozen=True)
class DriftCheck:
    """Result of :meth:`ModelMonitor.check_drift`; true in a boolean context when drifted.

    Attributes
    ----------
    symbol
        The symbol checked.
    drifted
        Whether accuracy dropped by more than the threshold or the average confidence moved
        by more than the confidence threshold.
    accuracy_drop
        Baseline accuracy minus current accuracy (NaN without both).
    confidence_change
        Current minus baseline average confidence (NaN without both).
    reasons
        ``"accuracy"`` and/or ``"confidence"``.
    message
        One line saying which and by how much (or why there was nothing to check).
    """

    symbol: Any
    drifted: bool
    accuracy_drop: float
    confidence_change: float
    reasons: tuple[str, ...]
    message: str

    def __bool__(self) -> bool:
        return self.drifted


class _Ring:
    """The bounded state of one symbol."""

    __slots__ = ("actual", "conf", "count", "keys", "pos", "pred", "slot_key", "ts")

    def __init__(self, size: int):
        self.pred = np.zeros(size, dtype=np.int64)
        self.actual = np.full(size, _PENDING, dtype=np.int64)
        self.conf = np.full(size, np.nan)
        self.ts = np.full(size, np.iinfo(np.int64).min, dtype=np.int64)
        self.slot_key: list[Any] = [None] * size
        self.keys: dict[Any, int] = {}
        self.pos = 0
        self.count = 0

    def order(self) -> np.ndarray:
        """Filled slots from oldest to newest."""
        size = self.pred.shape[0]
        if self.count < size:
            return np.arange(self.count)
        return (np.arange(size) + self.pos) % size


def _ts_key(timestamp: Any) -> Any:
    if timestamp is None:
        return None
    if isinstance(timestamp, int | np.integer | float | str):
        return timestamp
    return pd.Timestamp(timestamp)


def _ts_ns(key: Any) -> int:
    if isinstance(key, pd.Timestamp):
        t = key.tz_localize("UTC") if key.tzinfo is None else key
        return int(t.as_unit("ns").value)
    return np.iinfo(np.int64).min


class ModelMonitor:
    """Accuracy, precision, recall and confidence of a model's predictions per symbol.

    Parameters
    ----------
    window_size
        Predictions kept per symbol (the newest; older ones are forgotten).
    drift_threshold
        Drift when the accuracy drops by more than this (absolute, e.g. 0.62 → 0.51).
    confidence_threshold
        Drift when the average confidence moves (either way) by more than this.
    min_samples
        :meth:`calculate_metrics` returns None below this many completed predictions.
    model_type
        The ``model_type`` of :meth:`performance_frame`'s rows.

    Examples
    --------
    >>> m = ModelMonitor(window_size=200)
    >>> for i in range(150):
    ...     m.add_prediction("AAA", i % 2, None, 0.7, timestamp=i)
    >>> for i in range(150):
    ...     _ = m.update_actual("AAA", i, 1)
    >>> met = m.calculate_metrics("AAA")
    >>> met["accuracy"], met["recall"][1], met["n"]
    (0.5, 0.5, 150)
    """

    def __init__(self, window_size: int = 1000, drift_threshold: float = 0.10, *,
                 confidence_threshold: float = 0.15, min_samples: int = 100,
                 model_type: str = "model"):
        if isinstance(window_size, bool) or int(window_size) != window_size or window_size < 1:
            raise ValueError(f"window_size must be a positive integer, not {window_size!r}")
        self.window_size = int(window_size)
        self.drift_threshold = float(drift_threshold)
        self.confidence_threshold = float(confidence_threshold)
        self.min_samples = int(min_samples)
        self.model_type = model_type
        self._rings: dict[Any, _Ring] = {}
        self._codes: dict[Any, int] = {}
        self._labels: list[Any] = []
        self._baselines: dict[Any, dict] = {}
        self._auto = 0

    def __repr__(self) -> str:
        return (f"ModelMonitor(window_size={self.window_size}, drift_threshold="
                f"{self.drift_threshold}, symbols={len(self._rings)})")

    # -- state ---------------------------------------------------------------

    def _code(self, label: Any) -> int:
        if label is None or (isinstance(label, float) and math.isnan(label)):
            return _PENDING
        if isinstance(label, np.generic):
            label = label.item()
        code = self._codes.get(label)
        if code is None:
            code = len(self._labels)
            self._codes[label] = code
            self._labels.append(label)
        return code

    def _ring(self, symbol: Any) -> _Ring:
        ring = self._rings.get(symbol)
        if ring is None:
            ring = self._rings[symbol] = _Ring(self.window_size)
        return ring

    @property
    def symbols(self) -> list:
        """Symbols seen so far."""
        return list(self._rings)

    def sizes(self, symbol: Any) -> dict[str, int]:
        """Sizes of a symbol's internal state (all bounded by ``window_size``)."""
        ring = self._rings[symbol]
        return {"buffer": int(ring.pred.shape[0]), "filled": ring.count,
                "keys": len(ring.keys), "slots": len(ring.slot_key)}

    # -- recording -----------------------------------------------------------

    def add_prediction(self, symbol: Any, prediction: Any, actual: Any = None,
                          confidence: float = np.nan, timestamp: Any = None) -> None:
        """Add a prediction (``actual`` None while unknown; fill it in with
        :meth:`update_actual` by the same ``timestamp``). Timestamps should be unique per
        symbol within the window; a repeated one refers to the newest prediction."""
        ring = self._ring(symbol)
        slot = ring.pos
        old = ring.slot_key[slot]
        if old is not None and ring.keys.get(old) == slot:
            del ring.keys[old]
        key = _ts_key(timestamp)
        if key is None:
            key = ("auto", self._auto)
            self._auto += 1
        ring.pred[slot] = self._code(prediction)
        ring.actual[slot] = self._code(actual)
        ring.conf[slot] = np.nan if confidence is None else float(confidence)
        ring.ts[slot] = _ts_ns(key)
        ring.slot_key[slot] = key
        ring.keys[key] = slot
        ring.pos = (slot + 1) % self.window_size
        ring.count = min(ring.count + 1, self.window_size)

    def update_actual(self, symbol: Any, timestamp: Any, actual: Any) -> bool:
        """Set the actual outcome of the prediction made at ``timestamp`` (O(1) lookup).
        Returns False when it is not (or no longer) in the window."""
        ring = self._rings.get(symbol)
        if ring is None:
            return False
        slot = ring.keys.get(_ts_key(timestamp))
        if slot is None:
            return False
        ring.actual[slot] = self._code(actual)
        return True

    # -- metrics -------------------------------------------------------------

    def _completed(self, symbol: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ring = self._rings.get(symbol)
        if ring is None:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0)
        idx = ring.order()
        done = idx[ring.actual[idx] != _PENDING]
        return ring.pred[done], ring.actual[done], ring.conf[done]

    def calculate_metrics(self, symbol: Any) -> dict | None:
        """Metrics of the completed predictions (actual known) in the window.

        Returns None below ``min_samples`` completed predictions, else a dict: ``n``,
        ``pending`` (predictions still waiting for their actual), ``accuracy``,
        ``precision`` and ``recall`` ({class: value} over the sorted classes present in
        predictions or actuals, 0 where undefined, as ``sklearn.metrics`` with
        ``zero_division=0``), ``avg_confidence`` (mean of the non-NaN confidences; NaN if
        none) and ``prediction_distribution`` ({class: share of predictions}).
        """
        pred, actual, conf = self._completed(symbol)
        n = int(pred.shape[0])
        if n < self.min_samples or n == 0:
            return None
        k = len(self._labels)
        cm = np.bincount(actual * k + pred, minlength=k * k).reshape(k, k)
        tp = np.diag(cm).astype(np.float64)
        predicted = cm.sum(axis=0).astype(np.float64)
        true = cm.sum(axis=1).astype(np.float64)
        present = np.flatnonzero((predicted + true) > 0)
        try:  # sklearn's order: sorted labels
            present = np.asarray(sorted(present, key=lambda c: self._labels[c]), dtype=np.int64)
        except TypeError:  # mixed label types: keep first-appearance order
            pass
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = np.where(predicted > 0, tp / predicted, 0.0)
            rec = np.where(true > 0, tp / true, 0.0)
        labels = [self._labels[c] for c in present]
        valid_conf = conf[~np.isnan(conf)]
        ring = self._rings[symbol]
        idx = ring.order()
        return {
            "n": n,
            "pending": int((ring.actual[idx] == _PENDING).sum()),
            "accuracy": float(tp.sum() / n),
            "precision": {lab: float(prec[c]) for lab, c in zip(labels, present, strict=True)},
            "recall": {lab: float(rec[c]) for lab, c in zip(labels, present, strict=True)},
            "avg_confidence": float(valid_conf.mean()) if len(valid_conf) else np.nan,
            "prediction_distribution": {lab: float(predicted[c] / n)
                                        for lab, c in zip(labels, present, strict=True)},
        }

    def set_baseline(self, symbol: Any, metrics: dict | None = None) -> dict | None:
        """Remember ``metrics`` (default: the current :meth:`calculate_metrics`) as the
        symbol's baseline for :meth:`check_drift`; returns it (None if not enough data)."""
        metrics = self.calculate_metrics(symbol) if metrics is None else dict(metrics)
        if metrics is not None:
            self._baselines[symbol] = metrics
        return metrics

    def baseline(self, symbol: Any) -> dict | None:
        """The symbol's baseline metrics, if set."""
        return self._baselines.get(symbol)

    def check_drift(self, symbol: Any) -> DriftCheck:
        """Compare the current metrics with the baseline.

        Drifted when ``baseline accuracy - current accuracy > drift_threshold`` or
        ``|current - baseline average confidence| > confidence_threshold``; the message
        says which and by how much.

        Examples
        --------
        >>> m = ModelMonitor(window_size=100, min_samples=100)
        >>> for i in range(100):
        ...     m.add_prediction("A", 1, 1 if i % 10 else 0, 0.6, timestamp=i)
        >>> _ = m.set_baseline("A")
        >>> for i in range(100, 200):
        ...     m.add_prediction("A", 1, 1 if i % 2 else 0, 0.9, timestamp=i)
        >>> check = m.check_drift("A")
        >>> bool(check), check.reasons
        (True, ('accuracy', 'confidence'))
        >>> check.message
        'A: accuracy dropped by 0.400 (0.900 -> 0.500, threshold 0.100); average confidence moved by +0.300 (0.600 -> 0.900, threshold 0.150)'
        """  # noqa: E501
        base = self._baselines.get(symbol)
        cur = self.calculate_metrics(symbol)
        if base is None:
            return DriftCheck(symbol, False, np.nan, np.nan, (), f"{symbol}: no baseline set")
        if cur is None:
            return DriftCheck(symbol, False, np.nan, np.nan, (),
                              f"{symbol}: fewer than {self.min_samples} completed predictions")
        return _judge(symbol, base["accuracy"], cur["accuracy"], base["avg_confidence"],
                      cur["avg_confidence"], self.drift_threshold, self.confidence_threshold)

    # -- frames and the store ------------------------------------------------

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, window_size: int = 1000, **kwargs) -> ModelMonitor:
        """A monitor holding the last ``window_size`` rows per symbol of ``frame``
        (``symbol, timestamp, prediction`` and optional ``actual, confidence``; rows in time
        order per symbol), as if they were recorded one by one, without a Python loop over
        rows.

        >>> df = pd.DataFrame({"symbol": "A", "timestamp": range(300),
        ...                    "prediction": [0, 1] * 150, "actual": 1, "confidence": 0.6})
        >>> ModelMonitor.from_frame(df, window_size=200).calculate_metrics("A")["n"]
        200
        """
        frame = _check_frame(frame)
        mon = cls(window_size=window_size, **kwargs)
        for col in ("prediction", "actual"):
            for label in pd.unique(frame[col].dropna()):
                mon._code(label)
        pred = frame["prediction"].map(mon._codes).to_numpy(np.int64)
        actual = frame["actual"].map(mon._codes).fillna(_PENDING).to_numpy(np.int64)
        conf = frame["confidence"].to_numpy(np.float64, na_value=np.nan)
        keys = frame["timestamp"].map(_ts_key).to_numpy(object)
        for symbol, idx in frame.groupby("symbol", sort=False).indices.items():
            idx = idx[-mon.window_size:]
            ring = mon._ring(symbol)
            m = len(idx)
            ring.pred[:m] = pred[idx]
            ring.actual[:m] = actual[idx]
            ring.conf[:m] = conf[idx]
            ring.ts[:m] = [_ts_ns(k) for k in keys[idx]]
            ring.slot_key[:m] = list(keys[idx])
            ring.keys = {k: i for i, k in enumerate(keys[idx])}
            ring.count = m
            ring.pos = m % mon.window_size
        return mon

    def performance_frame(self) -> pd.DataFrame:
        """Daily rows for the store's ``model_performance`` table from the completed
        predictions in the windows (needs timestamps): ``date, symbol, model_type,
        predictions_count, correct_predictions, avg_confidence``."""
        parts = []
        for symbol, ring in self._rings.items():
            idx = ring.order()
            idx = idx[(ring.actual[idx] != _PENDING) & (ring.ts[idx] != np.iinfo(np.int64).min)]
            if len(idx):
                parts.append(pd.DataFrame({
                    "symbol": symbol, "timestamp": pd.to_datetime(ring.ts[idx], utc=True),
                    "prediction": ring.pred[idx], "actual": ring.actual[idx],
                    "confidence": ring.conf[idx]}))
        if not parts:
            return model_performance_frame(pd.DataFrame(columns=list(FRAME_COLUMNS)),
                                           self.model_type)
        return model_performance_frame(pd.concat(parts, ignore_index=True), self.model_type)


def _judge(symbol: Any, base_acc: float, acc: float, base_conf: float, conf: float,
           acc_threshold: float, conf_threshold: float) -> DriftCheck:
    drop = base_acc - acc
    change = conf - base_conf
    reasons, parts = [], []
    if drop > acc_threshold:
        reasons.append("accuracy")
        parts.append(f"accuracy dropped by {drop:.3f} ({base_acc:.3f} -> {acc:.3f}, "
                     f"threshold {acc_threshold:.3f})")
    if abs(change) > conf_threshold:
        reasons.append("confidence")
        parts.append(f"average confidence moved by {change:+.3f} ({base_conf:.3f} -> "
                     f"{conf:.3f}, threshold {conf_threshold:.3f})")
    if not parts:
        parts.append(f"no drift: accuracy {acc:.3f} (baseline {base_acc:.3f}), average "
                     f"confidence {conf:.3f} (baseline {base_conf:.3f})")
    return DriftCheck(symbol, bool(reasons), float(drop), float(change), tuple(reasons),
                      f"{symbol}: " + "; ".join(parts))


def _check_frame(frame: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise DataError("expected a DataFrame of predictions")
    missing = [c for c in ("symbol", "timestamp", "prediction") if c not in frame.columns]
    if missing:
        raise DataError(f"<predictions>: missing column(s) {missing}")
    out = frame.copy(deep=False)
    if "actual" not in out.columns:
        out["actual"] = None
    if "confidence" not in out.columns:
        out["confidence"] = np.nan
    return out.reset_index(drop=True)


def model_timeline(frame: pd.DataFrame, window_size: int = 1000, *, baseline: Any = None,
                   drift_threshold: float = 0.10, confidence_threshold: float = 0.15,
                   min_samples: int = 100) -> pd.DataFrame:
    """What a :class:`ModelMonitor` would report after each prediction, vectorized.

    Each row's ``actual`` is taken as known when it is recorded (stamp rows with the time
    the outcome became known). Per symbol and row: ``n`` completed predictions in the window
    (the last ``window_size`` rows), ``accuracy``, ``avg_confidence`` (NaN below
    ``min_samples``), and against the baseline — the metrics at the last row stamped
    before ``baseline`` (a time), or after the first ``baseline`` rows (an int), default the
    first ``window_size`` rows — ``accuracy_drop``, ``confidence_change``,
    ``accuracy_drift``, ``confidence_drift`` and ``drifted``.

    >>> df = pd.DataFrame({"symbol": "A", "timestamp": range(400),
    ...                    "prediction": 1, "actual": [1] * 200 + [0, 1] * 100,
    ...                    "confidence": 0.7})
    >>> tl = model_timeline(df, window_size=100, baseline=200)
    >>> int(tl.loc[tl["drifted"], "timestamp"].min())  # the 11th miss in the window
    220
    """
    frame = _check_frame(frame)
    parts = []
    for symbol, idx in frame.groupby("symbol", sort=False).indices.items():
        g = frame.iloc[idx]
        pred = g["prediction"].to_numpy(object)
        act = g["actual"].to_numpy(object)
        done = ~pd.isna(g["actual"]).to_numpy()
        hit = (done & (pred == act)).astype(np.int64)
        conf = g["confidence"].to_numpy(np.float64, na_value=np.nan)
        has_conf = done & ~np.isnan(conf)

        def rolling_sum(x: np.ndarray) -> np.ndarray:
            c = np.concatenate([[0], np.cumsum(x)])
            i = np.arange(1, len(x) + 1)
            return c[i] - c[np.maximum(i - window_size, 0)]

        n = rolling_sum(done.astype(np.int64))
        acc = np.where(n >= max(min_samples, 1), rolling_sum(hit) / np.maximum(n, 1), np.nan)
        nc = rolling_sum(has_conf.astype(np.int64))
        avg_conf = rolling_sum(np.where(has_conf, conf, 0.0)) / np.maximum(nc, 1)
        avg_conf = np.where((n >= max(min_samples, 1)) & (nc > 0), avg_conf, np.nan)
        if baseline is None:
            b = min(window_size, len(g)) - 1
        elif isinstance(baseline, int | np.integer):
            b = int(baseline) - 1
        else:
            ts = pd.DatetimeIndex(pd.to_datetime(g["timestamp"], utc=True))
            when = pd.Timestamp(baseline)
            when = when.tz_localize("UTC") if when.tzinfo is None else when
            b = int(ts.searchsorted(when, side="left")) - 1
        b_acc = acc[b] if 0 <= b < len(g) else np.nan
        b_conf = avg_conf[b] if 0 <= b < len(g) else np.nan
        drop = b_acc - acc
        change = avg_conf - b_conf
        after = np.arange(len(g)) > b
        with np.errstate(invalid="ignore"):
            acc_drift = after & (drop > drift_threshold)
            conf_drift = after & (np.abs(change) > confidence_threshold)
        parts.append(pd.DataFrame({
            "symbol": symbol, "timestamp": g["timestamp"].to_numpy(), "n": n,
            "accuracy": acc, "avg_confidence": avg_conf, "accuracy_drop": drop,
            "confidence_change": change, "accuracy_drift": acc_drift,
            "confidence_drift": conf_drift, "drifted": acc_drift | conf_drift}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def model_performance_frame(frame: pd.DataFrame, model_type: str = "model") -> pd.DataFrame:
    """Daily rows of the store's ``model_performance`` table from a frame of predictions
    (``symbol, timestamp, prediction, actual, confidence``; rows without an actual are
    skipped): ``date, symbol, model_type, predictions_count, correct_predictions,
    avg_confidence``.

    >>> df = pd.DataFrame({"symbol": "A", "prediction": [1, 0, 1], "actual": [1, 1, 1],
    ...     "timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00",
    ...                                  "2024-01-02 09:00"], utc=True), "confidence": 0.6})
    >>> model_performance_frame(df)[["predictions_count", "correct_predictions"]].values.tolist()
    [[2, 1], [1, 1]]
    """
    frame = _check_frame(frame)
    done = frame[~pd.isna(frame["actual"])]
    cols = ["date", "symbol", "model_type", "predictions_count", "correct_predictions",
            "avg_confidence"]
    if done.empty:
        return pd.DataFrame({c: [] for c in cols})
    ts = pd.to_datetime(done["timestamp"], utc=True)
    work = pd.DataFrame({
        "date": ts.dt.tz_convert("UTC").dt.normalize().dt.tz_localize(None).to_numpy(),
        "symbol": done["symbol"].to_numpy(),
        "hit": (done["prediction"].to_numpy(object) == done["actual"].to_numpy(object)),
        "confidence": done["confidence"].to_numpy(np.float64, na_value=np.nan)})
    g = work.groupby(["date", "symbol"], sort=True)
    out = pd.DataFrame({"predictions_count": g.size(),
                        "correct_predictions": g["hit"].sum().astype(np.int64),
                        "avg_confidence": g["confidence"].mean()}).reset_index()
    out["model_type"] = model_type
    out["date"] = pd.to_datetime(out["date"]).dt.date
    return out[cols]
