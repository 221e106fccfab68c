"""Labels of future price moves, and their alignment with features.

A label at bar t describes what happens **after** t: it uses the closes of bars
``t + 1 .. t + horizon`` of the same symbol, relative to t's close (the price at
which a signal at t fills under the default execution). It is therefore only known
at the close of bar ``t + horizon``; that time is returned as ``t1`` and is what
:mod:`~alphatrade_lab.models.validation` purges on. Rows without a full horizon are
dropped (a symbol's last ``horizon`` rows), never labelled from a partial future.

Kinds
-----
``"direction"``
    ``r = log(c[t+h] / c[t])``; label 1 if ``r > thr_t``, -1 if ``r < -thr_t``, else 0.
``"triple_barrier"``
    The close path ``log(c[t+j] / c[t])``, ``j = 1..h``, is watched for an upper barrier
    ``upper * thr_t`` (label 1) and a lower barrier ``-lower * thr_t`` (label -1); the
    first touch wins and ``t1`` is the touching bar's timestamp. At the vertical barrier
    (``j = h``) the label is 0 (``vertical="zero"``) or the sign of the return
    (``vertical="sign"``).

The threshold ``thr_t`` is ``threshold`` (a log return) or, with ``vol_window``,
``threshold * vol_t * sqrt(horizon)`` where ``vol_t`` is the sample std of 1-bar log
returns over the ``vol_window`` bars ending at t (known at t, no lookahead); rows whose
volatility is not defined yet are dropped too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.features import kernels as features_nb
from alphatrade_lab.features._input import check_bars
from alphatrade_lab.models import kernels as nb

__all__ = ["LabelSpec", "align", "labels"]

_KINDS = ("direction", "triple_barrier")
_VERTICAL = ("zero", "sign")
_KEYS = ["timestamp", "symbol"]


@dataclass(frozen=True)
class LabelSpec:
    """How labels are made, frozen and JSON-able (stored in a model bundle).

    Parameters
    ----------
    kind
        ``"direction"`` or ``"triple_barrier"`` (see the module docstring).
    horizon
        Bars ahead (>= 1).
    threshold
        Dead band as a log return, or a multiple of ``vol * sqrt(horizon)`` when
        ``vol_window`` is set (>= 0).
    vol_window
        Window of the rolling volatility that scales the threshold (None: absolute).
    upper, lower
        Triple-barrier multiples of the threshold (> 0).
    vertical
        Triple-barrier label at the vertical barrier: ``"zero"`` or ``"sign"``.

    Examples
    --------
    >>> spec = LabelSpec(horizon=4, threshold=0.5, vol_window=24)
    >>> LabelSpec.from_dict(spec.to_dict()) == spec
    True
    >>> LabelSpec(horizon=0)
    Traceback (most recent call last):
    ...
    ValueError: LabelSpec argument 'horizon': must be a whole number >= 1 (got 0)
    """

    kind: str = "direction"
    horizon: int = 1
    threshold: float = 0.0
    vol_window: int | None = None
    upper: float = 1.0
    lower: float = 1.0
    vertical: str = "zero"

    def __post_init__(self) -> None:
        def bad(name: str, what: str) -> ValueError:
            return ValueError(f"LabelSpec argument {name!r}: {what} (got {getattr(self, name)!r})")

        if self.kind not in _KINDS:
            raise bad("kind", f"must be one of {_KINDS}")
        if self.vertical not in _VERTICAL:
            raise bad("vertical", f"must be one of {_VERTICAL}")
        for name, minimum in (("horizon", 1), ("vol_window", 2)):
            v = getattr(self, name)
            if v is None and name == "vol_window":
                continue
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < minimum:
                raise bad(name, f"must be a whole number >= {minimum}")
            object.__setattr__(self, name, int(v))
        for name, strict in (("threshold", False), ("upper", True), ("lower", True)):
            v = getattr(self, name)
            ok = isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
            if not ok or v < 0 or (strict and v == 0):
                raise bad(name, "must be a finite number " + ("> 0" if strict else ">= 0"))
            object.__setattr__(self, name, float(v))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelSpec:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"LabelSpec.from_dict: unknown keys {unknown}")
        return cls(**d)


def labels(bars: pd.DataFrame, spec: LabelSpec | None = None, **options: Any) -> pd.DataFrame:
    """Label each bar by the move of the next ``horizon`` bars of its symbol.

    Parameters
    ----------
    bars
        Long-form bars sorted by (symbol, timestamp) (``timestamp, symbol, close``
        are used).
    spec
        A :class:`LabelSpec`; default ``LabelSpec()``.
    **options
        Overrides of single spec fields (``horizon=4``, ``kind="triple_barrier"``).

    Returns
    -------
    pandas.DataFrame
        The labelled rows (rows without a full horizon or a defined threshold are
        dropped), in input order with the input's index: ``timestamp``, ``symbol``,
        ``label`` (int64 in {-1, 0, 1}), ``fwd_return`` (log return at the horizon or
        the barrier touch), ``threshold`` (``thr_t``) and ``t1`` (timestamp of the last
        bar the label uses; known at that bar's close). ``attrs["label_spec"]`` holds
        ``spec.to_dict()``.

    Raises
    ------
    DataError
        For missing columns, bad prices or unsorted rows (naming the row).

    Examples
    --------
    >>> import pandas as pd
    >>> ts = pd.date_range("2024-01-01", periods=5, freq="h", tz="UTC")
    >>> bars = pd.DataFrame({"timestamp": ts, "symbol": "A",
    ...                      "close": [100.0, 101.0, 100.0, 100.0, 99.0]})
    >>> y = labels(bars, horizon=1, threshold=0.001)
    >>> y["label"].tolist()
    [1, -1, 0, -1]
    >>> bool((y["t1"] == y["timestamp"] + pd.Timedelta("1h")).all())
    True
    """
    if spec is None:
        spec = LabelSpec(**options)
    elif not isinstance(spec, LabelSpec):
        raise TypeError(f"spec must be a LabelSpec, not {type(spec).__name__}")
    elif options:
        spec = dataclasses.replace(spec, **options)
    frame, ts, groups, a = check_bars(bars, ("close",), "labels")
    close = a["close"]
    n = len(close)
    if spec.vol_window is None:
        thr = np.full(n, spec.threshold)
    else:
        r1 = features_nb.log_return_nb(close, groups.starts, groups.ends, 1)
        vol = features_nb.rolling_std_nb(r1, groups.starts, groups.ends, spec.vol_window, 1)
        thr = spec.threshold * vol * np.sqrt(spec.horizon)
    if spec.kind == "direction":
        lab, ret, end = nb.direction_labels_nb(close, groups.starts, groups.ends, spec.horizon,
                                               thr)
    else:
        lab, ret, end = nb.triple_barrier_nb(close, groups.starts, groups.ends, spec.horizon,
                                             spec.upper * thr, spec.lower * thr,
                                             spec.vertical == "sign")
    keep = ~np.isnan(lab)
    stamps = pd.DatetimeIndex(frame["timestamp"])
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    out = pd.DataFrame({
        "timestamp": stamps[keep],
        "symbol": frame["symbol"].to_numpy()[keep],
        "label": lab[keep].astype(np.int64),
        "fwd_return": ret[keep],
        "threshold": thr[keep],
        "t1": stamps[end[keep]],
    }, index=frame.index[keep])
    out.attrs["label_spec"] = spec.to_dict()
    return out


def align(X: pd.DataFrame, y: pd.DataFrame, *, dropna: bool = True
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows present in both a feature frame and a label frame, matched by (timestamp, symbol).

    Parameters
    ----------
    X
        Features with ``timestamp`` and ``symbol`` columns (e.g. from ``technical``).
    y
        Labels from :func:`labels`.
    dropna
        Also drop rows with a NaN feature (e.g. the warm-up rows).

    Returns
    -------
    (X, y)
        Both with the same fresh ``RangeIndex``, in (symbol, timestamp) order of ``X``.
        ``attrs`` are kept (the feature and label specs travel with the frames).

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> bars = atl.data.load_sample(["AAA"]).head(500)
    >>> X, y = align(atl.features.technical(bars), labels(bars, horizon=5))
    >>> len(X) == len(y) and bool((X["timestamp"] == y["timestamp"]).all())
    True
    """
    for name, frame in (("X", X), ("y", y)):
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"align: {name} must be a DataFrame, got {type(frame).__name__}")
        missing = [k for k in _KEYS if k not in frame.columns]
        if missing:
            raise DataError(f"align: {name} is missing column(s) {missing}")
    if "label" not in y.columns:
        raise DataError("align: y has no 'label' column (make it with atl.models.labels)")
    left = X.reset_index(drop=True)
    right = y.reset_index(drop=True)
    lt = pd.DatetimeIndex(left["timestamp"])
    rt = pd.DatetimeIndex(right["timestamp"])
    lt = lt.tz_localize("UTC") if lt.tz is None else lt
    rt = rt.tz_localize("UTC") if rt.tz is None else rt
    lkey = pd.MultiIndex.from_arrays([left["symbol"].to_numpy(), lt])
    rkey = pd.MultiIndex.from_arrays([right["symbol"].to_numpy(), rt])
    pos = rkey.get_indexer(lkey)
    keep = pos >= 0
    if dropna:
        feats = [c for c in left.columns if c not in _KEYS
                 and pd.api.types.is_numeric_dtype(left[c].dtype)]
        keep &= left[feats].notna().all(axis=1).to_numpy()
    Xa = left.loc[keep].reset_index(drop=True)
    ya = right.iloc[pos[keep]].reset_index(drop=True)
    Xa.attrs, ya.attrs = dict(X.attrs), dict(y.attrs)
    return Xa, ya
