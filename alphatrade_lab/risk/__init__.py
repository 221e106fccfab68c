"""Risk limits that turn portfolio state into risk events (and alerts).

>>> import alphatrade_lab as atl
>>> rm = atl.risk.RiskManager(atl.risk.RiskLimits(max_drawdown=0.1))
>>> rm.update("2024-01-01 00:00", 100.0)
[]
>>> [(b.limit, b.severity) for b in rm.update("2024-01-01 01:00", 88.0)]
[('max_drawdown', 'critical'), ('daily_loss', 'warning'), ('daily_loss', 'critical')]
"""

from alphatrade_lab.risk.limits import (
    BREACH_COLUMNS,
    INVALID_NAMES,
    LIMIT_NAMES,
    Limit,
    RiskLimits,
)
from alphatrade_lab.risk.manager import SUMMARY_COLUMNS, Breach, RiskManager

__all__ = [
    "BREACH_COLUMNS",
    "INVALID_NAMES",
    "LIMIT_NAMES",
    "SUMMARY_COLUMNS",
    "Breach",
    "Limit",
    "RiskLimits",
    "RiskManager",
]
