"""Looking at sweep results: a heatmap over a 2-D grid and a top-k table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphatrade_lab.errors import unknown_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["heatmap", "top_k"]


def top_k(results: pd.DataFrame, metric: str = "sharpe", k: int = 10,
          ascending: bool = False) -> pd.DataFrame:
    """The ``k`` best parameter sets by ``metric`` (largest first unless ``ascending``).

    NaN metrics (for example the Sharpe ratio of a combination that never traded)
    sort last.
    """
    _check_metric(results, metric)
    return results.sort_values(metric, ascending=ascending, na_position="last").head(k)


def _check_metric(results: pd.DataFrame, metric: str) -> None:
    if metric not in results.columns:
        raise unknown_name("metric", metric, results.columns, "the sweep results")


def heatmap(results: pd.DataFrame, metric: str = "sharpe", x: str | None = None,
            y: str | None = None, ax: Axes | None = None, symbol: Any = None,
            cmap: str = "RdYlGn", center: float | None = 0.0,
            title: str | None = None) -> Figure:
    """Heatmap of ``metric`` over two parameters of a sweep.

    The colour scale is diverging and centred on ``center`` (0: a losing cell is never
    painted as a good one, and equal depth of colour is equal distance from zero); cells
    without a value (e.g. ``fast >= slow``) are grey; ticks sit at the parameter values.

    Parameters
    ----------
    results
        Output of a sweep, indexed by the parameters (and ``symbol``).
    metric
        Column to colour by.
    x, y
        Parameters on the horizontal and vertical axes (default: the first two levels).
    symbol
        Which symbol to show when the results hold several (default: the first);
        other parameters are averaged.
    ax
        A matplotlib Axes to draw on (default: a new figure).
    cmap, center
        Colour map, and the value drawn in its middle colour (None: a plain scale from the
        smallest to the largest value, for metrics such as ``trade_count``).
    title
        Axes title (default: ``"<metric> by <x> and <y>"``).

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (``fig.axes[0]`` is the heatmap), as every plot function of the
        library returns; a new one shows itself in a notebook without pyplot.
    """
    from matplotlib.colors import Normalize, TwoSlopeNorm

    from alphatrade_lab._figure import NotebookFigure

    data = results
    if "symbol" in data.index.names:
        symbols = data.index.get_level_values("symbol").unique()
        chosen = symbols[0] if symbol is None else symbol
        data = data.xs(chosen, level="symbol")
    _check_metric(data, metric)
    params = [n for n in data.index.names if n is not None]
    x = x or params[0]
    y = y or params[1]
    grid = data[metric].groupby(level=[y, x]).mean().unstack(x)
    if ax is None:
        ax = NotebookFigure(figsize=(8, 6.5), layout="constrained").subplots()
    values = grid.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    norm: Normalize
    if center is None:
        norm = Normalize()
    else:
        half = float(np.abs(finite - center).max()) if finite.size else 0.0
        half = half if half > 0 else 1.0
        norm = TwoSlopeNorm(vcenter=center, vmin=center - half, vmax=center + half)
    mesh = ax.pcolormesh(grid.columns, grid.index, np.ma.masked_invalid(values), cmap=cmap,
                         norm=norm, shading="nearest")
    ax.set_facecolor("lightgrey")
    for axis, ticks in ((ax.xaxis, grid.columns), (ax.yaxis, grid.index)):
        step = max(1, -(-len(ticks) // 20))
        axis.set_ticks(list(ticks[::step]))
    ax.figure.colorbar(mesh, ax=ax, label=metric)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or f"{metric} by {x} and {y}")
    fig = ax.get_figure(root=True)
    assert fig is not None  # an Axes drawn on always belongs to a figure
    return fig
