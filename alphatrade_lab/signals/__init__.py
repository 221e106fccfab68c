"""Signal primitives, one definition each: crossovers of series and thresholds.

>>> import pandas as pd
>>> import alphatrade_lab as atl
>>> rsi = pd.Series([40.0, 35.0, 29.0, 25.0, 31.0])
>>> atl.signals.crossed_below(rsi, 30.0).tolist(), atl.signals.crossed_above(rsi, 30.0).tolist()
([False, False, True, False, False], [False, False, False, False, True])
"""

from alphatrade_lab.signals.core import crossed_above, crossed_below

__all__ = ["crossed_above", "crossed_below"]
