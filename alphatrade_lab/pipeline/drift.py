"""The drift step: how the sample's technical features drift after the training period,
recorded in the lab store, with one WARNING alert per drifted feature."""

from __future__ import annotations

import pandas as pd

from alphatrade_lab import data, features
from alphatrade_lab.alerts import AlertManager
from alphatrade_lab.monitoring import drift_alerts, drift_report, first_drift, rolling_drift
from alphatrade_lab.monitoring.rolling import plot_rolling_drift
from alphatrade_lab.pipeline.steps import Context, StepResult, md_table

__all__ = ["drift_step"]


def drift_step(ctx: Context, split: float = 0.5, current: float = 0.15, *,
               timeframe: str = "1h", window: str = "7D", top: int = 10) -> StepResult:
    """Drift of the technical features of ``timeframe`` bars (symbols pooled).

    The reference is the first ``split`` of the time span (the training period), the
    current period the next ``current`` of it (with the defaults 50%–65%, the sample's
    volatility regime). The report of the current period against the reference and the
    rolling drift of ``window`` windows over the rest of the span are recorded under one
    ``"monitoring"`` run; drifted features are sent as alerts (recorded too).

    Frames ``drift_report`` and ``drift_rolling``, figure ``drift``; values ``run_id`` and
    ``alerts``.
    """
    if not 0 < split < 1 or not 0 < current <= 1 - split:
        raise ValueError(f"need 0 < split < 1 and 0 < current <= 1 - split, got {split}, "
                         f"{current}")
    X = features.technical(ctx.hourly if timeframe == "1h"
                           else data.resample(ctx.bars, timeframe))
    ts = X["timestamp"]
    t0, t1 = ts.min(), ts.max() + pd.Timedelta(timeframe)
    ref_end = (t0 + (t1 - t0) * split).ceil(timeframe)
    cur_end = (t0 + (t1 - t0) * (split + current)).ceil(timeframe)
    ref = X[ts < ref_end]
    cur = X[(ts >= ref_end) & (ts < cur_end)]
    report = drift_report(ref, cur)
    rolling = rolling_drift(X, reference=(None, ref_end), window=window)

    store = ctx.store
    run_id = store.record_run(kind="monitoring", params={
        "what": "demo drift", "timeframe": timeframe, "split": split, "current": current,
        "window": window})
    store.record_drift(report, run_id=run_id, window_start=ref_end, window_end=cur_end)
    store.record_drift(rolling, run_id=run_id)
    alerts = drift_alerts(report)
    with AlertManager.from_env(ctx.env, store=store, run_id=run_id) as manager:
        manager.send_many(alerts)

    first = first_drift(rolling, "psi")
    fig = plot_rolling_drift(rolling, methods=["psi", "ks", "wasserstein"],
                             events={"reference end": ref_end, "current end": cur_end})
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
    n_rows = len(report) + len(rolling)
    span = f"{ref_end:%Y-%m-%d} to {cur_end:%Y-%m-%d}"
    ctx.echo(f"\nfeature drift {span} against the training period: "
             + ", ".join(f"{m} {int(k)}/{n_feat}" for m, k in counts.items())
             + f"; recorded as run {run_id} ({n_rows:,} rows)")
    ctx.echo(f"drift: {len(alerts)} WARNING alerts sent (log sink; Telegram/Discord/webhook "
             "when their variables are set) and recorded in the store")
    lines = [
        "## Feature drift", "",
        f"{n_feat} technical features of {timeframe} bars (symbols pooled). Reference: the "
        f"training period {t0:%Y-%m-%d} to {ref_end:%Y-%m-%d} (first {split:.0%}); current: "
        f"{span} (the next {current:.0%}). Drifted features by method (PSI > 0.2, KS p < "
        "0.05, normalized Wasserstein > 0.1, JS distance > 0.1): "
        + ", ".join(f"{m} {int(k)}" for m, k in counts.items()) + ".", "",
        f"Top {len(shown)} features by PSI (`first_psi_drift`: first {window} window after "
        "the reference whose PSI crossed 0.2):", "",
        md_table(shown, na_rep=""), "",
        f"Recorded in the lab store as run `{run_id}`: the report and the rolling {window} "
        f"windows ({n_rows:,} `drift_stats` rows).", "",
        "![rolling drift](drift.png)", "",
        f"{len(alerts)} drift alerts (WARNING, one per drifted feature) were sent and "
        "recorded in the store's `alerts` table.", "",
    ]
    return StepResult(lines, frames={"drift_report": report, "drift_rolling": rolling},
                      figures={"drift": fig}, values={"run_id": run_id, "alerts": alerts})
