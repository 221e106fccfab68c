"""Cross-asset graph features: a graph of the symbols per bar from rolling correlations.

The symbols' bars are put on one time grid (the union of their timestamps). A symbol's
1-bar log return at a grid row is ``log(c[t] / c[t_prev])`` for its own previous bar, 0 at
a grid row where it has no bar (its price did not change), NaN up to and including its
first bar. At grid row t the graph's edge weights are the correlations ``rho_ij`` of the
returns over the trailing ``window`` grid rows up to and including t (sample
correlation, as pandas ``rolling(window).corr``), or with ``method="partial"`` the
partial correlations ``-P_ij / sqrt(P_ii P_jj)`` where ``P`` is the inverse of that
window's correlation matrix (the same as from the covariance's inverse). Symbols i != j
are joined when ``|rho_ij| >= threshold``.

A graph needs a *full* window: every symbol has a return at each of the ``window`` rows
(so nothing before every symbol's first bar + ``window`` rows); before that every
feature is NaN. A symbol whose returns do not vary in the window has no correlation
and no edge. Features per bar (per ``(timestamp, symbol)`` row of the input):

========================  ===============================================================
``graph_degree``          number of neighbours
``graph_strength``        weighted degree centrality: ``sum |rho_ij|`` over the edges,
                          divided by ``N - 1`` (in [0, 1])
``graph_neighbour_ret``   the neighbours' bar-t returns weighted by the edges:
                          ``sum rho_ij r_j / sum |rho_ij|`` (a negatively correlated
                          neighbour counts with its sign flipped); 0 without neighbours
``graph_component_size``  number of symbols in the connected component (1 if isolated)
``graph_component``       the component's id: the position, in sorted symbol order, of
                          its first symbol (stable while the component keeps that member)
========================  ===============================================================

Every value at bar t uses bars up to and including t only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alphatrade_lab.errors import DataError
from alphatrade_lab.features import kernels as nb
from alphatrade_lab.features._input import Groups, check_bars, utc_timestamps

__all__ = ["GRAPH_FEATURES", "GRAPH_METHODS", "graph", "graph_adjacency"]

GRAPH_FEATURES = ("graph_degree", "graph_strength", "graph_neighbour_ret",
                  "graph_component_size", "graph_component")
GRAPH_METHODS = ("correlation", "partial")
_WHERE = "graph"


def _check_options(window: object, threshold: object, method: object, n_symbols: int) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise DataError(f"{_WHERE}: window must be a whole number >= 2 (got {window!r})")
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating))
            or not 0.0 <= float(threshold) <= 1.0):
        raise DataError(f"{_WHERE}: threshold must be a number in [0, 1] (got {threshold!r})")
    if method not in GRAPH_METHODS:
        raise DataError(f"{_WHERE}: method must be one of {GRAPH_METHODS} (got {method!r})")
    if n_symbols < 2:
        raise DataError(f"{_WHERE}: a graph needs at least 2 symbols, the bars hold "
                        f"{n_symbols}")
    if method == "partial" and window <= n_symbols:
        raise DataError(f"{_WHERE}: method='partial' needs window > the number of symbols "
                        f"({n_symbols}) to invert the correlation matrix (got {window})")


def _grid(bars: object, window: object, threshold: object, method: object
          ) -> tuple[pd.DataFrame, Groups, np.ndarray, np.ndarray, np.ndarray]:
    """Checked frame, groups, the grid's int64 times, each row's grid row, grid returns."""
    frame, ts, groups, a = check_bars(bars, ("close",), _WHERE)
    _check_options(window, threshold, method, len(groups.symbols))
    grid = np.unique(ts)
    rows = np.searchsorted(grid, ts).astype(np.int64)
    r = nb.grid_returns_nb(np.log(a["close"]), rows, groups.starts, groups.ends, len(grid))
    return frame, groups, grid, rows, r


def _block(window: int) -> int:
    return max(4 * int(window), 4096)


def graph(bars: pd.DataFrame, window: int = 60, threshold: float = 0.5,
          method: str = "correlation") -> pd.DataFrame:
    """Graph features of each bar from the rolling cross-asset correlation graph.

    Parameters
    ----------
    bars
        Long-form bars of two or more symbols, sorted by (symbol, timestamp) and unique
        per pair; ``timestamp, symbol, close`` are used.
    window
        Grid rows in the trailing window (>= 2; > the number of symbols for
        ``"partial"``).
    threshold
        Edge when ``|rho| >= threshold`` (in [0, 1]).
    method
        ``"correlation"`` or ``"partial"`` (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        Same rows, order and index as ``bars``: ``timestamp`` (UTC), ``symbol`` and the
        float64 columns :data:`GRAPH_FEATURES` (definitions in the module docstring), so
        it joins :func:`~alphatrade_lab.features.technical`'s frame on the keys.
        ``attrs["graph_spec"]`` holds the options.

    Raises
    ------
    DataError
        For missing columns, prices that are not finite and > 0, unsorted or repeated
        rows (naming the column and row), fewer than 2 symbols, or a bad option.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> bars = atl.data.load_sample().groupby("symbol").head(500)
    >>> G = atl.features.graph(bars, window=60, threshold=0.2)
    >>> G.columns.tolist()[2:4]
    ['graph_degree', 'graph_strength']
    >>> bool(G["graph_degree"].iloc[:59].isna().all()), bool(G["graph_degree"].max() <= 4)
    (True, True)
    """
    frame, groups, _, rows, r = _grid(bars, window, threshold, method)
    feats = nb.graph_features_nb(r, int(window), float(threshold), method == "partial",
                                 _block(int(window)))
    col = np.repeat(np.arange(len(groups.symbols)), groups.ends - groups.starts)
    data = {"timestamp": utc_timestamps(frame, _WHERE), "symbol": frame["symbol"].array}
    for k, name in enumerate(GRAPH_FEATURES):
        data[name] = feats[k][rows, col]
    out = pd.DataFrame(data, index=frame.index, copy=False)
    out.attrs["graph_spec"] = {"window": int(window), "threshold": float(threshold),
                               "method": method}
    return out


def graph_adjacency(bars: pd.DataFrame, window: int = 60, threshold: float = 0.5,
                    method: str = "correlation"
                    ) -> tuple[pd.DatetimeIndex, list, np.ndarray]:
    """The graphs themselves: thresholded edge weights per grid time.

    Parameters are those of :func:`graph`.

    Returns
    -------
    (times, symbols, weights)
        ``times`` the grid (UTC), ``symbols`` in column order, ``weights`` float64
        ``[len(times), N, N]``: ``rho_ij`` where ``|rho_ij| >= threshold`` (i != j), else
        0, with a zero diagonal; all NaN at a time whose window is not full.

    Examples
    --------
    >>> import alphatrade_lab as atl
    >>> bars = atl.data.load_sample(["AAA", "BBB", "CCC"]).groupby("symbol").head(300)
    >>> times, symbols, W = atl.features.graph_adjacency(bars, window=30, threshold=0.1)
    >>> W.shape[1:], symbols
    ((3, 3), ['AAA', 'BBB', 'CCC'])
    >>> bool(np.isnan(W[:29]).all()), bool((W[40] == W[40].T).all())
    (True, True)
    """
    _, groups, grid, _, r = _grid(bars, window, threshold, method)
    rho = nb.rolling_corr_nb(r, int(window), method == "partial", _block(int(window)))
    keep = np.abs(rho) >= float(threshold)
    weights = np.where(keep, rho, 0.0)
    n = len(groups.symbols)
    weights[:, np.arange(n), np.arange(n)] = 0.0
    weights[np.isnan(rho).all(axis=(1, 2))] = np.nan
    times = pd.DatetimeIndex(grid.view("datetime64[ns]")).tz_localize("UTC")
    return times, list(groups.symbols), weights
