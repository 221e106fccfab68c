"""Numba kernels for the data layer (plain arrays in, plain arrays out)."""

import numpy as np
from numba import njit


@njit(cache=True)
def simulate_log_prices_nb(z, gap, base_sigma, time_mult, loading, drift, kappa, reset,
                           garch_alpha, garch_beta):
    """Log close paths of a GARCH(1,1) market with trend and mean-reversion regimes.

    Parameters
    ----------
    z : float64[n, k]
        Unit-variance innovations (already correlated across the k columns).
    gap : float64[n, k]
        Log jumps applied at the bar's open (0 where there is none).
    base_sigma : float64[k]
        Per-bar volatility of each column before the multipliers.
    time_mult : float64[n]
        Volatility multiplier per bar (intraday seasonality times volatility regime).
    loading : float64[k]
        How strongly each column follows the market trend.
    drift : float64[n]
        Per-bar log drift of the market (non-zero in trending regimes).
    kappa : float64[n]
        Per-bar pull of the log price towards its anchor (non-zero in mean-reverting regimes).
    reset : bool[n]
        True where a regime starts; the anchor is set to the current log price there.
    garch_alpha, garch_beta : float
        GARCH(1,1) coefficients of the unit-mean variance multiplier.

    Returns
    -------
    log_close : float64[n, k]
        Log close relative to the starting price.
    sigma : float64[n, k]
        Conditional per-bar volatility used for each bar.
    """
    n, k = z.shape
    log_close = np.empty((n, k))
    sigma = np.empty((n, k))
    omega = 1.0 - garch_alpha - garch_beta
    for j in range(k):
        g = 1.0
        x = 0.0
        anchor = 0.0
        for t in range(n):
            if reset[t]:
                anchor = x
            s = base_sigma[j] * time_mult[t] * np.sqrt(g)
            x += gap[t, j] + loading[j] * drift[t] - kappa[t] * (x - anchor) + s * z[t, j]
            log_close[t, j] = x
            sigma[t, j] = s
            g = omega + (garch_alpha * z[t, j] * z[t, j] + garch_beta) * g
    return log_close, sigma
