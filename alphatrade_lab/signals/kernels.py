"""Numba kernels of signal primitives (plain arrays in, plain arrays out).

The crossover rule, in one place: ``a`` crosses above ``b`` at bar t when
``a[t] > b[t]`` and ``a[t-1] <= b[t-1]``, and crosses below when ``a[t] < b[t]`` and
``a[t-1] >= b[t-1]``. A NaN in any of the four values gives no cross (NaN compares
false), so the first bar after a gap or a warm-up never crosses: it has no valid
previous bar to cross from. A tie is "not yet crossed": ``a`` rising through ``b``
with one bar exactly equal crosses on the first bar strictly above, and one that
touches ``b`` and leaves on the same side crosses again. The sweep kernels
(:mod:`alphatrade_lab.backtest.sweeps.kernels`) call :func:`crossed_above_at_nb` and
:func:`crossed_below_at_nb`, so their signals are these.
"""

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def crossed_above_at_nb(a_prev, b_prev, a, b):
    """Whether ``a`` crosses above ``b`` on a bar with values ``a, b`` after ``a_prev,
    b_prev``: ``a > b and a_prev <= b_prev`` (False when any is NaN)."""
    return a > b and a_prev <= b_prev


@njit(cache=True, inline="always")
def crossed_below_at_nb(a_prev, b_prev, a, b):
    """Whether ``a`` crosses below ``b``: ``a < b and a_prev >= b_prev``, i.e. ``b``
    crosses above ``a`` (False when any is NaN)."""
    return crossed_above_at_nb(b_prev, a_prev, b, a)


@njit(cache=True)
def crossed_above_nb(a, b):
    """Per column of float64[n, k] ``a`` and ``b``: bool[n, k], True where ``a`` crosses
    above ``b`` (:func:`crossed_above_at_nb`); row 0 is False."""
    n, k = a.shape
    out = np.zeros((n, k), dtype=np.bool_)
    for j in range(k):
        for i in range(1, n):
            out[i, j] = crossed_above_at_nb(a[i - 1, j], b[i - 1, j], a[i, j], b[i, j])
    return out


@njit(cache=True)
def crossed_below_nb(a, b):
    """Per column of float64[n, k] ``a`` and ``b``: bool[n, k], True where ``a`` crosses
    below ``b``, which is where ``b`` crosses above ``a``; row 0 is False."""
    return crossed_above_nb(b, a)
