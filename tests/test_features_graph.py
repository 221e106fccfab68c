"""atl.features.graph against independent references (pandas rolling corr, numpy inverse,
networkx and scipy components), its leakage check and its bad-input errors."""

from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from scipy.sparse.csgraph import connected_components

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.features import GRAPH_FEATURES, graph, graph_adjacency
from alphatrade_lab.testing import assert_no_lookahead

WINDOW, THRESHOLD = 30, 0.25


@pytest.fixture(scope="module")
def bars(sample_bars):
    """Five symbols, 400 minute bars each, with a few bars dropped (gaps on the grid)."""
    b = sample_bars.groupby("symbol").head(400)
    drop = b.index[[50, 51, 700, 1203, 1650, 1901]]
    return b.drop(drop).reset_index(drop=True)


def reference_returns(bars: pd.DataFrame) -> pd.DataFrame:
    """Grid returns with pandas: last close carried forward, log difference."""
    close = atl.data.to_wide(bars, "close")
    logc = np.log(close.ffill())
    r = logc.diff()
    first = close.notna().idxmax()
    for sym in close.columns:
        r.loc[: first[sym], sym] = np.nan
    return r


def reference_rho(r: pd.DataFrame, window: int, partial: bool) -> np.ndarray:
    """Per grid row: pandas rolling corr, or the partial correlations from numpy's inverse
    of the window's covariance; NaN unless every symbol has the full window."""
    n = r.shape[1]
    rho = np.full((len(r), n, n), np.nan)
    full = (r.rolling(window).count() == window).all(axis=1).to_numpy()
    if not partial:
        for i, a in enumerate(r.columns):
            for j, b in enumerate(r.columns):
                rho[:, i, j] = 1.0 if i == j else r[a].rolling(window).corr(r[b]).to_numpy()
        rho[~full] = np.nan
        return rho
    values = r.to_numpy()
    for t in np.flatnonzero(full):
        p = np.linalg.inv(np.cov(values[t - window + 1: t + 1].T))
        d = np.sqrt(np.diag(p))
        rho[t] = -p / np.outer(d, d)
        np.fill_diagonal(rho[t], 1.0)
    return rho


def reference_features(r: pd.DataFrame, rho: np.ndarray, threshold: float) -> np.ndarray:
    """float[5, T, N] with networkx (degrees, strength) and scipy (components)."""
    n_rows, n = rho.shape[:2]
    out = np.full((5, n_rows, n), np.nan)
    ret = r.to_numpy()
    for t in range(n_rows):
        if np.isnan(rho[t]).all():
            continue
        g = nx.Graph()
        g.add_nodes_from(range(n))
        for i in range(n):
            for j in range(i + 1, n):
                if abs(rho[t, i, j]) >= threshold:
                    g.add_edge(i, j, weight=rho[t, i, j])
        adj = nx.to_numpy_array(g, nodelist=range(n), weight=None)
        _, comp = connected_components(adj, directed=False)
        for i in range(n):
            w = np.array([g[i][j]["weight"] for j in g[i]])
            rj = np.array([ret[t, j] for j in g[i]])
            out[0, t, i] = g.degree(i)
            out[1, t, i] = np.abs(w).sum() / (n - 1)
            out[2, t, i] = (w * rj).sum() / np.abs(w).sum() if len(w) else 0.0
            members = np.flatnonzero(comp == comp[i])
            out[3, t, i] = len(members)
            out[4, t, i] = members.min()
    return out


def long_form(bars: pd.DataFrame, r: pd.DataFrame, grid_values: np.ndarray) -> pd.DataFrame:
    """Grid values [5, T, N] at the bars' own (timestamp, symbol) rows."""
    rows = r.index.get_indexer(pd.DatetimeIndex(bars["timestamp"]))
    cols = pd.Index(r.columns).get_indexer(bars["symbol"])
    return pd.DataFrame({name: grid_values[k][rows, cols]
                         for k, name in enumerate(GRAPH_FEATURES)}, index=bars.index)


@pytest.mark.parametrize("method", ["correlation", "partial"])
def test_features_match_the_references(bars, method):
    r = reference_returns(bars)
    rho = reference_rho(r, WINDOW, method == "partial")
    expected = long_form(bars, r, reference_features(r, rho, THRESHOLD))
    got = graph(bars, window=WINDOW, threshold=THRESHOLD, method=method)
    assert got[["timestamp", "symbol"]].equals(bars[["timestamp", "symbol"]])
    assert got.index.equals(bars.index)
    assert expected["graph_degree"].notna().sum() > 1500
    # edges exactly at the threshold could flip on rounding; none are that close here
    near = np.nanmin(np.abs(np.abs(rho) - THRESHOLD))
    assert near > 1e-9
    pd.testing.assert_frame_equal(got[list(GRAPH_FEATURES)], expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["correlation", "partial"])
def test_adjacency_is_the_thresholded_reference(bars, method):
    r = reference_returns(bars)
    rho = reference_rho(r, WINDOW, method == "partial")
    times, symbols, weights = graph_adjacency(bars, window=WINDOW, threshold=THRESHOLD,
                                              method=method)
    assert times.equals(r.index) and symbols == r.columns.tolist()
    expected = np.where(np.abs(rho) >= THRESHOLD, rho, 0.0)
    expected[:, range(5), range(5)] = 0.0
    expected[np.isnan(rho).all(axis=(1, 2))] = np.nan
    np.testing.assert_allclose(weights, expected, rtol=1e-9, atol=1e-12)


def test_nan_until_every_window_is_full(bars):
    got = graph(bars, window=WINDOW, threshold=THRESHOLD)
    first_full = pd.Timestamp(sorted(bars["timestamp"].unique())[WINDOW])
    early = got["timestamp"] < first_full
    assert got.loc[early, list(GRAPH_FEATURES)].isna().all().all()
    assert got.loc[~early, list(GRAPH_FEATURES)].notna().all().all()


def test_a_flat_symbol_is_isolated(bars):
    flat = bars.copy()
    flat.loc[flat["symbol"] == "CCC", ["open", "high", "low", "close"]] = 50.0
    got = graph(flat, window=WINDOW, threshold=0.0).dropna()
    ccc = got[got["symbol"] == "CCC"]
    assert (ccc["graph_degree"] == 0).all() and (ccc["graph_component_size"] == 1).all()
    assert (ccc["graph_component"] == 2).all() and (ccc["graph_neighbour_ret"] == 0).all()
    others = got[got["symbol"] != "CCC"]
    assert (others["graph_degree"] == 3).all()  # threshold 0: every other pair is an edge


def test_a_planted_cluster_is_found():
    """Two groups driven by two independent factors: two components of the right members."""
    rng = np.random.default_rng(3)
    n = 300
    f = rng.normal(0, 0.01, (n, 2))
    loads = [0, 0, 1, 1, 1]
    ts = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    frames = []
    for k, g in enumerate(loads):
        c = 100 * np.exp(np.cumsum(f[:, g] + rng.normal(0, 0.002, n)))
        frames.append(pd.DataFrame({"timestamp": ts, "symbol": f"S{k}", "open": c, "high": c,
                                    "low": c, "close": c, "volume": 1.0}))
    got = graph(pd.concat(frames, ignore_index=True), window=50, threshold=0.6).dropna()
    comp = got.pivot(index="timestamp", columns="symbol", values="graph_component")
    assert (comp.to_numpy() == np.array([0, 0, 2, 2, 2])).all()
    size = got.pivot(index="timestamp", columns="symbol", values="graph_component_size")
    assert (size.to_numpy() == np.array([2, 2, 3, 3, 3])).all()


@pytest.mark.parametrize("method", ["correlation", "partial"])
def test_no_lookahead(bars, method):
    compared = assert_no_lookahead(
        lambda b: graph(b, window=WINDOW, threshold=THRESHOLD, method=method), bars,
        n_cuts=3)
    assert compared > 0


def test_joins_the_technical_frame(bars):
    tech = atl.features.technical(bars)
    joined = tech.merge(graph(bars, window=WINDOW), on=["timestamp", "symbol"],
                        validate="one_to_one")
    assert len(joined) == len(bars)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"window": 1}, "window must be a whole number >= 2"),
    ({"window": 2.5}, "window must be a whole number >= 2"),
    ({"threshold": 1.5}, "threshold must be a number in [0, 1]"),
    ({"method": "spearman"}, "method must be one of"),
    ({"window": 5, "method": "partial"}, "needs window > the number of symbols (5)"),
])
def test_bad_options(bars, kwargs, message):
    with pytest.raises(DataError, match=r"^graph: .*" + re.escape(message)):
        graph(bars, **kwargs)


def test_fewer_than_two_symbols(bars):
    with pytest.raises(DataError, match="at least 2 symbols, the bars hold 1"):
        graph(bars[bars["symbol"] == "AAA"])


def test_nan_price_names_column_and_row(bars):
    bad = bars.copy()
    bad.loc[7, "close"] = np.nan
    with pytest.raises(DataError, match=r"graph.*close.*row 7"):
        graph(bad)


def test_unsorted_rows_are_refused(bars):
    with pytest.raises(DataError, match="not sorted"):
        graph(bars.iloc[::-1])
