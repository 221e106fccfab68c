"""The models step of the demo report, and the experiment behind ``research/train_export.py``.

:func:`run_experiment` trains a classifier on hourly bars with purged walk-forward
validation, exports it as a bundle, reloads it, and backtests its signals on a held-out
final stretch of time (never seen in training or validation) against buy-and-hold.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_CONFIG", "build_estimator", "demo_step", "run_experiment"]

#: Settings of the demo; ``research/configs/train_export.toml`` has the same layout.
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

_SHOWN_STATS = ["total_return", "sharpe", "max_drawdown", "exposure", "trade_count"]


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "params":
            out[k] = _merge(out[k], v)
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


def _describe(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if steps:
        return " → ".join(type(step).__name__ for _, step in steps)
    return type(estimator).__name__


def _table(frame: pd.DataFrame, fmt: str = "{:,.4f}") -> str:
    return "```\n" + frame.to_string(float_format=fmt.format) + "\n```"


def run_experiment(bars: pd.DataFrame, run_dir: str | Path, echo=print,
                   config: dict | None = None) -> tuple[list[str], dict]:
    """Train, validate, export, reload and backtest a model; write files to ``run_dir``.

    Parameters
    ----------
    bars
        Long-form bars (the sample's minute bars are resampled to ``data.timeframe``).
    run_dir
        Receives ``model.atlb`` (+ ``.sha256``), ``model_folds.csv``,
        ``model_backtest.csv`` and ``model_equity.png``.
    echo
        Where progress lines go.
    config
        Overrides of :data:`DEFAULT_CONFIG` (same nesting).

    Returns
    -------
    (lines, results)
        Markdown report lines, and a dict with ``bundle``, ``folds``, ``stats``,
        ``bundle_path`` and ``seconds``.
    """
    import matplotlib.pyplot as plt

    from alphatrade_lab import backtest, data, features, models

    cfg = _merge(DEFAULT_CONFIG, config or {})
    started = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    symbols = cfg["data"].get("symbols") or None
    if symbols:
        bars = bars.loc[bars["symbol"].isin(symbols)].reset_index(drop=True)
    rule = pd.Timedelta(cfg["data"]["timeframe"])
    hourly = data.resample(bars, rule) if data.bar_length(bars) < rule else bars
    spec = features.FeatureSpec(**cfg["features"])
    label_spec = models.LabelSpec(**cfg["labels"])
    X_all = features.technical(hourly, spec)
    X, y = models.align(X_all, models.labels(hourly, label_spec))

    times = np.sort(X_all["timestamp"].unique())
    cutoff = pd.Timestamp(times[int(len(times) * (1.0 - cfg["data"]["holdout"]))])
    fit_rows = (y["t1"] < cutoff).to_numpy()  # labels end before the holdout starts
    estimator = build_estimator(cfg["model"]["kind"], cfg["model"].get("params"))
    val = cfg["validation"]
    t0 = time.perf_counter()
    bundle = models.train(X.loc[fit_rows], y.loc[fit_rows], estimator,
                          n_splits=val["n_splits"], embargo=val.get("embargo"),
                          mode=val.get("mode", "walk_forward"), progress=cfg["progress"],
                          threads=cfg["model"].get("threads"))
    fit_s = time.perf_counter() - t0
    folds = bundle.metrics_frame()
    overall = bundle.metrics["overall"]
    echo(f"\nModel: {_describe(estimator)}, {len(folds)} purged walk-forward folds on "
         f"{int(fit_rows.sum()):,} rows in {fit_s:.1f} s; out-of-sample accuracy "
         f"{overall['accuracy']:.3f}, log-loss {overall['log_loss']:.3f}")

    path = models.save_bundle(bundle, run_dir / "model.atlb")
    loaded = models.load_bundle(path)
    hold = X_all.loc[X_all["timestamp"] >= cutoff].reset_index(drop=True)
    same = np.allclose(loaded.predict_proba(hold).to_numpy(),
                       bundle.predict_proba(hold).to_numpy(), rtol=0, atol=1e-12)
    if not same:
        raise RuntimeError("the reloaded bundle predicts differently from the trained one")
    sig = models.signals(loaded, hold, threshold=cfg["signals"]["threshold"])
    close = data.to_wide(hourly, "close")
    close = close.loc[close.index >= cutoff]
    fees = cfg["signals"]["fees"]
    pf = sig.backtest(close, fees=fees)
    first = pd.DataFrame(False, index=close.index, columns=close.columns)
    first.iloc[0] = True
    bh = backtest.from_signals(close, first, False, fees=fees)
    stats = pd.concat({"model": pf.stats()[_SHOWN_STATS], "buy_and_hold":
                       bh.stats()[_SHOWN_STATS]}, axis=1)
    stats.loc["mean"] = stats.mean()
    folds.to_csv(run_dir / "model_folds.csv")
    stats.to_csv(run_dir / "model_backtest.csv")

    fig, ax = plt.subplots(figsize=(9, 4))
    (pf.equity.mean(axis=1) / 100.0).plot(ax=ax, label="model signals (mean over symbols)")
    (bh.equity.mean(axis=1) / 100.0).plot(ax=ax, label="buy and hold (mean over symbols)")
    ax.set_title("Held-out period: growth of 1")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "model_equity.png", dpi=110)
    plt.close(fig)

    shown = folds[["test_start", "test_end", "n_train", "n_test", "purged", "embargoed",
                   "accuracy", "log_loss"]
                  + [c for c in folds.columns if c.startswith(("precision_", "recall_"))]]
    shown = shown.assign(test_start=shown["test_start"].str[:10],
                         test_end=shown["test_end"].str[:10])
    mean = stats.loc["mean"]
    echo(f"held-out backtest from {cutoff:%Y-%m-%d %H:%M} UTC: mean total return "
         f"{mean[('model', 'total_return')]:.2%} (buy and hold "
         f"{mean[('buy_and_hold', 'total_return')]:.2%})")
    lines = [
        "## Model: purged walk-forward validation", "",
        f"{_describe(estimator)} on {len(spec.feature_names)} technical features of "
        f"{cfg['data']['timeframe']} bars; labels: {label_spec.kind}, horizon "
        f"{label_spec.horizon} bars, "
        f"threshold {label_spec.threshold} × volatility ({label_spec.vol_window} bars) × "
        f"√horizon. {len(folds)} walk-forward folds; training rows whose label window "
        f"overlaps a test fold are purged, embargo {val.get('embargo')}. Rows from "
        f"{cutoff:%Y-%m-%d %H:%M} UTC on are held out.", "",
        _table(shown), "",
        f"Pooled out-of-sample: accuracy {overall['accuracy']:.3f}, log-loss "
        f"{overall['log_loss']:.3f} (n = {overall['n']:,}).", "",
        f"Exported to `{path.name}` (skops, SHA-256 in `{path.name}.sha256`), reloaded and "
        "checked to predict identically.", "",
        "## Model signals on the held-out period vs buy and hold", "",
        f"Long when P(up) ≥ {cfg['signals']['threshold']}, flat otherwise; fees "
        f"{fees:.1%}; from {cutoff:%Y-%m-%d %H:%M} UTC.", "",
        _table(stats), "",
        "![model equity](model_equity.png)", "",
    ]
    results = {"bundle": loaded, "folds": folds, "stats": stats, "bundle_path": path,
               "seconds": time.perf_counter() - started}
    return lines, results


def demo_step(bars: pd.DataFrame, run_dir: str | Path, echo=print) -> list[str]:
    """The models section of the demo report (see :func:`run_experiment`).

    Parameters
    ----------
    bars
        The sample's long-form bars (minute bars are resampled to hourly).
    run_dir
        The run folder; files are written next to ``report.md``.
    echo
        Where progress lines go.

    Returns
    -------
    list of str
        Markdown lines: per-fold metrics, held-out backtest against buy and hold, plot.
    """
    lines, _ = run_experiment(bars, run_dir, echo)
    return lines
