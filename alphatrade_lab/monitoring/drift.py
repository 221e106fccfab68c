"""Drift statistics of numeric and categorical samples, and the per-feature drift report.

Every statistic compares a *reference* sample (e.g. the training period) with a *current*
one. NaNs are never silently mixed into a number: they are removed before the statistic is
computed and **counted** in the result (``nan_ref``, ``nan_cur``), so a feature that drifted
into missing values shows up there; a sample left empty gives a NaN statistic. Infinite
values raise :class:`~alphatrade_lab.errors.DataError`.

=================  =========================================================================
``psi``            population stability index ``Σ (q_b - p_b) ln(q_b / p_b)`` over ``bins``
                   quantile bins of the reference (``p`` reference, ``q`` current bin
                   proportions, each floored at ``eps = 1e-4`` so an empty bin costs a finite
                   amount). Interior edges are ``np.quantile(ref, k / bins)``, duplicates
                   removed; the outer bins are open-ended. Rule of thumb: < 0.1 stable,
                   0.1–0.2 moderate, > 0.2 significant shift.
``ks``             two-sample Kolmogorov-Smirnov statistic and p-value, as
                   ``scipy.stats.ks_2samp(method="auto")`` (exact distribution when both
                   samples have at most 10,000 values, else the asymptotic one).
``wasserstein``    1-Wasserstein (earth mover's) distance, as
                   ``scipy.stats.wasserstein_distance``; ``normalized=True`` divides it by the
                   reference's population standard deviation (ddof=0), making it unit-free.
``js``             Jensen-Shannon distance (the square root of the divergence, natural log
                   unless ``base`` is given) of the two histograms on the PSI bins, as
                   ``scipy.spatial.distance.jensenshannon`` of the bin counts.
``chi2``           chi-square test of homogeneity of two categorical samples (e.g. predicted
                   classes): the 2 × k contingency table of category counts, as
                   ``scipy.stats.chi2_contingency(table, correction=False)``.
=================  =========================================================================

The numeric work (merges of sorted samples, quantile bins, the exact Smirnov tail of the KS
p-value for large samples) runs in the numba kernels of
:mod:`alphatrade_lab.monitoring.kernels`; sorting uses numpy's vectorized sort, in threads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError, location
from alphatrade_lab.monitoring import kernels as nb

__all__ = [
    "DEFAULT_THRESHOLDS",
    "METHODS",
    "DriftResult",
    "chi_square",
    "drift_report",
    "js_distance",
    "ks",
    "ks_pvalue",
    "psi",
    "wasserstein",
]

#: Numeric methods of :func:`drift_report`, in report order.
METHODS: tuple[str, ...] = ("psi", "ks", "wasserstein", "js")

#: Default thresholds. A feature has drifted when ``statistic > threshold``, except for the
#: tests (``ks``, ``chi2``), where it has drifted when ``p_value < threshold``. The
#: ``wasserstein`` threshold applies to the normalized distance (in reference std units).
DEFAULT_THRESHOLDS: dict[str, float] = {"psi": 0.2, "ks": 0.05, "wasserstein": 0.1,
                                        "js": 0.1, "chi2": 0.05}

_TESTS = ("ks", "chi2")
_EPS = 1e-4
_COL = {"psi": nb.PSI, "ks": nb.KS, "wasserstein": nb.WASSERSTEIN_NORM, "js": nb.JS}
REPORT_COLUMNS = ["feature", "method", "statistic", "p_value", "threshold", "drifted",
                  "n_ref", "n_cur", "nan_ref", "nan_cur"]


class DriftResult(NamedTuple):
    """Result of one drift statistic.

    Attributes
    ----------
    statistic
        The statistic (NaN when a sample has no valid value).
    p_value
        The test's p-value (``ks``, ``chi2``); NaN for distances.
    n_ref, n_cur
        Valid (non-NaN) values used from each sample.
    nan_ref, nan_cur
        NaN (missing) values removed from each sample.
    """

    statistic: float
    p_value: float
    n_ref: int
    n_cur: int
    nan_ref: int
    nan_cur: int


# ---------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------


def _values(x: Any, name: str) -> np.ndarray:
    arr = x.to_numpy() if isinstance(x, pd.Series | pd.Index) else np.asarray(x)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.size == max(arr.shape, default=0) else arr
        if arr.ndim != 1:
            raise DataError(f"<{name}>: expected a 1-d sample, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"<{name}>: expected numbers, got dtype {arr.dtype}") from exc
    return np.ascontiguousarray(arr, dtype=np.float64)


def _check_inf(sorted_row: np.ndarray, n_valid: int, raw: np.ndarray, source: str,
               column: Any = None) -> None:
    if n_valid and (sorted_row[0] == -np.inf or sorted_row[n_valid - 1] == np.inf):
        i = int(np.flatnonzero(np.isinf(raw))[0])
        raise DataError(f"{location(source, column, i)} is {raw[i]!r}; drift statistics "
                        "need finite values (NaN is allowed and counted)")


def _sorted_valid(x: Any, name: str) -> tuple[np.ndarray, int]:
    """Sorted non-NaN values of ``x`` and the count of NaN."""
    raw = _values(x, name)
    s = np.sort(raw)
    n = nb.count_valid_sorted_nb(s)
    _check_inf(s, n, raw, f"<{name}>")
    return s[:n], raw.shape[0] - n


# ---------------------------------------------------------------------------
# KS p-value (scipy's method="auto")
# ---------------------------------------------------------------------------


def _exact_ks(n1: int, n2: int, d: float) -> tuple[bool, float, float]:
    try:
        # scipy-stubs types scipy's public API only, not this private helper
        from scipy.stats._stats_py import _attempt_exact_2kssamp  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - scipy moved its private helper
        return False, d, np.nan
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), d, "two-sided")


def _kstwo_sf(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)``, with its slow branch (``2 * smirnov(n, d)``,
    O(n) in scipy) computed by :func:`~alphatrade_lab.monitoring.kernels.smirnov_sf_nb`."""
    from scipy import stats

    t = n * d
    if n > 140 and 1.0 < t < n - 1:
        if d >= 0.5:
            return min(max(2.0 * nb.smirnov_sf_nb(float(n), d), 0.0), 1.0)
        if t * d >= 370.0:
            return 0.0
        if t * d >= 2.2:
            return min(max(2.0 * nb.smirnov_sf_nb(float(n), d), 0.0), 1.0)
    return float(stats.kstwo.sf(d, n))


def ks_pvalue(d: float, n1: int, n2: int) -> tuple[float, float]:
    """Two-sided p-value of the KS statistic ``d`` of samples of sizes ``n1`` and ``n2``, as
    ``scipy.stats.ks_2samp(method="auto")`` computes it.

    Returns ``(statistic, p_value)``: in the exact mode scipy rounds the statistic to the
    lattice ``h / lcm(n1, n2)``, and so does this function.

    >>> from scipy import stats
    >>> a, b = np.arange(40) / 40, np.arange(50) / 50 + 0.1
    >>> ref = stats.ks_2samp(a, b)
    >>> d, p = ks_pvalue(ref.statistic, 40, 50)
    >>> bool(abs(p - ref.pvalue) < 1e-12)
    True
    """
    if not (n1 > 0 and n2 > 0) or not np.isfinite(d):
        return float(d), np.nan
    n1, n2 = int(n1), int(n2)
    if max(n1, n2) <= 10000:
        ok, d_exact, p = _exact_ks(n1, n2, float(d))
        if ok:
            return float(d_exact), float(min(max(p, 0.0), 1.0))
        d = d_exact
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(d), _kstwo_sf(float(d), int(np.round(en)))


# ---------------------------------------------------------------------------
# Single-sample functions
# ---------------------------------------------------------------------------


def _pair(ref: Any, cur: Any) -> tuple[np.ndarray, int, np.ndarray, int]:
    r, nan_r = _sorted_valid(ref, "ref")
    c, nan_c = _sorted_valid(cur, "cur")
    return r, nan_r, c, nan_c


def _check_bins(bins: int) -> int:
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, not {bins!r}")
    return int(bins)


def psi(ref: Any, cur: Any, bins: int = 10, eps: float = _EPS) -> DriftResult:
    """Population stability index of ``cur`` against ``ref`` on reference quantile bins.

    Parameters
    ----------
    ref, cur
        1-d numeric samples (arrays, lists, Series); NaNs are removed and counted.
    bins
        Number of quantile bins of the reference (fewer when quantiles coincide).
    eps
        Floor of every bin proportion, so that an empty bin adds a finite amount.

    Returns
    -------
    DriftResult
        ``statistic`` is the PSI (0 for identical distributions); ``p_value`` is NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=5000)
    >>> float(psi(ref, rng.normal(size=5000)).statistic) < 0.01
    True
    >>> float(psi(ref, rng.normal(1.0, 1.0, size=5000)).statistic) > 0.2
    True
    """
    r, nan_r, c, nan_c = _pair(ref, cur)
    edges = nb.quantile_edges_nb(r, _check_bins(bins))
    stat = nb.psi_counts_nb(nb.bin_counts_sorted_nb(r, edges), nb.bin_counts_sorted_nb(c, edges),
                            float(eps))
    return DriftResult(float(stat), np.nan, len(r), len(c), nan_r, nan_c)


def ks(ref: Any, cur: Any) -> DriftResult:
    """Two-sample Kolmogorov-Smirnov test (two-sided), as ``scipy.stats.ks_2samp``.

    Examples
    --------
    >>> from scipy import stats
    >>> rng = np.random.default_rng(1)
    >>> a, b = rng.normal(size=300), rng.normal(0.2, 1.0, size=200)
    >>> res, ref = ks(a, b), stats.ks_2samp(a, b)
    >>> bool(abs(res.statistic - ref.statistic) < 1e-12 and abs(res.p_value - ref.pvalue) < 1e-6)
    True
    """
    r, nan_r, c, nan_c = _pair(ref, cur)
    d, p = ks_pvalue(nb.ks_stat_nb(r, c), len(r), len(c))
    return DriftResult(d, p, len(r), len(c), nan_r, nan_c)


def wasserstein(ref: Any, cur: Any, normalized: bool = False) -> DriftResult:
    """1-Wasserstein distance, as ``scipy.stats.wasserstein_distance``.

    With ``normalized=True`` the distance is divided by the reference's population
    standard deviation (inf if the reference is constant and the samples differ).

    Examples
    --------
    >>> float(wasserstein([0.0, 1.0, 3.0], [5.0, 6.0, 8.0]).statistic)
    5.0
    """
    r, nan_r, c, nan_c = _pair(ref, cur)
    w = nb.wasserstein_nb(r, c)
    if normalized:
        sd = nb.std_nb(r)
        w = w / sd if sd > 0 else (0.0 if w == 0 else (np.inf if np.isfinite(w) else w))
    return DriftResult(float(w), np.nan, len(r), len(c), nan_r, nan_c)


def js_distance(ref: Any, cur: Any, bins: int = 10, base: float | None = None) -> DriftResult:
    """Jensen-Shannon distance of the two samples' histograms on the reference's quantile
    bins (the PSI bins), as ``scipy.spatial.distance.jensenshannon(ref_counts, cur_counts,
    base)``. Between 0 and ``sqrt(ln 2)`` (natural log) or 1 (``base=2``).

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> float(js_distance(rng.normal(size=2000), rng.normal(size=2000)).statistic) < 0.05
    True
    """
    r, nan_r, c, nan_c = _pair(ref, cur)
    edges = nb.quantile_edges_nb(r, _check_bins(bins))
    stat = nb.js_counts_nb(nb.bin_counts_sorted_nb(r, edges), nb.bin_counts_sorted_nb(c, edges),
                           0.0 if base is None else float(base))
    return DriftResult(float(stat), np.nan, len(r), len(c), nan_r, nan_c)


def chi_square(ref: Any, cur: Any) -> DriftResult:
    """Chi-square test that two categorical samples (labels, predicted classes) come from
    the same distribution: the 2 × k table of category counts, as
    ``scipy.stats.chi2_contingency(table, correction=False)``. Missing values (None, NaN)
    are counted, not treated as a category.

    Examples
    --------
    >>> res = chi_square(["up"] * 50 + ["down"] * 50, ["up"] * 80 + ["down"] * 20)
    >>> bool(res.p_value < 0.001), res.n_ref, res.n_cur
    (True, 100, 100)
    """
    from scipy import stats

    r = pd.Series(np.asarray(ref, dtype=object) if not isinstance(ref, pd.Series) else ref)
    c = pd.Series(np.asarray(cur, dtype=object) if not isinstance(cur, pd.Series) else cur)
    nan_r, nan_c = int(r.isna().sum()), int(c.isna().sum())
    codes, _ = pd.factorize(pd.concat([r.astype(object), c.astype(object)], ignore_index=True))
    codes = np.asarray(codes)
    k = int(codes.max()) + 1 if len(codes) else 0
    rc = np.bincount(codes[:len(r)][codes[:len(r)] >= 0], minlength=k).astype(np.float64)
    cc = np.bincount(codes[len(r):][codes[len(r):] >= 0], minlength=k).astype(np.float64)
    n_r, n_c = int(rc.sum()), int(cc.sum())
    if n_r == 0 or n_c == 0:
        return DriftResult(np.nan, np.nan, n_r, n_c, nan_r, nan_c)
    keep = (rc + cc) > 0
    table = np.vstack([rc[keep], cc[keep]])
    if table.shape[1] < 2:
        return DriftResult(0.0, 1.0, n_r, n_c, nan_r, nan_c)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    p = float(stats.chi2.sf(stat, table.shape[1] - 1))
    return DriftResult(stat, p, n_r, n_c, nan_r, nan_c)


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


def _feature_columns(ref: pd.DataFrame, cur: pd.DataFrame, features: Iterable[str] | None
                     ) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns present in both frames."""
    if features is None:
        skip = {"timestamp", "symbol"}
        features = [c for c in ref.columns if c not in skip]
    features = list(features)
    for frame, name in ((ref, "ref_frame"), (cur, "cur_frame")):
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise DataError(f"<{name}>: missing feature column(s) {missing}")
    numeric, categorical = [], []
    for f in features:
        dtype = ref[f].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            categorical.append(f)
        else:
            numeric.append(f)
    return numeric, categorical


def sorted_columns(frame: pd.DataFrame, columns: Sequence[str], name: str,
                   threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each column sorted (NaN last) as a row of a (f, n) float64 matrix, with the valid and
    NaN counts per column. Sorts run in threads (numpy releases the GIL)."""
    n = len(frame)
    out = np.empty((len(columns), n), dtype=np.float64)
    valid = np.zeros(len(columns), dtype=np.int64)

    def one(k: int) -> None:
        raw = _values(frame[columns[k]], f"{name}:{columns[k]}")
        row = out[k]
        row[:] = raw
        row.sort(kind="quicksort")
        valid[k] = nb.count_valid_sorted_nb(row)
        _check_inf(row, int(valid[k]), raw, f"<{name}>", columns[k])

    if threads is None:
        import numba

        threads = numba.get_num_threads()
    if threads > 1 and len(columns) > 1 and n >= 50_000:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(len(columns))))
    else:
        for k in range(len(columns)):
            one(k)
    return out, valid, n - valid


def _thresholds(thresholds: Mapping[str, float] | None) -> dict[str, float]:
    out = dict(DEFAULT_THRESHOLDS)
    if thresholds:
        unknown = set(thresholds) - set(out)
        if unknown:
            raise ValueError(f"unknown threshold method(s) {sorted(unknown)}; "
                             f"known: {sorted(out)}")
        out.update({k: float(v) for k, v in thresholds.items()})
    return out


def _methods(methods: Iterable[str] | str | None) -> list[str]:
    if methods is None:
        return list(METHODS)
    methods = [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be among {list(METHODS)}, not {methods!r}")
    return methods


def is_drifted(method: str, statistic: np.ndarray, p_value: np.ndarray,
               threshold: float) -> np.ndarray:
    """The drift rule: ``p_value < threshold`` for tests, ``statistic > threshold`` else
    (False where the value is NaN)."""
    with np.errstate(invalid="ignore"):
        if method in _TESTS:
            return np.asarray(p_value < threshold, dtype=bool)
        return np.asarray(statistic > threshold, dtype=bool)


def rows_from_stats(features: Sequence[str], methods: Sequence[str], stats: np.ndarray,
                    n_ref: np.ndarray, n_cur: np.ndarray, th: Mapping[str, float]
                    ) -> dict[str, np.ndarray]:
    """Long rows (feature-major, then method) of a kernel's (f, 5) statistics, with
    KS p-values."""
    cols: dict[str, list[np.ndarray]] = {"feature": [], "method": [], "statistic": [],
                                         "p_value": [], "threshold": [], "drifted": []}
    f = len(features)
    for m in methods:
        stat = stats[:, _COL[m]].copy()
        p = np.full(f, np.nan)
        if m == "ks":
            for k in range(f):
                stat[k], p[k] = ks_pvalue(stat[k], int(n_ref[k]), int(n_cur[k]))
        cols["feature"].append(np.asarray(features, dtype=object))
        cols["method"].append(np.full(f, m, dtype=object))
        cols["statistic"].append(stat)
        cols["p_value"].append(p)
        cols["threshold"].append(np.full(f, th[m]))
        cols["drifted"].append(is_drifted(m, stat, p, th[m]))
    out = {k: np.concatenate(v) if v else np.array([]) for k, v in cols.items()}
    # feature-major order
    order = np.argsort(np.tile(np.arange(f), len(methods)), kind="stable")
    return {k: v[order] for k, v in out.items()}


def drift_report(ref_frame: pd.DataFrame, cur_frame: pd.DataFrame,
                 methods: Iterable[str] | str | None = None,
                 thresholds: Mapping[str, float] | None = None, *, bins: int = 10,
                 features: Iterable[str] | None = None, js_base: float | None = None,
                 threads: int | None = None) -> pd.DataFrame:
    """Drift of every feature of ``cur_frame`` against ``ref_frame``, by several methods.

    Parameters
    ----------
    ref_frame, cur_frame
        Frames with the same feature columns (e.g. from
        :func:`alphatrade_lab.features.technical`); ``timestamp`` and ``symbol`` are not
        features. Rows may differ in number.
    methods
        Numeric methods among ``"psi", "ks", "wasserstein", "js"`` (default: all). The
        ``wasserstein`` statistic of the report is the **normalized** distance (in units of
        the reference's standard deviation). Non-numeric columns (object, category,
        string, bool) get the ``"chi2"`` test instead.
    thresholds
        Overrides of :data:`DEFAULT_THRESHOLDS` (PSI 0.2, KS p < 0.05, normalized
        Wasserstein 0.1, JS distance 0.1, chi-square p < 0.05).
    bins
        Quantile bins of the reference for PSI and JS.
    features
        Columns to compare (default: all but ``timestamp`` and ``symbol``).
    js_base
        Logarithm base of the JS distance (default: natural log, as scipy).
    threads
        Threads for sorting (default: numba's thread count).

    Returns
    -------
    pandas.DataFrame
        One row per feature and method, in feature order: ``feature, method, statistic,
        p_value`` (NaN for distances), ``threshold, drifted, n_ref, n_cur, nan_ref,
        nan_cur``. Each reference column is sorted once and shared by all methods; the
        features run in parallel (numba ``prange``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    >>> cur = pd.DataFrame({"a": rng.normal(size=1000), "b": rng.normal(2.0, 1.0, 1000)})
    >>> rep = drift_report(ref, cur)
    >>> rep.groupby("feature")["drifted"].all().to_dict()
    {'a': False, 'b': True}
    """
    if not isinstance(ref_frame, pd.DataFrame) or not isinstance(cur_frame, pd.DataFrame):
        raise DataError("drift_report: ref_frame and cur_frame must be DataFrames")
    methods = _methods(methods)
    th = _thresholds(thresholds)
    bins = _check_bins(bins)
    numeric, categorical = _feature_columns(ref_frame, cur_frame, features)
    parts = []
    if numeric:
        rs, n_ref, nan_ref = sorted_columns(ref_frame, numeric, "ref_frame", threads)
        cs, n_cur, nan_cur = sorted_columns(cur_frame, numeric, "cur_frame", threads)
        stats = nb.drift_stats_nb(rs, n_ref, cs, n_cur, bins, _EPS,
                                  0.0 if js_base is None else float(js_base))
        del rs, cs
        rows = rows_from_stats(numeric, methods, stats, n_ref, n_cur, th)
        reps = len(methods)
        rows.update(n_ref=np.repeat(n_ref, reps), n_cur=np.repeat(n_cur, reps),
                    nan_ref=np.repeat(nan_ref, reps), nan_cur=np.repeat(nan_cur, reps))
        parts.append(pd.DataFrame(rows))
    for f in categorical:
        res = chi_square(ref_frame[f], cur_frame[f])
        parts.append(pd.DataFrame({
            "feature": [f], "method": ["chi2"], "statistic": [res.statistic],
            "p_value": [res.p_value], "threshold": [th["chi2"]],
            "drifted": [bool(res.p_value < th["chi2"])], "n_ref": [res.n_ref],
            "n_cur": [res.n_cur], "nan_ref": [res.nan_ref], "nan_cur": [res.nan_cur]}))
    report = (pd.concat(parts, ignore_index=True) if parts
              else pd.DataFrame({c: [] for c in REPORT_COLUMNS}))[REPORT_COLUMNS]
    order = {f: i for i, f in enumerate([*numeric, *categorical])}
    if categorical and numeric:
        report = (report.assign(_o=report["feature"].map(order))
                  .sort_values("_o", kind="stable").drop(columns="_o").reset_index(drop=True))
    report = report.astype({"drifted": bool, "n_ref": np.int64, "n_cur": np.int64,
                            "nan_ref": np.int64, "nan_cur": np.int64})
    return report
