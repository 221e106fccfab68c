"""One model experiment from a config: train with purged walk-forward validation, export,
reload, and backtest the reloaded model's signals on a held-out final stretch of time
(never seen in training or validation) against buy and hold.

``research/train_export.py`` and the demo's model step both run it; it returns results
and writes nothing but the bundle.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.models.bundle import ModelBundle, load_bundle, save_bundle
from alphatrade_lab.models.labels import LabelSpec, align, labels
from alphatrade_lab.models.signals import signals
from alphatrade_lab.models.validation import train

__all__ = ["DEFAULT_CONFIG", "Experiment", "build_estimator", "describe_estimator",
           "merge_config", "run_experiment"]

#: Settings of an experiment; ``research/configs/train_export.toml`` has the same layout.
DEFAULT_CONFIG: dict[str, Any] = {
    "data": {"timeframe": "1h", "symbols": [], "holdout": 0.25},
    "features": {},
    "labels": {"kind": "direction", "horizon": 4, "threshold": 0.5, "vol_window": 24},
    "model": {"kind": "logistic_regression", "params": {"C": 0.1, "max_iter": 500},
              "threads": 1},
    "validation": {"n_splits": 5, "embargo": "1D", "mode": "walk_forward"},
    "signals": {"threshold": 0.4, "fees": 0.001},
    "progress": True,
}

#: The statistics compared between the model's signals and buy and hold.
SHOWN_STATS = ["total_return", "sharpe", "max_drawdown", "exposure", "trade_count"]


def merge_config(base: dict, override: dict) -> dict:
    """``base`` updated by ``override`` section by section (a model's ``params`` replace
    the defaults' as a whole).

    >>> merge_config(DEFAULT_CONFIG, {"labels": {"horizon": 8}})["labels"]["vol_window"]
    24
    """
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "params":
            out[k] = merge_config(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def build_estimator(kind: str, params: dict | None = None):
    """A scikit-learn classifier from a config: ``"hist_gradient_boosting"`` or
    ``"logistic_regression"`` (standardised inputs).

    >>> type(build_estimator("hist_gradient_boosting", {"max_iter": 10})).__name__
    'HistGradientBoostingClassifier'
    """
    params = dict(params or {})
    if kind == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(**params)
    if kind == "logistic_regression":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(**params))
    raise ValueError(f"model kind {kind!r} is not 'hist_gradient_boosting' or "
                     "'logistic_regression'")


def describe_estimator(estimator: Any) -> str:
    """``"StandardScaler → LogisticRegression"`` for a pipeline, the class name otherwise.

    >>> describe_estimator(build_estimator("logistic_regression"))
    'StandardScaler → LogisticRegression'
    """
    steps = getattr(estimator, "steps", None)
    if steps:
        return " → ".join(type(step).__name__ for _, step in steps)
    return type(estimator).__name__


@dataclass(frozen=True)
class Experiment:
    """What :func:`run_experiment` produced."""

    config: dict[str, Any]
    #: The reloaded bundle (checked to predict as the trained one did).
    bundle: ModelBundle
    bundle_path: Path
    estimator: str
    label_spec: LabelSpec
    #: Per-fold out-of-sample metrics (``ModelBundle.metrics_frame``).
    folds: pd.DataFrame
    #: Pooled out-of-sample metrics (``accuracy``, ``log_loss``, ``n``).
    overall: dict[str, Any]
    n_fit_rows: int
    fit_seconds: float
    #: First bar time of the held-out stretch.
    cutoff: pd.Timestamp
    #: Backtests on the held-out stretch: the model's signals and buy and hold.
    model_portfolio: Any
    buy_and_hold: Any
    #: :data:`SHOWN_STATS` of both, per symbol, with a ``mean`` row.
    stats: pd.DataFrame
    seconds: float


def run_experiment(bars: pd.DataFrame, bundle_path: str | Path,
                   config: dict | None = None) -> Experiment:
    """Train, validate, export, reload and backtest a model.

    Parameters
    ----------
    bars
        Long-form bars; resampled to ``data.timeframe`` when finer.
    bundle_path
        Where the bundle is exported (with its ``.sha256``).
    config
        Overrides of :data:`DEFAULT_CONFIG` (same nesting).

    Returns
    -------
    Experiment

    Examples
    --------
    >>> import tempfile, pathlib, alphatrade_lab as atl
    >>> bars = atl.data.load_sample(["AAA"])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     ex = run_experiment(bars, pathlib.Path(d) / "m.atlb",
    ...                         {"validation": {"n_splits": 3}, "progress": False})
    >>> len(ex.folds), list(ex.stats.columns.unique(0))
    (3, ['model', 'buy_and_hold'])
    """
    from alphatrade_lab import backtest, data, features

    cfg = merge_config(DEFAULT_CONFIG, config or {})
    started = time.perf_counter()
    symbols = cfg["data"].get("symbols") or None
    if symbols:
        bars = bars.loc[bars["symbol"].isin(symbols)].reset_index(drop=True)
    rule = pd.Timedelta(cfg["data"]["timeframe"])
    resampled = data.resample(bars, rule) if data.bar_length(bars) < rule else bars
    spec = features.FeatureSpec(**cfg["features"])
    label_spec = LabelSpec(**cfg["labels"])
    X_all = features.technical(resampled, spec)
    X, y = align(X_all, labels(resampled, label_spec))

    times = np.sort(X_all["timestamp"].unique())
    cutoff = pd.Timestamp(times[int(len(times) * (1.0 - cfg["data"]["holdout"]))])
    fit_rows = (y["t1"] < cutoff).to_numpy()  # labels end before the holdout starts
    estimator = build_estimator(cfg["model"]["kind"], cfg["model"].get("params"))
    val = cfg["validation"]
    t0 = time.perf_counter()
    trained = train(X.loc[fit_rows], y.loc[fit_rows], estimator,
                    n_splits=val["n_splits"], embargo=val.get("embargo"),
                    mode=val.get("mode", "walk_forward"), progress=cfg["progress"],
                    threads=cfg["model"].get("threads"))
    fit_s = time.perf_counter() - t0

    path = save_bundle(trained, bundle_path)
    loaded = load_bundle(path)
    hold = X_all.loc[X_all["timestamp"] >= cutoff].reset_index(drop=True)
    if not np.allclose(loaded.predict_proba(hold).to_numpy(),
                       trained.predict_proba(hold).to_numpy(), rtol=0, atol=1e-12):
        raise RuntimeError(f"the bundle reloaded from {path} predicts differently from the "
                           "trained one")
    sig = signals(loaded, hold, threshold=cfg["signals"]["threshold"])
    close = data.to_wide(resampled, "close")
    close = close.loc[close.index >= cutoff]
    fees = cfg["signals"]["fees"]
    pf = sig.backtest(close, fees=fees)
    first = pd.DataFrame(False, index=close.index, columns=close.columns)
    first.iloc[0] = True
    bh = backtest.from_signals(close, first, False, fees=fees)
    stats = pd.concat({"model": pf.stats()[SHOWN_STATS],
                       "buy_and_hold": bh.stats()[SHOWN_STATS]}, axis=1)
    stats.loc["mean"] = stats.mean()
    return Experiment(
        config=cfg, bundle=loaded, bundle_path=path, estimator=describe_estimator(estimator),
        label_spec=label_spec, folds=trained.metrics_frame(),
        overall=dict(trained.metrics["overall"]), n_fit_rows=int(fit_rows.sum()),
        fit_seconds=fit_s, cutoff=cutoff, model_portfolio=pf, buy_and_hold=bh, stats=stats,
        seconds=time.perf_counter() - started)
