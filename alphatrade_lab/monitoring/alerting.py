"""Drift reports as alerts: one WARNING per drifted feature.

Monitoring decides what drifted; :mod:`alphatrade_lab.alerts` delivers it
(:meth:`alphatrade_lab.alerts.AlertManager.send_many`, or
:meth:`alphatrade_lab.risk.RiskManager.send_drift`).
"""

from __future__ import annotations

import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.events import Alert, AlertLevel

__all__ = ["drift_alerts"]

_REPORT_COLUMNS = ("feature", "method", "statistic", "p_value", "threshold", "drifted")


def drift_alerts(report: pd.DataFrame) -> list[Alert]:
    """WARNING alerts for the drifted features of a drift report.

    ``report`` has columns ``feature, method, statistic, p_value, threshold, drifted``
    (as :func:`alphatrade_lab.monitoring.drift_report`). One alert per feature with at
    least one drifted row, titled ``"Drift Alert: <feature>"``; its message lists each
    method with its statistic (and p-value) against the threshold.

    >>> import numpy as np
    >>> rep = pd.DataFrame({"feature": ["rsi_14", "rsi_14", "ret_1"],
    ...     "method": ["psi", "ks", "psi"], "statistic": [0.31, 0.2, 0.01],
    ...     "p_value": [np.nan, 0.001, np.nan], "threshold": [0.2, 0.05, 0.2],
    ...     "drifted": [True, True, False]})
    >>> [(a.level.name, a.title, a.message) for a in drift_alerts(rep)]
    [('WARNING', 'Drift Alert: rsi_14', 'drifted by psi 0.31 > 0.2; ks p-value 0.001 < 0.05')]
    """
    if not isinstance(report, pd.DataFrame):
        raise DataError(f"drift_alerts: expected a drift report DataFrame, got "
                        f"{type(report).__name__}; pass monitoring.drift_report's result")
    missing = [c for c in _REPORT_COLUMNS if c not in report.columns]
    if missing:
        raise DataError(f"drift_alerts: the drift report is missing columns {missing}; pass "
                        "the result of monitoring.drift_report or rolling_drift")
    rows = report[report["drifted"].astype(bool)]
    out = []
    for feature, g in rows.groupby("feature", sort=False):
        parts, methods = [], {}
        for r in g.itertuples(index=False):
            p = r.p_value
            if p is not None and p == p:
                parts.append(f"{r.method} p-value {p:.3g} < {r.threshold:g}")
            else:
                parts.append(f"{r.method} {r.statistic:.4g} > {r.threshold:g}")
            methods[str(r.method)] = {"statistic": float(r.statistic),
                                      "p_value": None if p != p else p,
                                      "threshold": float(r.threshold)}
        out.append(Alert(AlertLevel.WARNING, f"Drift Alert: {feature}",
                         "drifted by " + "; ".join(parts),
                         {"feature": str(feature), "methods": methods}))
    return out
