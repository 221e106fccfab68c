"""Drift over consecutive time windows against a fixed reference period, and its plot.

No lookahead: the value of a window ``[start, end)`` uses the reference rows and the rows
with a timestamp in the window only, so it is known at ``end`` (a row stamped with a bar's
open time is known at the bar's close, which is at or before ``end`` when the window length
is a multiple of the bar length). The reference period must end before the first window:
windows start where the reference ends, so a window never compares against data from its
own future.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError, location
from alphatrade_lab.monitoring import kernels as nb

if TYPE_CHECKING:
    from matplotlib.figure import Figure
from alphatrade_lab.monitoring.drift import (
    _EPS,
    _check_bins,
    _feature_columns,
    _methods,
    _thresholds,
    rows_from_stats,
    sorted_columns,
)

__all__ = ["first_drift", "plot_rolling_drift", "rolling_drift"]

ROLLING_COLUMNS = ["window_start", "window_end", "feature", "method", "statistic", "p_value",
                   "threshold", "drifted", "n_ref", "n_cur", "nan_cur"]


def _timestamps(frame: pd.DataFrame, name: str) -> pd.DatetimeIndex:
    if "timestamp" in frame.columns:
        ts = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True))
    elif isinstance(frame.index, pd.DatetimeIndex):
        ts = frame.index if frame.index.tz is not None else frame.index.tz_localize("UTC")
        ts = ts.tz_convert("UTC")
    else:
        raise DataError(f"<{name}>: needs a 'timestamp' column or a DatetimeIndex")
    if ts.isna().any():
        i = int(np.flatnonzero(ts.isna())[0])
        raise DataError(f"{location(f'<{name}>', 'timestamp', i)} is missing")
    return ts.as_unit("ns")


def _utc(t: Any) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _reference_span(reference: Any, ts: pd.DatetimeIndex) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = ts.min()
    if isinstance(reference, tuple | list) and len(reference) == 2:
        lo = start if reference[0] is None else _utc(reference[0])
        return lo, _utc(reference[1])
    if isinstance(reference, pd.Timedelta) or (isinstance(reference, str)
                                                and _is_timedelta(reference)):
        return start, start + pd.Timedelta(reference)
    if isinstance(reference, str | pd.Timestamp | np.datetime64):
        return start, _utc(reference)
    raise TypeError("reference must be a DataFrame, a (start, end) pair, an end time, or a "
                    f"length such as '90D' from the first row; got {reference!r}")


def _is_timedelta(text: str) -> bool:
    try:
        pd.Timedelta(text)
    except ValueError:
        return False
    return True


def rolling_drift(X: pd.DataFrame, reference: Any, window: str | pd.Timedelta = "1D", *,
                  methods: Iterable[str] | str | None = None,
                  thresholds: Mapping[str, float] | None = None, bins: int = 10,
                  features: Iterable[str] | None = None, min_count: int = 10,
                  js_base: float | None = None) -> pd.DataFrame:
    """Drift statistics of consecutive time windows of ``X`` against a reference period.

    Parameters
    ----------
    X
        Feature frame with a ``timestamp`` column (e.g. long form from
        :func:`alphatrade_lab.features.technical`, all symbols pooled) or a DatetimeIndex.
    reference
        The reference: a frame with the same feature columns (windows then start at the
        first row of ``X`` floored to ``window``); a ``(start, end)`` pair of times (rows
        with ``start <= timestamp < end``; ``None`` start means the first row); an end
        time; or a length such as ``"90D"`` counted from the first row of ``X``. Windows
        start at the reference's end. (A *fraction* of the data is not accepted: it would
        move with the data's end, which is lookahead.)
    window
        Window length (``"1D"``, ``"6h"``, ``pd.Timedelta``): windows are
        ``[end_ref + k * window, end_ref + (k + 1) * window)`` up to the last row.
    methods, thresholds, bins, js_base
        As :func:`~alphatrade_lab.monitoring.drift_report` (numeric features only).
    features
        Columns to compare (default: every numeric column but ``timestamp``/``symbol``).
    min_count
        Windows with fewer valid values of a feature get a NaN statistic (not drifted).
    Returns
    -------
    pandas.DataFrame
        Long form, one row per window, feature and method: ``window_start, window_end,
        feature, method, statistic, p_value, threshold, drifted, n_ref, n_cur, nan_cur``.
        ``attrs`` holds the reference span. Pivot with
        ``result.pivot_table(index="window_end", columns=["method", "feature"],
        values="statistic")``, plot with :func:`plot_rolling_drift`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ts = pd.date_range("2024-01-01", periods=24 * 20, freq="1h", tz="UTC")
    >>> x = rng.normal(size=len(ts)) * np.where(ts >= "2024-01-15", 3.0, 1.0)
    >>> X = pd.DataFrame({"timestamp": ts, "x": x})
    >>> out = rolling_drift(X, reference="10D", window="1D", methods="ks")
    >>> out.loc[out["drifted"], "window_start"].min()
    Timestamp('2024-01-15 00:00:00+0000', tz='UTC')
    """
    if not isinstance(X, pd.DataFrame):
        raise DataError("rolling_drift: X must be a DataFrame")
    methods = _methods(methods)
    th = _thresholds(thresholds)
    bins = _check_bins(bins)
    step = pd.Timedelta(window)
    if step <= pd.Timedelta(0):
        raise ValueError(f"window must be positive, not {window!r}")
    ts = _timestamps(X, "X")
    if isinstance(reference, pd.DataFrame):
        ref_frame = reference
        cols, categorical = _feature_columns(ref_frame, X, features)
        first = ts.min() if len(ts) else pd.Timestamp(0, tz="UTC")
        ref_start, ref_end = None, first.floor(step)
    else:
        ref_start, ref_end = _reference_span(reference, ts)
        in_ref = np.asarray((ts >= ref_start) & (ts < ref_end))
        ref_frame = X.loc[in_ref]
        cols, categorical = _feature_columns(X, X, features)
    cols = [c for c in cols if c not in categorical]
    if not cols:
        raise DataError("rolling_drift: no numeric feature column to compare")
    ref_end = ref_end.as_unit("ns")
    if len(ref_frame) == 0:
        raise DataError(f"rolling_drift: the reference period [{ref_start}, {ref_end}) has "
                        "no rows")

    # Rows of X after the reference end, in time order, cut into windows.
    after = np.flatnonzero(np.asarray(ts >= ref_end))
    order = after[np.argsort(ts.asi8[after], kind="stable")]
    t_ns = ts.asi8[order]
    k = (t_ns - ref_end.value) // step.value
    n_windows = int(k.max()) + 1 if len(k) else 0
    bounds = np.searchsorted(k, np.arange(n_windows + 1))
    starts, ends = bounds[:-1].astype(np.int64), bounds[1:].astype(np.int64)

    rs, n_ref, _ = sorted_columns(ref_frame, cols, "reference")
    cur = np.empty((len(cols), len(order)), dtype=np.float64)
    for j, c in enumerate(cols):
        vals = X[c].to_numpy(np.float64, na_value=np.nan)[order]
        if np.isinf(vals).any():
            i = int(order[np.flatnonzero(np.isinf(vals))[0]])
            raise DataError(f"{location('<X>', c, i)} is infinite; drift statistics need "
                            "finite values (NaN is allowed and counted)")
        cur[j] = vals
    stats, valid, nans = nb.rolling_stats_nb(rs, n_ref, cur, starts, ends, bins, _EPS,
                                             0.0 if js_base is None else float(js_base),
                                             max(int(min_count), 1))
    parts = []
    for w in range(n_windows):
        rows = rows_from_stats(cols, methods, stats[w], n_ref, valid[w], th)
        reps = len(methods)
        w_start = ref_end + w * step
        rows.update(window_start=np.repeat(w_start, len(rows["feature"])),
                    window_end=np.repeat(w_start + step, len(rows["feature"])),
                    n_ref=np.repeat(n_ref, reps), n_cur=np.repeat(valid[w], reps),
                    nan_cur=np.repeat(nans[w], reps))
        parts.append(pd.DataFrame(rows))
    if parts:
        out = pd.concat(parts, ignore_index=True)[ROLLING_COLUMNS]
    else:
        out = pd.DataFrame({c: [] for c in ROLLING_COLUMNS})
    out = out.astype({"drifted": bool, "n_ref": np.int64, "n_cur": np.int64,
                      "nan_cur": np.int64, "statistic": np.float64, "p_value": np.float64})
    for c in ("window_start", "window_end"):
        out[c] = pd.to_datetime(out[c], utc=True).dt.as_unit("ns")
    out.attrs.update(reference_start=ref_start, reference_end=ref_end, window=str(step))
    return out


def first_drift(result: pd.DataFrame, method: str | None = None, features: Iterable[str] |
                None = None) -> pd.Series:
    """The first window end at which each feature drifted (NaT if never), by ``method``
    (any method when None).

    >>> df = pd.DataFrame({"window_end": pd.to_datetime(["2024-01-02", "2024-01-03"],
    ...                    utc=True), "feature": "x", "method": "ks", "drifted": [False, True]})
    >>> str(first_drift(df)["x"].date())
    '2024-01-03'
    """
    rows = result if method is None else result[result["method"] == method]
    if features is not None:
        rows = rows[rows["feature"].isin(list(features))]
    hit = rows[rows["drifted"]].groupby("feature")["window_end"].min()
    return hit.reindex(pd.unique(rows["feature"]))


def plot_rolling_drift(result: pd.DataFrame, methods: Iterable[str] | str | None = None,
                       features: Iterable[str] | None = None, top: int = 6,
                       events: Mapping[str, Any] | None = None) -> Figure:
    """Plot a :func:`rolling_drift` result: one panel per method, one line per feature.

    Parameters
    ----------
    result
        The output of :func:`rolling_drift`.
    methods
        Methods to show (default: all in ``result``). KS panels show ``-log10(p)`` against
        ``-log10(threshold)``; the others show the statistic against its threshold.
    features
        Features to draw (default: the ``top`` features with the most drifted windows).
    events
        Optional ``{label: time}`` vertical markers (e.g. a known regime change).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ts = pd.date_range("2024-01-01", periods=24 * 8, freq="1h", tz="UTC")
    >>> X = pd.DataFrame({"timestamp": ts, "x": rng.normal(size=len(ts))})
    >>> fig = plot_rolling_drift(rolling_drift(X, reference="4D", methods=["psi", "ks"]))
    >>> len(fig.axes)
    2
    """
    from alphatrade_lab._figure import NotebookFigure

    if methods is None:
        methods = list(pd.unique(result["method"]))
    methods = [methods] if isinstance(methods, str) else list(methods)
    if features is None:
        score = result.groupby("feature")["drifted"].sum().sort_values(ascending=False,
                                                                        kind="stable")
        features = list(score.index[:top])
    features = list(features)
    fig = NotebookFigure(figsize=(11, 2.6 * max(len(methods), 1)))
    axes = fig.subplots(len(methods), 1, sharex=True, squeeze=False)
    for ax, m in zip(axes[:, 0], methods, strict=True):
        rows = result[(result["method"] == m) & result["feature"].isin(features)]
        wide = rows.pivot_table(index="window_end", columns="feature", values=(
            "p_value" if m == "ks" else "statistic"), dropna=False)
        threshold = float(rows["threshold"].iloc[0]) if len(rows) else np.nan
        if m == "ks":
            wide = -np.log10(wide.clip(lower=1e-300))
            threshold = -np.log10(threshold)
            ax.set_ylabel("ks: -log10 p")
        else:
            ax.set_ylabel(m)
        for f in features:
            if f in wide.columns:
                ax.plot(wide.index, wide[f], lw=1.0, label=f)
        ax.axhline(threshold, color="k", ls="--", lw=0.8)
        for label, when in (events or {}).items():
            ax.axvline(_utc(when), color="r", lw=0.8)
            ax.annotate(label, (_utc(when), 1.0), xycoords=("data", "axes fraction"),
                        fontsize=7, color="r", va="top")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=min(len(features), 6), loc="upper left")
    ref = result.attrs.get("reference_end")
    axes[0, 0].set_title("Rolling drift against the reference"
                         + (f" (ending {ref:%Y-%m-%d %H:%M})" if ref is not None else "")
                         + "; dashed: threshold")
    fig.tight_layout()
    return fig
