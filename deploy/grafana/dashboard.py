"""Generate the Grafana dashboard of the deployment stack from code (grafana-foundation-sdk).

The dashboard has two rows: the engine as the dashboard service's Prometheus metrics show
it (equity, drawdown, bars, orders, fills, rejects, risk and alert events, event lag) and
the lab store in PostgreSQL (the selected run's equity, its latest orders and the alerts).
Its data sources are the uids that ``provisioning/datasources/datasources.yml`` provisions.

Run ``python deploy/grafana/dashboard.py`` after an edit here to rewrite
``deploy/grafana/dashboards/alphatrade_lab.json`` (the file Grafana loads; it is versioned,
and tests/test_deploy_files.py checks that it is this script's output);
``--out PATH`` writes elsewhere.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
)

__all__ = ["OUTPUT", "POSTGRES", "PROMETHEUS", "SQLQuery", "build", "render", "main"]

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "alphatrade_lab.json"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="atl-prometheus")
POSTGRES = DataSourceRef(type_val="grafana-postgresql-datasource", uid="atl-postgres")
_LEGEND = (common_builders.VizLegendOptions().show_legend(True)
           .display_mode(common.LegendDisplayMode.LIST).placement(common.LegendPlacement.BOTTOM))
_TOOLTIP = common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
_RUN = "${run:sqlstring}"  # the run variable, quoted and escaped by Grafana as an SQL string


class _SQLDataquery(cogvariants.Dataquery):
    """A query of Grafana's SQL data sources (the SDK has builders for others only)."""

    def __init__(self, ref_id: str, raw_sql: str, fmt: str) -> None:
        self.ref_id, self.raw_sql, self.fmt = ref_id, raw_sql, fmt

    def to_json(self) -> dict[str, object]:
        return {"refId": self.ref_id, "datasource": POSTGRES.to_json(), "editorMode": "code",
                "format": self.fmt, "rawQuery": True, "rawSql": self.raw_sql}


class SQLQuery(cogbuilder.Builder[cogvariants.Dataquery]):
    """A raw SQL target on the lab store's PostgreSQL data source.

    Parameters
    ----------
    raw_sql
        The query; Grafana's macros (``$__timeFilter(col)``) and variables apply.
    fmt
        ``"time_series"`` (a ``time`` column and values) or ``"table"``.
    ref_id
        The target's id within its panel.

    Examples
    --------
    >>> q = SQLQuery("SELECT 1 AS x", fmt="table").build().to_json()
    >>> q["rawSql"], q["format"], q["datasource"]["uid"]
    ('SELECT 1 AS x', 'table', 'atl-postgres')
    """

    def __init__(self, raw_sql: str, *, fmt: str = "time_series", ref_id: str = "A") -> None:
        if fmt not in ("time_series", "table"):
            raise ValueError(f"SQLQuery: fmt must be 'time_series' or 'table', got {fmt!r}")
        self._query = _SQLDataquery(ref_id, raw_sql, fmt)

    def build(self) -> cogvariants.Dataquery:
        return self._query


def _prom(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return (prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id)
            .datasource(PROMETHEUS))


def _thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=v, color=c) for v, c in steps]))


def _stat(title: str, expr: str, unit: str, description: str, *,
          thresholds: dashboard.ThresholdsConfig | None = None) -> stat.Panel:
    panel = (stat.Panel().title(title).description(description).datasource(PROMETHEUS)
             .with_target(_prom(expr, title)).unit(unit).span(6).height(4)
             .graph_mode(common.BigValueGraphMode.AREA)
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"])))
    return panel.thresholds(thresholds) if thresholds is not None else panel


def _series(title: str, targets: list[Any], unit: str, description: str, *,
            source: DataSourceRef = PROMETHEUS, span: int = 12) -> timeseries.Panel:
    return (timeseries.Panel().title(title).description(description).datasource(source)
            .targets(targets).unit(unit).span(span).height(8).line_width(1)
            .fill_opacity(10).legend(_LEGEND).tooltip(_TOOLTIP))


def _table(title: str, sql: str, description: str) -> table.Panel:
    return (table.Panel().title(title).description(description).datasource(POSTGRES)
            .with_target(SQLQuery(sql, fmt="table")).span(12).height(9).show_header(True))


def _engine_row() -> dashboard.Row:
    """The Prometheus panels (series of alphatrade_lab/service/metrics.py)."""
    return (dashboard.Row("Engine (Prometheus: the dashboard service's /metrics)")
            .with_panel(_stat("Equity", "alphatrade_equity", "none",
                              "Last total equity of the live run (bus 'equity' events)"))
            .with_panel(_stat("Drawdown", "alphatrade_drawdown", "percentunit",
                              "1 - equity / running peak",
                              thresholds=_thresholds((None, "green"), (0.05, "orange"),
                                                     (0.1, "red"))))
            .with_panel(_stat("Last event age", "alphatrade_last_event_age_seconds", "s",
                              "Seconds since the engine last published on the bus",
                              thresholds=_thresholds((None, "green"), (60.0, "orange"),
                                                     (300.0, "red"))))
            .with_panel(_stat("Rejects (1h)", "increase(alphatrade_rejects_total[1h])",
                              "short", "Orders rejected in the last hour",
                              thresholds=_thresholds((None, "green"), (1.0, "red"))))
            .with_panel(_series("Equity and peak", [
                _prom("alphatrade_equity", "equity"),
                _prom("alphatrade_equity_peak", "peak", "B")], "none",
                "Total equity and its running peak"))
            .with_panel(_series("Bars, orders and fills per minute", [
                _prom("60 * rate(alphatrade_bars_total[5m])", "bars"),
                _prom("60 * rate(alphatrade_orders_total[5m])", "orders", "B"),
                _prom("60 * rate(alphatrade_fills_total[5m])", "fills", "C")], "short",
                "Per-minute rates over 5 minutes"))
            .with_panel(_series("Risk, drift and alert events", [
                _prom("increase(alphatrade_risk_events_total[15m])", "risk events"),
                _prom("increase(alphatrade_drift_breaches_total[15m])", "drift breaches", "B"),
                _prom("sum by (level) (increase(alphatrade_alerts_total[15m]))",
                      "alerts {{level}}", "C"),
                _prom("increase(alphatrade_alerts_failed_total[15m])", "alerts failed", "D")],
                "short", "Counts over 15 minutes"))
            .with_panel(_series("Event lag to WebSocket clients", [
                _prom("histogram_quantile(0.5, rate(alphatrade_event_lag_seconds_bucket[5m]))",
                      "p50"),
                _prom("histogram_quantile(0.99, rate(alphatrade_event_lag_seconds_bucket[5m]))",
                      "p99", "B"),
                _prom("alphatrade_websocket_clients", "clients", "C")], "s",
                "Publish-to-delivery lag (seconds) and the clients connected")))


def _store_row() -> dashboard.Row:
    """The PostgreSQL panels (tables of alphatrade_lab/store/schema.py)."""
    return (dashboard.Row("Lab store (PostgreSQL)")
            .with_panel(_series("Equity of the run (store)", [SQLQuery(
                "SELECT timestamp AS time, sum(equity) AS equity FROM equity\n"
                f"WHERE run_id = {_RUN} AND $__timeFilter(timestamp)\n"
                "GROUP BY 1 ORDER BY 1")], "none",
                "The run's total equity per bar, as recorded", source=POSTGRES, span=24))
            .with_panel(_table("Latest orders", (
                "SELECT submitted_at, symbol, side, intent, qty, status, filled_qty,\n"
                "       filled_avg_price, fees, reason\n"
                f"FROM orders WHERE run_id = {_RUN}\n"
                "ORDER BY submitted_at DESC NULLS LAST LIMIT 100"),
                "The run's last 100 orders, their latest status"))
            .with_panel(_table("Latest alerts", (
                "SELECT ts, level, title, message, delivered_sinks, failed_sinks FROM alerts\n"
                f"WHERE run_id = {_RUN} OR run_id IS NULL\n"
                "ORDER BY ts DESC LIMIT 100"),
                "The last 100 alerts of the run (and those of no run)")))


def build() -> dashboard.Dashboard:
    """The dashboard's builder.

    Examples
    --------
    >>> d = build().build()
    >>> d.uid, [p.title.split()[0] for p in d.panels if p.type_val == "row"]
    ('alphatrade-lab', ['Engine', 'Lab'])
    """
    run = (dashboard.QueryVariable("run").label("Run").datasource(POSTGRES)
           .query("SELECT run_id FROM runs ORDER BY created_at DESC")
           .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
           .current(VariableOption(text="paper-deploy", value="paper-deploy")))
    return (dashboard.Dashboard("alphatrade_lab").uid("alphatrade-lab")
            .description("The live engine, the dashboard service and the lab store")
            .tags(["alphatrade_lab"]).timezone("utc").time("now-6h", "now").refresh("30s")
            .readonly().with_variable(run)
            # open rows (Row.with_panel collapses a row; render() lays open ones out flat)
            .with_row(_engine_row().collapsed(False)).with_row(_store_row().collapsed(False)))


def render() -> str:
    """The dashboard as JSON text (keys sorted, panel ids in order, a final newline).

    Examples
    --------
    >>> panels = json.loads(render())["panels"]
    >>> [p["type"] for p in panels[:3]], panels[1]["targets"][0]["expr"]
    (['row', 'stat', 'stat'], 'alphatrade_equity')
    """
    model = json.loads(json.dumps(build().build(), cls=JSONEncoder))
    # Grafana keeps the panels of an open row after it, at the top level (only a collapsed
    # row holds its panels); the SDK nests them in every row.
    flat: list[dict[str, Any]] = []
    for panel in model["panels"]:
        flat.append(panel)
        if panel["type"] == "row" and not panel.get("collapsed"):
            flat.extend(panel.pop("panels", []))
            panel["panels"] = []
    for i, panel in enumerate(flat, start=1):
        panel["id"] = i
    model["panels"] = flat
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the dashboard JSON (default: :data:`OUTPUT`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    args = parser.parse_args(argv)
    args.out.write_text(render(), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
