"""The demo's monitoring step: feature drift of the sample market after the training period.

>>> import tempfile, pathlib, alphatrade_lab as atl
>>> bars = atl.data.load_sample(["AAA"])
>>> with tempfile.TemporaryDirectory() as d:
...     lines = demo_step(bars, 0.5, pathlib.Path(d) / "lab.duckdb", d, echo=lambda *_: None)
>>> lines[0]
'## Feature drift'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["demo_step"]


def demo_step(bars: pd.DataFrame, split: float = 0.5, store_path: str | Path = "data/lab.duckdb",
              run_dir: str | Path = ".", echo: Callable[[str], Any] = print, *,
              timeframe: str = "1h", current: float = 0.15, window: str = "7D",
              top: int = 10) -> list[str]:
    """Drift of the sample's technical features after the training period, into the store.

    Technical features (:func:`alphatrade_lab.features.technical`) of ``timeframe`` bars,
    all symbols pooled. The reference is the first ``split`` of the time span (the
    training period); the current period is the next ``current`` of the span (with the
    defaults 50%–65%, the sample's volatility regime). A drift report of the current period
    against the reference and a rolling drift of ``window`` windows over the rest of the
    span are recorded in the lab store (``drift_stats``, under one ``"monitoring"`` run);
    the rolling drift is plotted to ``run_dir/drift.png``.

    Parameters
    ----------
    bars
        Long-form bars (e.g. ``atl.data.load_sample()``).
    split
        Fraction of the span used as the reference (training) period.
    store_path
        The DuckDB lab store.
    run_dir
        Folder of the report; receives ``drift.png`` and ``drift_report.csv``.
    echo
        Where progress lines go.

    Returns
    -------
    list of str
        A ``## Feature drift`` Markdown section: the periods, the count of drifted
        features per method, the top drifted features and the plot.
    """
    import matplotlib.pyplot as plt

    from alphatrade_lab import data, features
    from alphatrade_lab.monitoring.drift import drift_report
    from alphatrade_lab.monitoring.rolling import first_drift, plot_rolling_drift, rolling_drift
    from alphatrade_lab.store import LabStore

    if not 0 < split < 1 or not 0 < current <= 1 - split:
        raise ValueError(f"need 0 < split < 1 and 0 < current <= 1 - split, got {split}, "
                         f"{current}")
    run_dir = Path(run_dir)
    X = features.technical(data.resample(bars, timeframe))
    ts = X["timestamp"]
    t0, t1 = ts.min(), ts.max() + pd.Timedelta(timeframe)
    ref_end = (t0 + (t1 - t0) * split).ceil(timeframe)
    cur_end = (t0 + (t1 - t0) * (split + current)).ceil(timeframe)
    ref = X[ts < ref_end]
    cur = X[(ts >= ref_end) & (ts < cur_end)]

    store = LabStore(store_path)
    run_id = store.record_run(kind="monitoring", params={
        "what": "demo drift", "timeframe": timeframe, "split": split, "current": current,
        "window": window})
    report = drift_report(ref, cur, store=store, run_id=run_id)
    rolling = rolling_drift(X, reference=(None, ref_end), window=window, store=store,
                            run_id=run_id)
    report.to_csv(run_dir / "drift_report.csv", index=False)
    first = first_drift(rolling, "psi")
    fig = plot_rolling_drift(rolling, methods=["psi", "ks", "wasserstein"],
                             events={"reference end": ref_end, "current end": cur_end})
    fig.savefig(run_dir / "drift.png", dpi=110)
    plt.close(fig)

    wide = report.pivot(index="feature", columns="method", values="statistic")
    wide["ks_p"] = report[report["method"] == "ks"].set_index("feature")["p_value"]
    wide["drifted_by"] = report[report["drifted"]].groupby("feature")["method"].agg(
        lambda m: ",".join(m))
    wide["drifted_by"] = wide["drifted_by"].fillna("")
    wide["first_psi_drift"] = first.reindex(wide.index).dt.strftime("%Y-%m-%d")
    shown = wide.sort_values("psi", ascending=False).head(top)[
        ["psi", "ks", "ks_p", "wasserstein", "js", "drifted_by", "first_psi_drift"]]
    counts = report.groupby("method", sort=False)["drifted"].sum()
    n_feat = report["feature"].nunique()
    span = f"{ref_end:%Y-%m-%d} to {cur_end:%Y-%m-%d}"
    echo(f"\nfeature drift {span} against the training period: "
         + ", ".join(f"{m} {int(k)}/{n_feat}" for m, k in counts.items())
         + f"; recorded as run {run_id} ({len(report) + len(rolling):,} rows)")
    table = shown.to_string(float_format="{:,.4f}".format, na_rep="")
    return [
        "## Feature drift", "",
        f"{n_feat} technical features of {timeframe} bars (symbols pooled). Reference: the "
        f"training period {t0:%Y-%m-%d} to {ref_end:%Y-%m-%d} (first {split:.0%}); current: "
        f"{span} (the next {current:.0%}). Drifted features by method (PSI > 0.2, KS p < "
        "0.05, normalized Wasserstein > 0.1, JS distance > 0.1): "
        + ", ".join(f"{m} {int(k)}" for m, k in counts.items()) + ".", "",
        f"Top {len(shown)} features by PSI (`first_psi_drift`: first {window} window after "
        "the reference whose PSI crossed 0.2):", "",
        "```\n" + table + "\n```", "",
        f"Recorded in the lab store as run `{run_id}`: the report and the rolling {window} "
        f"windows ({len(report) + len(rolling):,} `drift_stats` rows).", "",
        "![rolling drift](drift.png)", "",
    ]
