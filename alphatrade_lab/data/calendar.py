"""Calendar time of bars: the year length and the bars per year observed in an index."""

from __future__ import annotations

import pandas as pd

__all__ = ["YEAR", "observed_bars_per_year"]

YEAR = pd.Timedelta(days=365)


def observed_bars_per_year(first_ns: int, last_ns: int, n: int) -> float:
    """Bars per year of ``n`` bars stamped from ``first_ns`` to ``last_ns`` (nanoseconds):
    ``(n - 1) * YEAR / (last - first)``, the number of mean bar intervals in a year.
    NaN for fewer than two bars or a zero span.

    >>> days = pd.bdate_range("2024-01-01", "2024-12-31")
    >>> observed_bars_per_year(days[0].value, days[-1].value, len(days))
    261.0
    """
    if n < 2 or last_ns <= first_ns:
        return float("nan")
    return (n - 1) * YEAR.value / (last_ns - first_ns)
