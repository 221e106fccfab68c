"""Numba kernels for labels and the streaming scorer (plain arrays in, plain arrays out).

Label kernels work on long-form arrays split into groups (one per symbol): ``starts[g]``
and ``ends[g]`` are the first and one-past-last row of group g, rows of a group in time
order. The label of row i looks at rows ``i + 1 .. i + horizon`` of its own group only.

The streaming kernel updates per-symbol state (ring buffers and a few recursive
averages) one bar at a time and writes the same features as
``alphatrade_lab.features.kernels.technical_nb`` (same definitions, same warm-up rules,
same arithmetic for the recursive features; rolling windows are recomputed over the ring
buffer, equal to the vectorized sliding sums up to rounding).
"""

import numpy as np
from numba import njit, prange

from alphatrade_lab.features.kernels import rsi_value_nb

# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def direction_labels_nb(close, starts, ends, horizon, threshold):
    """Direction of the forward log return over ``horizon`` bars.

    Parameters
    ----------
    close : float64[n]
    starts, ends : int64[g]
    horizon : int
    threshold : float64[n]
        Per-row threshold (>= 0) on the forward log return; NaN gives no label.

    Returns
    -------
    label : float64[n]
        1 if ``log(c[i+h] / c[i]) > threshold[i]``, -1 if ``< -threshold[i]``, else 0;
        NaN without a full horizon or without a threshold.
    fwd : float64[n]
        The forward log return (NaN without a full horizon).
    end : int64[n]
        Row of the last bar the label uses (``i + horizon``), -1 if none.
    """
    n = close.shape[0]
    label = np.full(n, np.nan)
    fwd = np.full(n, np.nan)
    end = np.full(n, -1, dtype=np.int64)
    for g in prange(starts.shape[0]):
        for i in range(starts[g], ends[g] - horizon):
            r = np.log(close[i + horizon]) - np.log(close[i])
            fwd[i] = r
            end[i] = i + horizon
            thr = threshold[i]
            if np.isnan(thr):
                continue
            if r > thr:
                label[i] = 1.0
            elif r < -thr:
                label[i] = -1.0
            else:
                label[i] = 0.0
    return label, fwd, end


@njit(cache=True, parallel=True)
def triple_barrier_nb(close, starts, ends, horizon, upper, lower, vertical_sign):
    """Triple-barrier labels (López de Prado): which barrier the close path touches first.

    From row i, the log return ``log(c[i+j] / c[i])`` for ``j = 1 .. horizon`` is
    compared with the upper barrier ``upper[i]`` (label 1) and the lower barrier
    ``-lower[i]`` (label -1); the first touch wins. If neither is touched by
    ``j = horizon`` (the vertical barrier) the label is 0, or the sign of the return at
    the horizon when ``vertical_sign``. Rows without a full horizon or with a NaN
    barrier get NaN.

    Returns
    -------
    label : float64[n]
    ret : float64[n]
        Log return at the touch (or at the horizon).
    end : int64[n]
        Row of the touch (or ``i + horizon``); -1 if no label.
    """
    n = close.shape[0]
    label = np.full(n, np.nan)
    ret = np.full(n, np.nan)
    end = np.full(n, -1, dtype=np.int64)
    for g in prange(starts.shape[0]):
        for i in range(starts[g], ends[g] - horizon):
            up = upper[i]
            lo = lower[i]
            if np.isnan(up) or np.isnan(lo):
                continue
            base = np.log(close[i])
            hit = 0.0
            r = 0.0
            j_end = i + horizon
            for j in range(i + 1, i + horizon + 1):
                r = np.log(close[j]) - base
                if r >= up:
                    hit = 1.0
                    j_end = j
                    break
                if r <= -lo:
                    hit = -1.0
                    j_end = j
                    break
            if hit == 0.0 and vertical_sign:
                hit = 1.0 if r > 0 else (-1.0 if r < 0 else 0.0)
            label[i] = hit
            ret[i] = r
            end[i] = j_end
    return label, ret, end


# ---------------------------------------------------------------------------
# Streaming technical features
# ---------------------------------------------------------------------------

# Columns of the per-symbol scalar state.
S_COUNT, S_EF, S_ES, S_SIG, S_GAIN, S_LOSS, S_ATR, S_PREV_C, S_PREV_LC = range(9)
N_SCALARS = 9


@njit(cache=True)
def _window_stats(ring, i, w):
    """Mean, sum of squared and of cubed deviations, NaN count and all-equal flag of the
    ``w`` values ending at logical position ``i`` of ``ring`` (value k stored at
    ``k % len(ring)``)."""
    size = ring.shape[0]
    s = 0.0
    nans = 0
    first = ring[(i - w + 1) % size]
    same = True
    for k in range(i - w + 1, i + 1):
        x = ring[k % size]
        if np.isnan(x):
            nans += 1
        else:
            s += x
        if x != first:
            same = False
    if nans > 0:
        return np.nan, np.nan, np.nan, nans, False
    if same:
        return first, 0.0, 0.0, 0, True
    mean = s / w
    m2 = 0.0
    m3 = 0.0
    for k in range(i - w + 1, i + 1):
        d = ring[k % size] - mean
        m2 += d * d
        m3 += d * d * d
    return mean, m2, m3, 0, False


@njit(cache=True)
def _wilder_step(acc, x, i, window):
    """Wilder smoothing from row 1: sum of rows 1..window, SMA seed at row window, then
    ``avg += (x - avg) / window``. Returns the new accumulator and the value (NaN before
    the seed)."""
    if i <= window:
        acc += x
        if i == window:
            acc = acc / window
            return acc, acc
        return acc, np.nan
    acc = acc + (x - acc) / window
    return acc, acc


@njit(cache=True)
def stream_check_nb(codes, t, close, high, low, volume, last_t):
    """First row of a batch that is out of time order for its symbol or not a valid bar
    (prices finite and > 0, volume finite and >= 0, low <= high); -1 if all rows are fine.

    ``last_t[s]`` is the last timestamp seen for symbol s (int64 ns, minimum if none).
    Nothing is modified.
    """
    seen = last_t.copy()
    for k in range(codes.shape[0]):
        s = codes[k]
        if t[k] <= seen[s]:
            return k
        seen[s] = t[k]
        c, h, lo, v = close[k], high[k], low[k], volume[k]
        if not (np.isfinite(c) and np.isfinite(h) and np.isfinite(lo) and np.isfinite(v)):
            return k
        if not (c > 0 and h > 0 and lo > 0 and v >= 0 and lo <= h):
            return k
    return -1


@njit(cache=True)
def stream_update_nb(codes, t, close, high, low, volume, scal, last_t, cring, lring, rring,
                     vring, horizons, vol_windows, ma_windows, rsi_window, macd_fast, macd_slow,
                     macd_signal, atr_window, bb_window, bb_k, volume_window, skew_window, out):
    """Advance the state of each row's symbol by one bar and write its features.

    Parameters
    ----------
    codes : int64[m]
        Symbol of each row (index into the state arrays); rows in time order per symbol
        (check with :func:`stream_check_nb` first).
    t : int64[m]
        Timestamps (ns).
    close, high, low, volume : float64[m]
    scal : float64[n_sym, N_SCALARS]
        Per-symbol scalars (count, EMAs, Wilder accumulators, previous close).
    last_t : int64[n_sym]
    cring, lring : float64[n_sym, Lc]
        Ring buffers of closes and log closes (``Lc > max horizon``, ``>= max MA window``
        and ``>= bb_window``).
    rring : float64[n_sym, Lr]
        Ring buffer of 1-bar log returns (``Lr >= max(vol windows, skew_window)``).
    vring : float64[n_sym, Lv]
        Ring buffer of volumes (``Lv >= volume_window``).
    horizons, vol_windows, ma_windows : int64[:]
    rsi_window, macd_fast, macd_slow, macd_signal, atr_window, bb_window : int
    bb_k : float
    volume_window, skew_window : int
    out : float64[m, k]
        Receives the features in ``FeatureSpec.feature_names`` order.
    """
    nh, nv, nm = horizons.shape[0], vol_windows.shape[0], ma_windows.shape[0]
    af = 2.0 / (macd_fast + 1.0)
    as_ = 2.0 / (macd_slow + 1.0)
    ag = 2.0 / (macd_signal + 1.0)
    lc_size = cring.shape[1]
    r_size = rring.shape[1]
    v_size = vring.shape[1]
    for k in range(codes.shape[0]):
        s = codes[k]
        c, h, lo, v = close[k], high[k], low[k], volume[k]
        st = scal[s]
        i = int(st[S_COUNT])
        lc = np.log(c)
        r1 = lc - st[S_PREV_LC] if i > 0 else np.nan
        cring[s, i % lc_size] = c
        lring[s, i % lc_size] = lc
        rring[s, i % r_size] = r1
        vring[s, i % v_size] = v
        o = out[k]
        col = 0
        for j in range(nh):
            hz = horizons[j]
            o[col] = lc - lring[s, (i - hz) % lc_size] if i >= hz else np.nan
            col += 1
        for j in range(nv):
            w = vol_windows[j]
            if i + 1 >= w:
                _, m2, _, _, _ = _window_stats(rring[s], i, w)
                o[col] = np.sqrt(m2 / (w - 1.0))
            else:
                o[col] = np.nan
            col += 1
        for j in range(nm):
            w = ma_windows[j]
            if i + 1 >= w:
                mean, _, _, _, _ = _window_stats(cring[s], i, w)
                o[col] = c / mean - 1.0
            else:
                o[col] = np.nan
            col += 1
        # RSI (Wilder, from the second bar)
        if i == 0:
            o[col] = np.nan
        else:
            d = c - st[S_PREV_C]
            gain = d if d > 0 else 0.0
            loss = -d if d < 0 else 0.0
            st[S_GAIN], g_avg = _wilder_step(st[S_GAIN], gain, i, rsi_window)
            st[S_LOSS], l_avg = _wilder_step(st[S_LOSS], loss, i, rsi_window)
            o[col] = rsi_value_nb(g_avg, l_avg)
        col += 1
        # MACD
        if i == 0:
            st[S_EF] = c
            st[S_ES] = c
        else:
            st[S_EF] = af * c + (1.0 - af) * st[S_EF]
            st[S_ES] = as_ * c + (1.0 - as_) * st[S_ES]
        line = st[S_EF] - st[S_ES]
        st[S_SIG] = line if i == 0 else ag * line + (1.0 - ag) * st[S_SIG]
        o[col] = line if i >= macd_slow - 1 else np.nan
        if i >= macd_slow + macd_signal - 2:
            o[col + 1] = st[S_SIG]
            o[col + 2] = line - st[S_SIG]
        else:
            o[col + 1] = np.nan
            o[col + 2] = np.nan
        col += 3
        # ATR (Wilder of the true range, from the second bar)
        if i == 0:
            o[col] = np.nan
        else:
            pc = st[S_PREV_C]
            tr = max(h - lo, abs(h - pc), abs(lo - pc))
            st[S_ATR], o[col] = _wilder_step(st[S_ATR], tr, i, atr_window)
        col += 1
        # Bollinger %b (population std)
        if i + 1 >= bb_window:
            mean, m2, _, _, _ = _window_stats(cring[s], i, bb_window)
            var = m2 / bb_window
            z = (c - mean) / np.sqrt(var) if var > 0.0 else np.nan
            o[col] = 0.5 + z / (2.0 * bb_k)
        else:
            o[col] = np.nan
        col += 1
        # Volume z-score (sample std)
        if i + 1 >= volume_window:
            mean, m2, _, _, _ = _window_stats(vring[s], i, volume_window)
            var = m2 / (volume_window - 1.0)
            o[col] = (v - mean) / np.sqrt(var) if var > 0.0 else np.nan
        else:
            o[col] = np.nan
        col += 1
        o[col] = (h - lo) / c
        col += 1
        # Skew of 1-bar log returns (adjusted Fisher-Pearson)
        if i + 1 >= skew_window:
            _, m2, m3, _, _ = _window_stats(rring[s], i, skew_window)
            w = float(skew_window)
            kk = w * np.sqrt(w - 1.0) / (w - 2.0)
            o[col] = kk * m3 / (m2 * np.sqrt(m2)) if m2 > 0.0 else np.nan
        else:
            o[col] = np.nan
        st[S_PREV_C] = c
        st[S_PREV_LC] = lc
        st[S_COUNT] = i + 1
        last_t[s] = t[k]
    return out


# ---------------------------------------------------------------------------
# Compiled estimators (see alphatrade_lab.models.compiled)
# ---------------------------------------------------------------------------

# How raw scores become probabilities.
FINISH_MEAN, FINISH_LOGISTIC, FINISH_SOFTMAX = 0, 1, 2


@njit(cache=True)
def _finish(raw, finish, n_trees, out):
    """Probabilities from raw scores ``raw[k]``: the mean over ``n_trees`` (forests),
    ``[1 - expit(raw[0]), expit(raw[0])]`` (binary) or a softmax with the row maximum
    subtracted first (multiclass), as scikit-learn computes them."""
    if finish == FINISH_MEAN:
        for k in range(raw.shape[0]):
            out[k] = raw[k] / n_trees
    elif finish == FINISH_LOGISTIC:
        p = 1.0 / (1.0 + np.exp(-raw[0]))
        out[0] = 1.0 - p
        out[1] = p
    else:
        m = raw[0]
        for k in range(1, raw.shape[0]):
            m = max(m, raw[k])
        s = 0.0
        for k in range(raw.shape[0]):
            out[k] = np.exp(raw[k] - m)
            s += out[k]
        for k in range(raw.shape[0]):
            out[k] /= s


@njit(cache=True)
def linear_proba_nb(A, out, mean, scale, coef, intercept, finish):
    """Probabilities of a (standardised) linear classifier, one row of ``A`` at a time.

    Parameters
    ----------
    A : float64[m, n_features]
    out : float64[m, n_classes]
        Receives the probabilities.
    mean, scale : float64[n_features]
        The scaler's ``(x - mean) / scale`` (0 and 1 without a scaler).
    coef : float64[n_scores, n_features]
    intercept : float64[n_scores]
    finish : int
        FINISH_LOGISTIC (one score, two classes) or FINISH_SOFTMAX.
    """
    n_scores, n_features = coef.shape
    z = np.empty(n_features)
    raw = np.empty(n_scores)
    for i in range(A.shape[0]):
        for j in range(n_features):
            z[j] = (A[i, j] - mean[j]) / scale[j]
        for k in range(n_scores):
            d = 0.0
            for j in range(n_features):
                d += z[j] * coef[k, j]
            raw[k] = d + intercept[k]
        _finish(raw, finish, 1, out[i])
    return out


@njit(cache=True)
def trees_proba_nb(A, out, roots, left, right, feature, threshold, nan_left, value, tree_col,
                   base, as_float32, finish):
    """Probabilities of a tree ensemble, one row of ``A`` at a time, into ``out``.

    All trees' nodes are concatenated: tree t starts at node ``roots[t]``; ``left`` and
    ``right`` are absolute node numbers (-1 at a leaf). At a split a NaN input goes left
    when ``nan_left``, otherwise ``x <= threshold`` goes left. A tree adds its leaf's
    ``value[leaf, :]`` to the raw scores from column ``tree_col[t]`` on; the scores start
    at ``base``. With ``as_float32`` the inputs are rounded to float32 first (as
    scikit-learn's ``tree_`` does). ``finish`` as in :func:`_finish`.
    """
    n_trees = roots.shape[0]
    width = value.shape[1]
    x = np.empty(A.shape[1])
    raw = np.empty(base.shape[0])
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            x[j] = np.float64(np.float32(A[i, j])) if as_float32 else A[i, j]
        raw[:] = base
        for t in range(n_trees):
            node = roots[t]
            while left[node] >= 0:
                v = x[feature[node]]
                if np.isnan(v):
                    node = left[node] if nan_left[node] else right[node]
                elif v <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            c = tree_col[t]
            for k in range(width):
                raw[c + k] += value[node, k]
        _finish(raw, finish, n_trees, out[i])
    return out


@njit(cache=True)
def stream_align_nb(F, idx, means, fill, A):
    """The model inputs ``A[:, j] = F[:, idx[j]]`` (``means[j]`` where ``idx[j] < 0``), NaN
    replaced by ``fill[j]`` (a NaN ``fill`` leaves NaN). Returns 1 if a NaN is left, plus 2 if an
    infinity is, else 0."""
    flags = 0
    for i in range(F.shape[0]):
        for j in range(idx.shape[0]):
            v = F[i, idx[j]] if idx[j] >= 0 else means[j]
            if np.isnan(v):
                v = fill[j]
                if np.isnan(v):
                    flags |= 1
            elif np.isinf(v):
                flags |= 2
            A[i, j] = v
    return flags
