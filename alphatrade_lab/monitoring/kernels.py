"""Numba kernels for drift statistics (plain arrays in, plain arrays out).

Conventions: a *sorted* input holds the valid (non-NaN) values of one sample in ascending
order (``np.sort`` puts NaN last, so ``x[:n]`` with ``n`` the valid count). Statistics of two
samples walk both sorted arrays once (a merge), so KS and Wasserstein cost O(n + m) after the
sort. Quantile bins come from the reference: interior edges ``np.quantile(ref, k / bins)``
(linear interpolation, numpy's formula), duplicates removed; bin ``b`` holds the values with
``edges[b - 1] <= x < edges[b]`` (``np.searchsorted(edges, x, side="right")``), the outer bins
are open-ended.
"""

import math

import numpy as np
from numba import njit, prange

# Indexes of the statistics in the rows returned by the batch kernels.
PSI, KS, WASSERSTEIN, WASSERSTEIN_NORM, JS = 0, 1, 2, 3, 4
N_STATS = 5


@njit(cache=True, nogil=True)
def count_valid_sorted_nb(x):
    """Number of non-NaN values in ``x`` sorted with NaN last (binary search)."""
    lo, hi = 0, x.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if np.isnan(x[mid]):
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True, nogil=True)
def valid_sorted_nb(x):
    """The non-NaN values of ``x`` sorted, and the count of NaN."""
    n = x.shape[0]
    buf = np.empty(n, dtype=np.float64)
    k = 0
    for i in range(n):
        v = x[i]
        if not np.isnan(v):
            buf[k] = v
            k += 1
    return np.sort(buf[:k]), n - k


@njit(cache=True, nogil=True)
def ks_stat_nb(a, b):
    """Two-sided KS statistic ``max |F_a - F_b|`` of two sorted samples (scipy's ECDFs,
    ``searchsorted(side="right") / n`` at every data point). NaN if a sample is empty."""
    n, m = a.shape[0], b.shape[0]
    if n == 0 or m == 0:
        return np.nan
    i = 0
    j = 0
    dmax = 0.0
    dmin = 0.0
    while i < n or j < m:
        if j >= m or (i < n and a[i] <= b[j]):
            x = a[i]
        else:
            x = b[j]
        while i < n and a[i] == x:
            i += 1
        while j < m and b[j] == x:
            j += 1
        d = i / n - j / m
        if d > dmax:
            dmax = d
        if -d > dmin:
            dmin = -d
    return max(dmax, dmin)


@njit(cache=True, nogil=True)
def wasserstein_nb(a, b):
    """1-Wasserstein distance ``∫ |F_a - F_b| dx`` of two sorted samples (as
    ``scipy.stats.wasserstein_distance``). NaN if a sample is empty."""
    n, m = a.shape[0], b.shape[0]
    if n == 0 or m == 0:
        return np.nan
    i = 0
    j = 0
    total = 0.0
    while i < n or j < m:
        if j >= m or (i < n and a[i] <= b[j]):
            x = a[i]
            i += 1
        else:
            x = b[j]
            j += 1
        if i < n and (j >= m or a[i] <= b[j]):
            nxt = a[i]
        elif j < m:
            nxt = b[j]
        else:
            break
        total += abs(i / n - j / m) * (nxt - x)
    return total


@njit(cache=True, nogil=True)
def std_nb(a):
    """Population standard deviation (ddof=0) of ``a``, two-pass."""
    n = a.shape[0]
    if n == 0:
        return np.nan
    s = 0.0
    for i in range(n):
        s += a[i]
    mean = s / n
    ss = 0.0
    for i in range(n):
        ss += (a[i] - mean) ** 2
    return math.sqrt(ss / n)


@njit(cache=True, nogil=True)
def quantile_edges_nb(a, bins):
    """Unique interior quantile edges of the sorted sample ``a`` at ``k / bins``
    (numpy's linear method, including its ``t >= 0.5`` lerp branch)."""
    n = a.shape[0]
    out = np.empty(max(bins - 1, 0), dtype=np.float64)
    if n == 0:
        return out[:0]
    k_out = 0
    for k in range(1, bins):
        idx = (k / bins) * (n - 1)
        lo = int(math.floor(idx))
        hi = min(lo + 1, n - 1)
        t = idx - lo
        lo_v, hi_v = a[lo], a[hi]
        diff = hi_v - lo_v
        if t >= 0.5:
            v = hi_v - diff * (1.0 - t)
        else:
            v = lo_v + diff * t
        if k_out == 0 or v != out[k_out - 1]:
            out[k_out] = v
            k_out += 1
    return out[:k_out]


@njit(cache=True, nogil=True)
def _lower_bound(a, v):
    lo, hi = 0, a.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def bin_counts_sorted_nb(a, edges):
    """Counts of the sorted sample ``a`` in the bins of ``edges`` (len(edges) + 1 bins)."""
    k = edges.shape[0]
    out = np.empty(k + 1, dtype=np.int64)
    prev = 0
    for b in range(k):
        c = _lower_bound(a, edges[b])
        out[b] = c - prev
        prev = c
    out[k] = a.shape[0] - prev
    return out


@njit(cache=True, nogil=True)
def psi_counts_nb(ref_counts, cur_counts, eps):
    """Population stability index ``sum (q - p) ln(q / p)`` of bin proportions, each
    proportion floored at ``eps`` (so an empty bin costs a finite amount)."""
    nr = ref_counts.sum()
    nc = cur_counts.sum()
    if nr == 0 or nc == 0:
        return np.nan
    total = 0.0
    for b in range(ref_counts.shape[0]):
        p = max(ref_counts[b] / nr, eps)
        q = max(cur_counts[b] / nc, eps)
        total += (q - p) * math.log(q / p)
    return total


@njit(cache=True, nogil=True)
def js_counts_nb(ref_counts, cur_counts, base):
    """Jensen-Shannon distance of two histograms (``scipy.spatial.distance.jensenshannon``:
    normalized, natural log unless ``base > 0``)."""
    nr = ref_counts.sum()
    nc = cur_counts.sum()
    if nr == 0 or nc == 0:
        return np.nan
    total = 0.0
    for b in range(ref_counts.shape[0]):
        p = ref_counts[b] / nr
        q = cur_counts[b] / nc
        m = 0.5 * (p + q)
        if p > 0:
            total += p * math.log(p / m)
        if q > 0:
            total += q * math.log(q / m)
    js = total / 2.0
    if base > 0:
        js /= math.log(base)
    return math.sqrt(max(js, 0.0))


@njit(cache=True, nogil=True)
def pair_stats_nb(ref, cur, bins, eps, base, out):
    """All statistics of two sorted samples into ``out[0:5]`` (PSI, KS, Wasserstein,
    normalized Wasserstein, JS distance)."""
    edges = quantile_edges_nb(ref, bins)
    rc = bin_counts_sorted_nb(ref, edges)
    cc = bin_counts_sorted_nb(cur, edges)
    out[PSI] = psi_counts_nb(rc, cc, eps)
    out[JS] = js_counts_nb(rc, cc, base)
    out[KS] = ks_stat_nb(ref, cur)
    w = wasserstein_nb(ref, cur)
    out[WASSERSTEIN] = w
    sd = std_nb(ref)
    if sd > 0:
        out[WASSERSTEIN_NORM] = w / sd
    elif w == 0.0:
        out[WASSERSTEIN_NORM] = 0.0
    elif np.isnan(w):
        out[WASSERSTEIN_NORM] = np.nan
    else:
        out[WASSERSTEIN_NORM] = np.inf


@njit(cache=True, parallel=True)
def drift_stats_nb(ref_sorted, n_ref, cur_sorted, n_cur, bins, eps, base):
    """Statistics of every feature (row) of two row-sorted matrices, in parallel.

    ``ref_sorted`` (f, n) and ``cur_sorted`` (f, m) are sorted along rows with NaN last;
    ``n_ref[f]``, ``n_cur[f]`` are the valid counts. Returns float64 (f, 5).
    """
    f = ref_sorted.shape[0]
    out = np.full((f, N_STATS), np.nan)
    for k in prange(f):
        pair_stats_nb(ref_sorted[k, :n_ref[k]], cur_sorted[k, :n_cur[k]], bins, eps, base,
                      out[k])
    return out


@njit(cache=True, parallel=True)
def rolling_stats_nb(ref_sorted, n_ref, cur, starts, ends, bins, eps, base, min_count):
    """Statistics of consecutive windows of ``cur`` (f, n) rows ``starts[w]:ends[w]``
    against the sorted reference rows, in parallel over windows × features.

    Returns the stats (w, f, 5) (NaN where a window has fewer than ``min_count`` valid
    values), the valid counts (w, f) and the NaN counts (w, f).
    """
    f = cur.shape[0]
    nw = starts.shape[0]
    out = np.full((nw, f, N_STATS), np.nan)
    valid = np.zeros((nw, f), dtype=np.int64)
    nans = np.zeros((nw, f), dtype=np.int64)
    for job in prange(nw * f):
        w = job // f
        k = job % f
        vals, n_nan = valid_sorted_nb(cur[k, starts[w]:ends[w]])
        valid[w, k] = vals.shape[0]
        nans[w, k] = n_nan
        if vals.shape[0] >= min_count and vals.shape[0] > 0:
            pair_stats_nb(ref_sorted[k, :n_ref[k]], vals, bins, eps, base, out[w, k])
    return out, valid, nans


@njit(cache=True, nogil=True)
def _log_smirnov_term(n, x, j):
    base1 = 1.0 - x - j / n
    if base1 <= 0.0:
        return -np.inf if n - j > 0 else 0.0
    return (math.lgamma(n + 1.0) - math.lgamma(j + 1.0) - math.lgamma(n - j + 1.0)
            + (n - j) * math.log(base1) + (j - 1) * math.log(x + j / n))


@njit(cache=True, nogil=True)
def smirnov_sf_nb(n, x):
    """Exact one-sided Smirnov tail ``P(D_n^+ >= x)`` (Birnbaum-Tingey sum), summing only
    the terms within ``exp(-45)`` of the largest (the terms are unimodal in j).

    ``2 * smirnov_sf_nb(n, d)`` is the two-sided KS p-value scipy's ``kstwo.sf`` uses when
    ``n d² >= 2.2`` (n > 140); this is the slow O(n) part of ``scipy.special.smirnov``.
    """
    if x <= 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    jmax = int(math.floor(n * (1.0 - x)))
    # Binary search for the peak of the log-terms.
    lo, hi = 0, jmax
    while lo < hi:
        mid = (lo + hi) // 2
        if _log_smirnov_term(n, x, mid + 1) > _log_smirnov_term(n, x, mid):
            lo = mid + 1
        else:
            hi = mid
    peak = _log_smirnov_term(n, x, lo)
    total = 0.0
    j = lo
    while j <= jmax:
        t = _log_smirnov_term(n, x, j) - peak
        if t < -45.0:
            break
        total += math.exp(t)
        j += 1
    j = lo - 1
    while j >= 0:
        t = _log_smirnov_term(n, x, j) - peak
        if t < -45.0:
            break
        total += math.exp(t)
        j -= 1
    return x * total * math.exp(peak)
