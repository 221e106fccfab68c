"""The sweep heatmap's colour scale tells losing cells from winning ones."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd

from alphatrade_lab.backtest import heatmap


def results(values: np.ndarray) -> pd.DataFrame:
    fast, slow = [2, 3, 5], [10, 20]
    idx = pd.MultiIndex.from_product([fast, slow], names=["fast", "slow"])
    return pd.DataFrame({"sharpe": values, "trade_count": np.arange(1, 7)}, index=idx)


def test_all_losing_cells_stay_on_the_losing_side_of_the_scale():
    ax = heatmap(results(np.array([-2.0, -1.5, -1.0, -0.5, -0.25, np.nan]))).axes[0]
    mesh = ax.collections[0]
    assert isinstance(mesh.norm, mcolors.TwoSlopeNorm) and mesh.norm.vcenter == 0.0
    # The least bad cell (-0.25) is below the centre, not painted as the best colour.
    assert float(mesh.norm(-0.25)) < 0.5
    assert mesh.norm.vmin == -2.0 and mesh.norm.vmax == 2.0
    assert bool(np.ma.getmaskarray(mesh.get_array()).any())  # the NaN cell is masked (grey)
    assert mcolors.to_hex(ax.get_facecolor()) == mcolors.to_hex("lightgrey")
    assert list(ax.get_xticks()) == [2, 3, 5] and list(ax.get_yticks()) == [10, 20]


def test_center_none_gives_a_plain_scale():
    ax = heatmap(results(np.zeros(6)), "trade_count", center=None).axes[0]
    norm = ax.collections[0].norm
    assert not isinstance(norm, mcolors.TwoSlopeNorm)
    assert (norm.vmin, norm.vmax) == (1.0, 6.0)


def test_draws_on_a_given_axes_and_returns_its_figure():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    assert heatmap(results(np.arange(6.0)), ax=ax, title="t") is fig
    assert ax.get_title() == "t" and len(ax.collections) == 1
