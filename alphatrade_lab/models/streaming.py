"""Scoring bars one at a time (or in small batches) with bounded memory.

:class:`StreamingScorer` keeps, per symbol, ring buffers of the last closes, log
closes, 1-bar log returns and volumes (sized by the longest window of the bundle's
:class:`~alphatrade_lab.features.FeatureSpec`) and the few running values of the
recursive features (EMAs of MACD, Wilder averages of RSI and ATR). For every bar it
emits the same features as :func:`~alphatrade_lab.features.technical` on the full
history, then the same probabilities and signal as
:meth:`ModelBundle.predict_proba` and :func:`~alphatrade_lab.models.signals`.
Memory is O(symbols × longest window), independent of the number of bars.

The model is evaluated by numba (:func:`~alphatrade_lab.models.compiled.compile_estimator`)
when its family is supported, else by scikit-learn; rows the compiled model cannot take
(NaN or infinite inputs the estimator refuses) go to scikit-learn, which raises as before.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.models import kernels as nb
from alphatrade_lab.models.bundle import FeatureMismatchWarning, ModelBundle
from alphatrade_lab.models.compiled import CompiledModel, compile_estimator
from alphatrade_lab.models.signals import _check_rule, direction_from_argmax, direction_from_proba

__all__ = ["StreamingScorer"]

_BAR = ("timestamp", "symbol", "high", "low", "close", "volume")
_NO_TIME = np.iinfo(np.int64).min


def _ns(ts: Any) -> int:
    if type(ts) is int:  # nanoseconds since the epoch, as pd.Timestamp reads an int
        return ts
    if type(ts) is pd.Timestamp and ts.tzinfo is not None:
        return ts.value
    t = pd.Timestamp(ts)
    return (t.tz_localize("UTC") if t.tzinfo is None else t).value


class StreamingScorer:
    """Score bars as they arrive, with the results of the vectorized path.

    Parameters
    ----------
    bundle
        A :class:`ModelBundle` with a feature spec; its features must be (mostly) among
        the spec's (missing ones are filled with training means, as in
        :meth:`ModelBundle.predict_proba`).
    threshold, exit_on_flat, rule
        As in :func:`~alphatrade_lab.models.signals` (``rule="argmax"``: the most probable
        class, for an exported policy).
    spec
        A FeatureSpec to use when the bundle has none.
    compiled
        Evaluate the model with numba when its family is supported (the default); False
        always calls scikit-learn's ``predict_proba``. :attr:`compiled_model` is the
        compiled model in use, or None.

    Examples
    --------
    >>> import numpy as np
    >>> import alphatrade_lab as atl
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> bars = atl.data.resample(atl.data.load_sample(["AAA"]), "1h").head(1200)
    >>> X, y = atl.models.align(atl.features.technical(bars), atl.models.labels(bars))
    >>> model = make_pipeline(StandardScaler(), LogisticRegression())
    >>> b = atl.models.train(X, y, model, n_splits=2, progress=False)
    >>> scorer = atl.models.StreamingScorer(b, threshold=0.55)
    >>> out = scorer.update(bars)                 # a batch ...
    >>> one = scorer.update_one(**bars.iloc[-1].to_dict() | {"timestamp": "2030-01-01"})
    >>> p = b.predict_proba(atl.features.technical(bars))
    >>> bool(np.allclose(out[b.classes].to_numpy(), p.to_numpy(), atol=1e-9))
    True
    >>> sorted(one)[:3]
    ['confidence', 'direction', 'entry']
    """

    # Per-symbol state, one row per symbol code (set and grown by _alloc).
    _scal: np.ndarray
    _last_t: np.ndarray
    _cring: np.ndarray
    _lring: np.ndarray
    _rring: np.ndarray
    _vring: np.ndarray

    def __init__(self, bundle: ModelBundle, threshold: float = 0.5, *,
                 exit_on_flat: bool = True, spec: Any = None, compiled: bool = True,
                 rule: str = "threshold"):
        self.rule = _check_rule(rule)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        if bundle.nan_policy == "error":
            raise ValueError("StreamingScorer: the bundle's nan_policy is 'error', but every "
                             "symbol's warm-up bars have NaN features; use 'mean', 'zero' or "
                             "'passthrough'")
        spec = bundle.spec if spec is None else spec
        if spec is None:
            raise DataError("StreamingScorer: the bundle has no feature spec (pass spec=...)")
        self.bundle = bundle
        self.spec = spec
        self.threshold = float(threshold)
        self.exit_on_flat = exit_on_flat
        self.feature_names = spec.feature_names
        idx, missing, _ = bundle.column_plan(self.feature_names)
        if missing:
            warnings.warn(f"{len(missing)} bundle feature(s) are not made by the feature spec "
                          f"and are filled with their training means: {missing}",
                          FeatureMismatchWarning, stacklevel=2)
        self._idx = idx
        self._means = np.ascontiguousarray(bundle.means, dtype=np.float64)
        fill = {"mean": self._means, "zero": np.zeros(len(idx))}  # NaN: passthrough
        self._fill = fill.get(bundle.nan_policy, np.full(len(idx), np.nan))
        cm = compile_estimator(bundle.model) if compiled else None
        self.compiled_model: CompiledModel | None = (
            cm if cm is not None and cm.classes == list(bundle.classes)
            and cm.n_features == len(idx) else None)
        self._params = (np.asarray(spec.return_horizons, dtype=np.int64),
                        np.asarray(spec.vol_windows, dtype=np.int64),
                        np.asarray(spec.ma_windows, dtype=np.int64),
                        spec.rsi_window, spec.macd_fast, spec.macd_slow, spec.macd_signal,
                        spec.atr_window, spec.bb_window, spec.bb_k, spec.volume_window,
                        spec.skew_window)
        self._lc = max(max(spec.return_horizons) + 1, max(spec.ma_windows), spec.bb_window)
        self._lr = max(max(spec.vol_windows), spec.skew_window)
        self._lv = spec.volume_window
        self._classes = list(bundle.classes)
        # update_one's one-bar inputs: code, timestamp, high, low, close, volume.
        self._bar = (np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64),
                     *np.zeros((4, 1)))
        self._cls_pos = [next((j for j, c in enumerate(self._classes) if c == k), None)
                         for k in (-1, 0, 1)]
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every symbol."""
        self._codes: dict[Any, int] = {}
        self._alloc(4)

    def _alloc(self, cap: int) -> None:
        old = getattr(self, "_scal", None)
        n_old = 0 if old is None or not self._codes else len(self._codes)
        new = {
            "_scal": np.zeros((cap, nb.N_SCALARS)),
            "_last_t": np.full(cap, _NO_TIME, dtype=np.int64),
            "_cring": np.full((cap, self._lc), np.nan),
            "_lring": np.full((cap, self._lc), np.nan),
            "_rring": np.full((cap, self._lr), np.nan),
            "_vring": np.full((cap, self._lv), np.nan),
        }
        for name, arr in new.items():
            if n_old:
                arr[:n_old] = getattr(self, name)[:n_old]
            setattr(self, name, arr)

    def _code(self, symbol: Any) -> int:
        code = self._codes.get(symbol)
        if code is None:
            code = len(self._codes)
            if code >= self._scal.shape[0]:
                self._alloc(2 * self._scal.shape[0])
            self._codes[symbol] = code
        return code

    @property
    def symbols(self) -> list:
        """Symbols seen so far."""
        return list(self._codes)

    @property
    def state_bytes(self) -> int:
        """Bytes held by the per-symbol state (grows with symbols, never with bars)."""
        return sum(getattr(self, n).nbytes for n in
                   ("_scal", "_last_t", "_cring", "_lring", "_rring", "_vring"))

    # ------------------------------------------------------------------ scoring
    def _score(self, codes, t, high, low, close, volume, symbols_of) -> tuple:
        bad = nb.stream_check_nb(codes, t, close, high, low, volume, self._last_t)
        if bad >= 0:
            sym = symbols_of(bad)
            if t[bad] <= self._last_t[codes[bad]] or (
                    bad > 0 and any(codes[j] == codes[bad] and t[j] >= t[bad]
                                    for j in range(bad))):
                what = "is not after the previous bar of its symbol"
            else:
                what = "is not a valid bar (prices finite and > 0, volume >= 0, low <= high)"
            raise DataError(f"StreamingScorer, row {bad} [symbol {sym!r}, timestamp "
                            f"{pd.Timestamp(int(t[bad]), tz='UTC')}]: {what}; nothing was "
                            "updated")
        F = np.empty((len(codes), len(self.feature_names)))
        nb.stream_update_nb(codes, t, close, high, low, volume, self._scal, self._last_t,
                            self._cring, self._lring, self._rring, self._vring, *self._params, F)
        return F, self._proba(F)

    def _proba(self, F: np.ndarray) -> np.ndarray:
        """The model's probabilities (bundle class order) of feature rows."""
        A = np.empty((len(F), len(self._idx)))
        flags = nb.stream_align_nb(F, self._idx, self._means, self._fill, A)
        cm = self.compiled_model
        P = np.empty((len(F), len(self._classes)))
        if not len(F):
            return P
        if cm is not None and (flags == 0 or (flags == 1 and cm.allow_nan)):
            return cm.predict_proba_into(A, P)
        return self.bundle.proba_matrix(self.bundle.apply_nan_policy(A))

    def _signal(self, P: np.ndarray) -> tuple:
        zero = np.zeros(len(P))
        p_down, p_flat, p_up = (P[:, j] if j is not None else zero for j in self._cls_pos)
        if self.rule == "argmax":
            d, conf = direction_from_argmax(p_down, p_flat, p_up)
        else:
            d, conf = direction_from_proba(p_up, p_down, self.threshold)
        return d, conf, p_flat, p_up, p_down

    def update(self, bars: pd.DataFrame | dict | pd.Series) -> pd.DataFrame:
        """Feed one bar (a dict or Series) or a batch (long-form frame, rows in time order
        per symbol, symbols may interleave) and get one row per bar.

        Returns
        -------
        pandas.DataFrame
            ``timestamp``, ``symbol``, the spec's features, one probability column per
            class, then ``p_down``, ``p_flat``, ``p_up``, ``direction``, ``confidence``,
            ``entry``, ``exit``, ``short_entry``, ``short_exit`` (as
            :func:`~alphatrade_lab.models.signals`).

        Raises
        ------
        DataError
            A missing column, an invalid bar, or a bar not after its symbol's last one;
            the state is left unchanged.
        """
        if isinstance(bars, dict | pd.Series):
            bars = pd.DataFrame([dict(bars)])
        if not isinstance(bars, pd.DataFrame):
            raise DataError(f"StreamingScorer.update: expected bars, got {type(bars).__name__}")
        missing = [c for c in _BAR if c not in bars.columns]
        if missing:
            raise DataError(f"StreamingScorer.update: missing column(s) {missing}")
        ts = pd.DatetimeIndex(bars["timestamp"])
        ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
        sym = bars["symbol"].to_numpy()
        inv, uniq = pd.factorize(sym)
        n_before = len(self._codes)
        lookup = np.array([self._code(s) for s in uniq], dtype=np.int64)
        codes = lookup[inv] if len(sym) else np.zeros(0, dtype=np.int64)
        high, low, close, volume = (bars[c].to_numpy(dtype=np.float64, na_value=np.nan)
                                    for c in ("high", "low", "close", "volume"))
        try:
            F, P = self._score(codes, ts.as_unit("ns").asi8, high, low, close, volume,
                               lambda k: sym[k])
        except DataError:
            for s in list(self._codes)[n_before:]:  # forget symbols added by this batch
                del self._codes[s]
            raise
        d, conf, p_flat, p_up, p_down = self._signal(P)
        out: dict[str, Any] = {"timestamp": ts, "symbol": sym}
        out.update(zip(self.feature_names, F.T, strict=True))
        out.update((c, P[:, j]) for j, c in enumerate(self._classes))
        out.update(p_down=p_down, p_flat=p_flat, p_up=p_up, direction=d, confidence=conf,
                   entry=d == 1, exit=(d != 1) if self.exit_on_flat else (d == -1),
                   short_entry=d == -1,
                   short_exit=(d != -1) if self.exit_on_flat else (d == 1))
        frame = pd.DataFrame(out, index=bars.index)
        return frame

    def update_arrays(self, symbols: list, timestamps: np.ndarray, high: np.ndarray,
                      low: np.ndarray, close: np.ndarray, volume: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fast path for a few bars at once (the live engine's bars of one timestamp):
        ``timestamps`` as int64 nanoseconds since the epoch (UTC). Returns the direction
        (int64), the confidence and the probabilities (one row per bar, class order), the
        numbers :meth:`update` gives; a bad bar raises and leaves the state unchanged."""
        n_before = len(self._codes)
        codes = np.fromiter((self._code(s) for s in symbols), dtype=np.int64,
                            count=len(symbols))
        try:
            _, P = self._score(codes, np.asarray(timestamps, dtype=np.int64),
                               np.asarray(high, dtype=np.float64),
                               np.asarray(low, dtype=np.float64),
                               np.asarray(close, dtype=np.float64),
                               np.asarray(volume, dtype=np.float64), lambda k: symbols[k])
        except DataError:
            for s in list(self._codes)[n_before:]:
                del self._codes[s]
            raise
        d, conf, _, _, _ = self._signal(P)
        return d, conf, P

    def update_one(self, timestamp: Any, symbol: Any, high: float, low: float, close: float,
                   volume: float, **_ignored: Any) -> dict:
        """Fast path for a single bar: a dict with ``features`` (array in
        ``feature_names`` order), ``proba`` (array in class order), ``direction``,
        ``confidence``, ``entry`` and ``exit``. Other keyword fields (``open``) are
        ignored."""
        code = self._codes.get(symbol)
        new = code is None
        if new:
            code = self._code(symbol)
        b_code, b_t, b_high, b_low, b_close, b_volume = self._bar
        b_code[0], b_t[0] = code, _ns(timestamp)
        b_high[0], b_low[0], b_close[0], b_volume[0] = high, low, close, volume
        try:
            F, P = self._score(b_code, b_t, b_high, b_low, b_close, b_volume, lambda k: symbol)
        except DataError:
            if new:
                del self._codes[symbol]
            raise
        p = P[0].tolist()
        p_down, p_flat, p_up = (p[j] if j is not None else 0.0 for j in self._cls_pos)
        thr = self.threshold
        if self.rule == "argmax":
            confidence = max(p_down, p_flat, p_up)
            direction = -1 if p_down == confidence else (0 if p_flat == confidence else 1)
        elif p_up >= thr and p_up >= p_down:
            direction, confidence = 1, p_up
        elif p_down >= thr and p_down > p_up:
            direction, confidence = -1, p_down
        else:
            direction, confidence = 0, max(p_up, p_down)
        return {"timestamp": timestamp, "symbol": symbol, "features": F[0], "proba": P[0],
                "direction": direction, "confidence": confidence,
                "entry": direction == 1,
                "exit": direction != 1 if self.exit_on_flat else direction == -1}
