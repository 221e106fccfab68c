"""Monitoring: drift statistics of features and predictions, rolling drift, model metrics,
drift alerts.

>>> import numpy as np, alphatrade_lab as atl
>>> rng = np.random.default_rng(0)
>>> res = atl.monitoring.ks(rng.normal(size=500), rng.normal(0.5, 1.0, size=500))
>>> bool(res.p_value < 1e-6), res.n_ref, res.nan_cur
(True, 500, 0)
"""

from alphatrade_lab.monitoring.alerting import drift_alerts
from alphatrade_lab.monitoring.drift import (
    DEFAULT_THRESHOLDS,
    METHODS,
    DriftResult,
    chi_square,
    drift_report,
    js_distance,
    ks,
    ks_pvalue,
    psi,
    wasserstein,
)
from alphatrade_lab.monitoring.model_monitor import (
    DriftCheck,
    ModelMonitor,
    model_performance_frame,
    model_timeline,
)
from alphatrade_lab.monitoring.rolling import first_drift, plot_rolling_drift, rolling_drift

__all__ = [
    "DEFAULT_THRESHOLDS",
    "METHODS",
    "DriftCheck",
    "DriftResult",
    "ModelMonitor",
    "chi_square",
    "drift_alerts",
    "drift_report",
    "first_drift",
    "js_distance",
    "ks",
    "ks_pvalue",
    "model_performance_frame",
    "model_timeline",
    "plot_rolling_drift",
    "psi",
    "rolling_drift",
    "wasserstein",
]
