"""Features of bars without lookahead: technical indicators, NaN handling, higher timeframes.

Every function takes long-form bars (or a feature frame) sorted by (symbol, timestamp)
and returns one row per input row, in the same order, with ``timestamp`` and ``symbol``
columns followed by named feature columns. A value at bar t uses bars up to and
including t of the same symbol only (it is known at t's close).

>>> import alphatrade_lab as atl
>>> bars = atl.data.load_sample(["AAA"]).head(300)
>>> X = atl.features.handle_nan(atl.features.technical(bars), strategy="zero")
>>> int(X.isna().sum().sum())
0
"""

from alphatrade_lab.features.graph import GRAPH_FEATURES, GRAPH_METHODS, graph, graph_adjacency
from alphatrade_lab.features.multitimeframe import multi_timeframe
from alphatrade_lab.features.nan import NAN_STRATEGIES, handle_nan
from alphatrade_lab.features.spec import FeatureSpec
from alphatrade_lab.features.technical import technical

__all__ = ["GRAPH_FEATURES", "GRAPH_METHODS", "NAN_STRATEGIES", "FeatureSpec", "graph",
           "graph_adjacency", "handle_nan", "multi_timeframe", "technical"]
