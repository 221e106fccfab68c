#!/usr/bin/env python3
"""Next-bar direction of every symbol: a graph convolutional network against logistic
regression, on the same purged walk-forward folds, from a TOML config.

Usage, from the repository root::

    .venv/bin/python research/gnn_direction.py --config research/configs/gnn_direction.toml

Models (each fold trains on the times before its test block, purged of labels that
reach into it and embargoed):

- ``majority``: the training share of "up" as the probability (the floor);
- ``logistic``: LogisticRegression on the per-symbol technical features (rows pooled
  over symbols);
- ``logistic+graph``: the same plus the graph features (degree, strength, neighbour
  return, component size; the component id is a label, not a quantity, and is left out);
- ``gcn``: :class:`~alphatrade_lab.models.gnn.GCNClassifier` on the technical features of
  all symbols at t and the graph at t (absolute correlations above the threshold).

Prints one table (accuracy, log loss and AUC per model and fold, and their means) and
writes it with ``report.md`` to a new folder under ``out`` (``runs/``, git-ignored).
Needs the ``gnn`` extra (PyTorch).
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import alphatrade_lab as atl
from alphatrade_lab.models.gnn import GCNClassifier
from alphatrade_lab.pipeline import md_table, new_run_dir

ROOT = Path(__file__).resolve().parents[1]
GRAPH_INPUTS = ["graph_degree", "graph_strength", "graph_neighbour_ret",
                "graph_component_size"]


def panel(config: dict[str, Any]) -> dict[str, Any]:
    """Features, labels and graphs of the times at which every symbol has all of them.

    Returns a dict: ``times`` (T), ``symbols`` (N), ``tech`` and ``graph`` float
    ``[T, N, F]``, ``y`` ``[T, N]`` (1 up, 0 not), ``t1`` (T, the last label time at each
    time) and ``adjacency`` ``[T, N, N]``.
    """
    data = config.get("data", {})
    bars = atl.data.load_sample(data.get("symbols") or None)
    bars = atl.data.resample(bars, data.get("timeframe", "1h"))
    spec = atl.features.FeatureSpec(**{k: tuple(v) if isinstance(v, list) else v
                                       for k, v in config.get("features", {}).items()})
    tech = atl.features.technical(bars, spec)
    g = config.get("graph", {})
    X = tech.merge(atl.features.graph(bars, **g)[["timestamp", "symbol", *GRAPH_INPUTS]],
                   on=["timestamp", "symbol"], validate="one_to_one")
    y = atl.models.labels(bars, **config.get("labels", {}))
    X, y = atl.models.align(X, y)
    symbols = sorted(X["symbol"].unique())
    complete = X.groupby("timestamp")["symbol"].transform("size") == len(symbols)
    X, y = X.loc[complete], y.loc[complete]
    order = np.lexsort((X["symbol"].to_numpy(), X["timestamp"].to_numpy()))
    X, y = X.iloc[order], y.iloc[order]
    times = pd.DatetimeIndex(X["timestamp"].unique())
    shape = (len(times), len(symbols))
    names = list(spec.feature_names)
    grid, grid_symbols, weights = atl.features.graph_adjacency(bars, **g)
    assert grid_symbols == symbols
    return {
        "times": times, "symbols": symbols, "tech_names": names,
        "tech": X[names].to_numpy().reshape(*shape, -1),
        "graph": X[GRAPH_INPUTS].to_numpy().reshape(*shape, -1),
        "y": (y["label"].to_numpy() == 1).astype(float).reshape(shape),
        "t1": pd.DatetimeIndex(pd.DatetimeIndex(y["t1"]).tz_convert(None).to_numpy()
                               .reshape(shape).max(axis=1)).tz_localize("UTC"),
        "adjacency": np.abs(weights[grid.get_indexer(times)]),
    }


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Accuracy, log loss and AUC of P(up) ``p`` against 0/1 labels ``y`` (flat arrays)."""
    auc = roc_auc_score(y, p) if 0 < y.mean() < 1 and np.ptp(p) > 0 else 0.5
    return {"accuracy": float(np.mean((p > 0.5) == y)),
            "log_loss": float(log_loss(y, np.clip(p, 1e-12, 1 - 1e-12), labels=[0, 1])),
            "auc": float(auc)}


def compare(data: dict[str, Any], config: dict[str, Any]) -> pd.DataFrame:
    """One row per (model, fold): the test block's scores and the fit time."""
    v = config.get("validation", {})
    folds = atl.models.purged_splits(data["times"], data["t1"], n_splits=v.get("n_splits", 5),
                                     embargo=v.get("embargo"))
    tech, both = data["tech"], np.concatenate([data["tech"], data["graph"]], axis=2)
    y, adj = data["y"], data["adjacency"]
    rows = []
    for k, fold in enumerate(folds):
        tr, te = fold.train, fold.test
        yt = y[te].ravel()
        preds: dict[str, tuple[np.ndarray, float]] = {}
        preds["majority"] = (np.full(yt.shape, y[tr].mean()), 0.0)
        for name, feats in (("logistic", tech), ("logistic+graph", both)):
            t0 = time.perf_counter()
            lr = make_pipeline(StandardScaler(), LogisticRegression(**config.get("logistic", {})))
            lr.fit(feats[tr].reshape(-1, feats.shape[2]), y[tr].ravel())
            p = lr.predict_proba(feats[te].reshape(-1, feats.shape[2]))[:, 1]
            preds[name] = (p, time.perf_counter() - t0)
        t0 = time.perf_counter()
        gcn = GCNClassifier(**config.get("gcn", {})).fit(tech[tr], y[tr], adj[tr])
        preds["gcn"] = (gcn.predict_proba(tech[te], adj[te])[..., 1].ravel(),
                        time.perf_counter() - t0)
        for name, (p, seconds) in preds.items():
            rows.append({"model": name, "fold": k + 1, "test_start": fold.test_start,
                         "n": len(yt), **scores(yt, p), "fit_s": seconds})
    return pd.DataFrame(rows)


def table(results: pd.DataFrame) -> pd.DataFrame:
    """Per-fold scores, each model's mean over folds after its folds (fold ``mean``)."""
    cols = ["accuracy", "log_loss", "auc", "fit_s"]
    per_fold = results.set_index(["model", "fold"])[cols]
    means = results.groupby("model", sort=False)[cols].mean()
    means.index = pd.MultiIndex.from_product([means.index, ["mean"]], names=["model", "fold"])
    per_fold.index = per_fold.index.set_levels(per_fold.index.levels[1].astype(str), level=1)
    models = list(dict.fromkeys(results["model"]))
    out = pd.concat([per_fold, means])
    return out.loc[[(m, f) for m in models for f in [*map(str, sorted(set(results["fold"]))),
                                                      "mean"]]]


def main(argv: list[str] | None = None) -> Path:
    """Run the comparison of a config file; returns the run folder."""
    parser = argparse.ArgumentParser(
        prog="research/gnn_direction.py",
        description="Next-bar direction of all sample symbols: GCN on the cross-asset "
                    "correlation graph against logistic regression with and without graph "
                    "features, on purged walk-forward folds. Prints and writes the table.")
    parser.add_argument("--config", type=Path,
                        default=ROOT / "research" / "configs" / "gnn_direction.toml",
                        help="TOML settings (default: research/configs/gnn_direction.toml)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder that receives the run folder (default: the config's "
                             "out, else runs/)")
    args = parser.parse_args(argv)
    config = tomllib.loads(args.config.read_text())
    start = time.perf_counter()
    data = panel(config)
    results = compare(data, config)
    shown = md_table(table(results))
    print(shown)
    run_dir = new_run_dir(Path(args.out or config.get("out", "runs")), "gnn-direction")
    (run_dir / "config.toml").write_text(args.config.read_text())
    results.to_csv(run_dir / "folds.csv", index=False)
    n_times, n_symbols, n_feats = data["tech"].shape
    lines = ["# GCN against logistic regression: next-bar direction", "",
             f"Config: `{args.config.name}` (copied to `config.toml`). {n_times} times x "
             f"{n_symbols} symbols, {n_feats} technical features per symbol, "
             f"{len(GRAPH_INPUTS)} graph features.", "", shown, "",
             f"Finished in {time.perf_counter() - start:.1f} s.", ""]
    (run_dir / "report.md").write_text("\n".join(lines))
    print(f"report written to {run_dir / 'report.md'}")
    return run_dir


if __name__ == "__main__":
    main()
