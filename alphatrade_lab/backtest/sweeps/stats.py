"""Multiple-testing statistics for sweeps: the deflated Sharpe ratio.

Bailey, D. H. and López de Prado, M. (2014), "The Deflated Sharpe Ratio: Correcting for
Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management
40 (5), 94-107.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

__all__ = ["deflated_sharpe_ratio", "expected_max_sharpe", "probabilistic_sharpe_ratio",
           "skew_kurtosis"]

_EULER_GAMMA = 0.5772156649015329
# The standard normal from the standard library: importing scipy.stats for two functions
# would cost 0.4 s of every fresh process that imports the backtests.
_NORMAL = NormalDist()


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def skew_kurtosis(r: np.ndarray) -> tuple[float, float]:
    """Skewness and (Pearson, not excess) kurtosis of ``r`` from its central moments, as
    ``scipy.stats.skew(r)`` and ``scipy.stats.kurtosis(r, fisher=False)`` (biased); NaN
    for constant data.

    >>> skew_kurtosis(np.array([1.0, 2.0, 3.0, 10.0]))
    (1.0182..., 2.2304)
    """
    d = np.asarray(r, dtype=np.float64) - np.mean(r)
    m2 = float(np.mean(d * d))
    if not m2 > 0:
        return float("nan"), float("nan")
    return float(np.mean(d**3)) / m2**1.5, float(np.mean(d**4)) / m2**2


def expected_max_sharpe(n_trials: int, sharpe_std: float, sharpe_mean: float = 0.0) -> float:
    """Expected maximum of ``n_trials`` Sharpe ratios drawn from N(mean, std²).

    The approximation of Bailey and López de Prado:
    ``mean + std * ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))`` with γ the
    Euler-Mascheroni constant. With one trial there is no selection: ``mean``.

    >>> round(expected_max_sharpe(1000, 1.0), 4)
    3.2551
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, not {n_trials}")
    if n_trials == 1:
        return float(sharpe_mean)
    z = ((1.0 - _EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
         + _EULER_GAMMA * _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * np.e)))
    return float(sharpe_mean + sharpe_std * z)


def probabilistic_sharpe_ratio(sharpe: float, benchmark: float, n_obs: int, skew: float,
                               kurtosis: float) -> float:
    """Probability that the true Sharpe ratio exceeds ``benchmark``.

    ``Φ((SR - SR*) sqrt(T - 1) / sqrt(1 - γ3 SR + (γ4 - 1) / 4 SR²))`` with per-period
    (not annualized) Sharpe ratios, ``T`` returns, their skewness ``γ3`` and their
    kurtosis ``γ4`` (3 for normal returns, not the excess).

    >>> round(probabilistic_sharpe_ratio(0.1, 0.0, 253, 0.0, 3.0), 4)
    0.9433
    """
    if n_obs < 2:
        return float("nan")
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not denom > 0:
        return float("nan")
    return _norm_cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom))


def deflated_sharpe_ratio(best_sharpe: float, trial_sharpes: np.ndarray, n_obs: int,
                          skew: float, kurtosis: float) -> float:
    """The deflated Sharpe ratio of the best of several trials.

    The probabilistic Sharpe ratio of ``best_sharpe`` against the Sharpe ratio that the
    best of ``len(trial_sharpes)`` worthless trials would be expected to reach,
    :func:`expected_max_sharpe` with the trials' own dispersion. Values near 1 say the
    best result is unlikely to be luck; near 0.5 or below, it is what noise would give.

    The dispersion under the null is the larger of the trials' own standard deviation
    and ``1 / sqrt(T - 1)``, the sampling error of a Sharpe ratio estimated from ``T``
    returns. The trials of a sweep are strongly correlated (neighbouring windows trade
    alike), which shrinks their dispersion while their count overstates the number of
    independent tries; the floor keeps the benchmark from collapsing then (a
    conservative departure from the paper, which estimates both from the trials).

    Parameters
    ----------
    best_sharpe
        Per-period Sharpe ratio of the selected trial.
    trial_sharpes
        Per-period Sharpe ratios of every trial (NaNs are ignored); their count is the
        number of trials and their variance the dispersion under the null.
    n_obs, skew, kurtosis
        Number of returns of the selected trial, their skewness and (non-excess) kurtosis.

    >>> import numpy as np
    >>> trials = np.random.default_rng(0).normal(0.0, 0.02, 500)
    >>> bool(deflated_sharpe_ratio(trials.max(), trials, 2000, 0.0, 3.0) < 0.95)
    True
    """
    sharpes = np.asarray(trial_sharpes, dtype=np.float64)
    sharpes = sharpes[np.isfinite(sharpes)]
    if sharpes.size == 0 or not np.isfinite(best_sharpe):
        return float("nan")
    sd = float(sharpes.std(ddof=1)) if sharpes.size > 1 else 0.0
    if n_obs > 1:
        sd = max(sd, 1.0 / np.sqrt(n_obs - 1))
    benchmark = expected_max_sharpe(sharpes.size, sd)
    return probabilistic_sharpe_ratio(best_sharpe, benchmark, n_obs, skew, kurtosis)
