"""The service's read-only REST API over the lab store, and model scoring.

Every route is under ``/api``; responses are typed (dataclasses, so the OpenAPI schema at
``/api/openapi.json`` describes them), timestamps are ISO 8601 UTC strings and missing
numbers are ``null``. Lists are paginated with ``limit`` and ``offset`` and answer their
``total``. Query-string values are untrusted: they are validated (ranges, lengths, no NUL
character) and only ever bound as SQL parameters.

``GET /api/runs/{run_id}/equity`` is downsampled in the database by default: the run's time
span is cut into ``points // 2`` equal buckets and in each bucket every portfolio keeps its
rows of lowest and of highest equity (so drawdowns and peaks stay visible): at most
``points`` rows a portfolio, every row of a portfolio that has no more; ``full=true`` gives
every row.

Both store backends (DuckDB, PostgreSQL) answer the same JSON. The SQL is one portable text
where it can be; the equity queries have one text per :attr:`LabStore.dialect
<alphatrade_lab.store.LabStore.dialect>` (DuckDB's ``arg_min``/``epoch_us``/``list``, and
PostgreSQL's arrays and ``json_agg``), because no portable form keeps DuckDB's speed on a
million rows. Pages are in a total order of the table's columns: the documented sort keys,
then every other column (text compared byte-wise, ``COLLATE "C"``, as Python compares
it; JSON by its text; NULL last), so a page is the same on both backends and paging never
repeats or skips a row. Rows equal in every column are interchangeable. One difference
remains: of equal equities in a downsampling bucket both keep the earliest row, but DuckDB
may keep another when the bucket spans row groups that its threads read apart.

``POST /api/score`` takes long-form bars (JSON rows), computes the bundle's technical
features (:func:`alphatrade_lab.features.technical` with the bundle's feature spec), aligns
them by name to the bundle and answers the class probabilities and signals
(:func:`alphatrade_lab.models.signals`) of every bar; bodies above :data:`MAX_BODY_BYTES`
are refused with 413 before they are read.

>>> import alphatrade_lab as atl
>>> from alphatrade_lab.service import create_app
>>> schema = create_app(atl.store.LabStore(":memory:")).openapi()
>>> [p for p in schema["paths"] if p.startswith("/api/runs")][:3]
['/api/runs', '/api/runs/{run_id}', '/api/runs/{run_id}/equity']
>>> schema["paths"]["/api/runs"]["get"]["responses"]["200"]["content"]["application/json"]
{'schema': {'$ref': '#/components/schemas/RunsPage'}}
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, make_dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from alphatrade_lab.errors import DataError, RepairWarning
from alphatrade_lab.store.schema import TABLES

__all__ = ["MAX_BODY_BYTES", "MAX_LIMIT", "router", "setup"]

#: Largest request body accepted (``POST /api/score``); above it: 413.
MAX_BODY_BYTES = 1_000_000
#: Largest page (``limit``).
MAX_LIMIT = 10_000
_MAX_OFFSET = 10**12
_MAX_TEXT = 200

# no NUL character: PostgreSQL's text cannot hold one (422 on both backends, not a 500);
# a run id in the path is checked by _run_id (a pattern there leaves schemathesis no
# invalid path it can send)
_NO_NUL = r"^[^\x00]*$"

RunId = Annotated[str, Path(min_length=1, max_length=_MAX_TEXT, description="the run's id")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")]
Offset = Annotated[int, Query(ge=0, le=_MAX_OFFSET, description="rows skipped")]
Text = Annotated[str | None, Query(min_length=1, max_length=_MAX_TEXT, pattern=_NO_NUL)]


# ----------------------------------------------------------------- response models
_KIND_TYPES: dict[str, Any] = {"str": str, "float": float, "int": int, "bool": bool,
                               "ts": str, "date": str, "json": Any, "direction": int}


def _row_model(name: str, table: str, doc: str) -> type:
    """A dataclass with one optional field per column of the store's ``table``."""
    fields = [(c.name, _KIND_TYPES[c.kind] | None if c.kind != "json" else Any,
               field(default=None)) for c in TABLES[table]]
    cls = make_dataclass(name, fields)
    cls.__doc__ = doc
    cls.__module__ = __name__
    return cls


def _page_model(name: str, row: type) -> type:
    cls = make_dataclass(name, [("total", int), ("limit", int), ("offset", int),
                                ("rows", list[row])])  # type: ignore[valid-type]
    cls.__doc__ = f"One page of {row.__name__} rows and the number of rows in all pages."
    cls.__module__ = __name__
    return cls


RunRow = _row_model("RunRow", "runs", "A recorded run (params as JSON).")
TradeRow = _row_model("TradeRow", "trades", "A trade of a run.")
SignalRow = _row_model("SignalRow", "signals", "A signal of a run.")
DailyRow = _row_model("DailyRow", "daily_performance", "A day of a run's portfolio.")
OrderRow = _row_model("OrderRow", "orders", "An order of a live or paper run (latest state).")
FillRow = _row_model("FillRow", "fills", "A fill of a live or paper run.")
DriftRow = _row_model("DriftRow", "drift_stats", "A drift statistic of a feature.")
AlertRow = _row_model("AlertRow", "alerts", "An alert that was sent.")
PositionRow = _row_model("PositionRow", "positions", "The latest position of a symbol in a run.")

RunsPage = _page_model("RunsPage", RunRow)
TradesPage = _page_model("TradesPage", TradeRow)
SignalsPage = _page_model("SignalsPage", SignalRow)
DailyPage = _page_model("DailyPage", DailyRow)
OrdersPage = _page_model("OrdersPage", OrderRow)
FillsPage = _page_model("FillsPage", FillRow)
DriftPage = _page_model("DriftPage", DriftRow)
AlertsPage = _page_model("AlertsPage", AlertRow)


@dataclass
class Health:
    """The service is up: its version, what it serves and for how long (seconds)."""

    status: str
    version: str
    store: str
    bus: bool
    bundle: bool
    uptime_seconds: float


@dataclass
class SymbolSummary:
    """Per symbol of a run: trades, win rate, pnl, signals (executed) and the extreme days."""

    symbol: str
    trades: int
    win_rate: float | None = None
    pnl: float | None = None
    signals: int = 0
    executed: int = 0
    worst_day: float | None = None
    best_day: float | None = None


@dataclass
class RunSummary:
    """A run, its per-symbol summary and its row count in each table."""

    run: RunRow  # type: ignore[valid-type]
    symbols: list[SymbolSummary]
    counts: dict[str, int]


@dataclass
class EquitySeries:
    """One portfolio's equity: ``timestamp[i]`` (ISO, bar open time) and ``equity[i]``;
    ``rows``: how many rows the store holds for it."""

    portfolio: str
    rows: int
    timestamp: list[str]
    equity: list[float]


@dataclass
class EquityResponse:
    """A run's equity per portfolio, downsampled (min and max per time bucket) or full."""

    run_id: str
    downsampled: bool
    points: int
    series: list[EquitySeries]


@dataclass
class ModelInfo:
    """The served model bundle's metadata (no file paths)."""

    features: list[str] | None
    classes: list[Any]
    n_features: int
    nan_policy: str
    max_missing: float
    metrics: dict[str, Any]
    feature_spec: dict[str, Any] | None
    label_spec: dict[str, Any] | None
    created: str
    fingerprint: str | None
    versions: dict[str, str]
    estimator: str


@dataclass
class BarIn:
    """One bar (long form): its open time (ISO 8601; naive is UTC) and OHLCV."""

    timestamp: str
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass
class ScoreRequest:
    """Bars to score (every symbol's bars, oldest first or not) and the signal threshold."""

    bars: list[BarIn]
    threshold: float = 0.5


@dataclass
class ScoreRow:
    """A bar's class probabilities (keyed by class label as text) and its signal."""

    timestamp: str
    symbol: str
    proba: dict[str, float | None]
    direction: int
    confidence: float | None
    entry: bool
    exit: bool


@dataclass
class ScoreResponse:
    """One row per input bar (sorted by symbol, then time); ``missing_features``: bundle
    features the bars could not give (filled with training means)."""

    classes: list[str]
    threshold: float
    missing_features: list[str]
    rows: list[ScoreRow]


# ----------------------------------------------------------------- helpers
def _state(request: Request) -> Any:
    return request.app.state.lab


def _iso(values: Any) -> list[str | None]:
    ts = pd.DatetimeIndex(values)
    if ts.tz is None:
        ts = ts.tz_localize("UTC")
    out = np.asarray(ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ"), dtype=object)
    out[np.asarray(ts.isna())] = None
    return out.tolist()


def _plain(value: Any) -> Any:
    """A JSON-able copy: numpy scalars to Python, NaN/inf to None, timestamps to ISO."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, pd.Timestamp | np.datetime64):
        return None if pd.isna(value) else _iso([value])[0]
    return value


def _records(frame: pd.DataFrame, table: str) -> list[dict[str, Any]]:
    """Store rows as JSON-able dicts (per the column kinds of ``table``)."""
    kinds = {c.name: c.kind for c in TABLES[table]}
    cols: dict[str, list[Any]] = {}
    for name in frame.columns:
        kind, s = kinds.get(name, "str"), frame[name]
        if kind == "ts":
            cols[name] = _iso(s)
        elif kind == "date":
            cols[name] = [None if pd.isna(v) else pd.Timestamp(v).date().isoformat() for v in s]
        elif kind == "json":
            cols[name] = [None if v is None or (isinstance(v, float) and math.isnan(v))
                          else _plain(json.loads(v) if isinstance(v, str) else v) for v in s]
        elif kind in ("float",):
            a = s.to_numpy(dtype=np.float64, na_value=np.nan)
            cols[name] = [v if math.isfinite(v) else None for v in a.tolist()]
        else:
            cols[name] = [None if v is None or (isinstance(v, float) and math.isnan(v))
                          else _plain(v) for v in s.astype(object).tolist()]
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


def _cols(table: str) -> str:
    return ", ".join(f'"{c.name}"' for c in TABLES[table])


def _order(table: str, keys: str) -> str:
    """A total ``ORDER BY`` over ``table``: ``keys`` (comma-separated column names, each
    optionally followed by ``DESC``), then every other column of the table; text byte-wise,
    JSON by its text, NULL last: the same order on DuckDB and PostgreSQL.

    >>> _order("equity", "timestamp DESC")
    '"timestamp" DESC NULLS LAST, "run_id" COLLATE "C" NULLS LAST, \
"portfolio" COLLATE "C" NULLS LAST, "equity" NULLS LAST, "cash" NULLS LAST'
    """
    kinds = {c.name: c.kind for c in TABLES[table]}
    given = [k.split() for k in keys.split(",")]
    order = [(k[0], len(k) > 1) for k in given]
    order += [(name, False) for name in kinds if name not in {k for k, _ in order}]
    parts = []
    for name, desc in order:
        expr = f'"{name}"'
        if kinds[name] == "json":
            expr = f"CAST({expr} AS VARCHAR)"
        if kinds[name] in ("str", "json"):
            expr += ' COLLATE "C"'
        parts.append(f"{expr}{' DESC' if desc else ''} NULLS LAST")
    return ", ".join(parts)


def _page(store: Any, table: str, where: dict[str, Any], order: str, limit: int,
          offset: int) -> dict[str, Any]:
    """One page of ``table`` filtered by ``where`` (column = value, None: no filter), in
    the total order :func:`_order` makes of the sort keys ``order``."""
    conds, params = [], []
    for col, value in where.items():
        if value is not None:
            conds.append(f'"{col}" = ?')
            params.append(value)
    sql_where = (" WHERE " + " AND ".join(conds)) if conds else ""
    total = int(store.query(f"SELECT count(*) AS n FROM {table}{sql_where}",
                            params or None)["n"].iloc[0])
    rows = store.query(f"SELECT {_cols(table)} FROM {table}{sql_where} "
                       f"ORDER BY {_order(table, order)} "
                       "LIMIT ? OFFSET ?", [*params, limit, offset])
    return {"total": total, "limit": limit, "offset": offset, "rows": _records(rows, table)}


def _run_id(run_id: str) -> str:
    """``run_id`` unless it holds a NUL character (422, as a text filter's)."""
    if "\x00" in run_id:
        raise HTTPException(422, "run_id: a NUL character is not allowed")
    return run_id


def _require_run(store: Any, run_id: str) -> None:
    """404 unless the store knows ``run_id`` (a live engine's rows may come before, or
    without, its ``runs`` row)."""
    known = store.query("SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = $r) "
                        "OR EXISTS (SELECT 1 FROM equity WHERE run_id = $r) "
                        "OR EXISTS (SELECT 1 FROM orders WHERE run_id = $r) AS known",
                        {"r": run_id})
    if not bool(known["known"].iloc[0]):
        raise HTTPException(404, f"no run {run_id!r} in the store")


def setup(app: Any) -> None:
    """Per-app state of this module: the start time (for ``uptime_seconds``)."""
    app.state.lab.extra["rest"] = {"started": time.monotonic()}


# ----------------------------------------------------------------- body size limit
class _BodyLimitRoute(APIRoute):
    """A route that refuses bodies over ``MAX_BODY_BYTES`` (413), by their declared
    length or, without one, while they stream in (nothing above the limit is kept)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            too_big = JSONResponse({"detail": f"request body larger than {MAX_BODY_BYTES} "
                                    "bytes"}, status_code=413)
            declared = request.headers.get("content-length")
            if declared is not None and (not declared.isdigit()
                                         or int(declared) > MAX_BODY_BYTES):
                return too_big
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    return too_big
            request._body = bytes(body)  # what FastAPI's handler reads
            return await handler(request)

        return limited


router = APIRouter(prefix="/api", tags=["api"])
_scoring = APIRouter(route_class=_BodyLimitRoute)


# ----------------------------------------------------------------- routes
@router.get("/health", response_model=Health)
def health(request: Request) -> dict[str, Any]:
    """Liveness (open without a token): version, store, whether a bus and a bundle are
    attached, uptime in seconds."""
    from alphatrade_lab import __version__

    lab = _state(request)
    started = lab.extra.get("rest", {}).get("started", time.monotonic())
    return {"status": "ok", "version": str(__version__), "store": str(lab.store.path),
            "bus": lab.bus is not None, "bundle": lab.bundle is not None,
            "uptime_seconds": round(time.monotonic() - started, 3)}


@router.get("/runs", response_model=RunsPage)
def runs(request: Request, kind: Text = None, limit: Limit = 100, offset: Offset = 0
         ) -> dict[str, Any]:
    """Recorded runs, oldest first, optionally of one ``kind`` (backtest, paper, live...)."""
    return _page(_state(request).store, "runs", {"kind": kind}, "created_at",
                 limit, offset)


@router.get("/runs/{run_id}", response_model=RunSummary)
def run_summary(request: Request, run_id: RunId) -> dict[str, Any]:
    """A run, its per-symbol summary (trades, win rate, pnl, signals, worst and best day)
    and its row count in each table; 404 for an unknown run."""
    store = _state(request).store
    got = store.query(f"SELECT {_cols('runs')} FROM runs WHERE run_id = ?", [_run_id(run_id)])
    if not len(got):
        raise HTTPException(404, f"no run {run_id!r} in the store")
    tables = ("trades", "signals", "daily_performance", "orders", "fills", "equity",
              "positions", "drift_stats", "alerts")
    counts = store.query(" UNION ALL ".join(
        f"SELECT '{t}' AS t, count(*) AS n FROM {t} WHERE run_id = $r" for t in tables),
        {"r": run_id})
    summary = store.run_summary(run_id)
    symbols = [{k: _plain(v) for k, v in row.items()}
               for row in summary.to_dict("records")]
    return {"run": _records(got, "runs")[0], "symbols": symbols,
            "counts": {t: int(n) for t, n in zip(counts["t"], counts["n"], strict=True)}}


# per portfolio and time bucket of the run's span (its ends come from DuckDB's row-group
# statistics), the rows of lowest and highest equity, in one pass; doubles: no overflow.
# ``t_lo``/``t_hi`` are the row's time in microseconds since the epoch.
_EQUITY_BUCKETS = """
WITH span AS (
    SELECT epoch_us(min("timestamp")) AS t0, $buckets / greatest(
               epoch_us(max("timestamp")) - epoch_us(min("timestamp")), 1)::DOUBLE AS scale
    FROM equity WHERE run_id = $run AND ($portfolio IS NULL OR portfolio = $portfolio)
)
SELECT portfolio, least(CAST(floor((epoch_us("timestamp") - span.t0) * span.scale) AS BIGINT),
                        $buckets - 1) AS bucket, count(*) AS n,
       arg_min(epoch_us("timestamp"), equity) AS t_lo, min(equity) AS lo,
       arg_max(epoch_us("timestamp"), equity) AS t_hi, max(equity) AS hi
FROM equity, span WHERE run_id = $run AND ($portfolio IS NULL OR portfolio = $portfolio)
GROUP BY portfolio, bucket
"""

# the same on PostgreSQL: the same buckets (microseconds as exact doubles, the same double
# arithmetic), each row's (equity, time) as an array whose min is the bucket's lowest row
# and (equity, -time) one whose max is its highest (of equal ones, the earliest: what
# DuckDB's arg_min/arg_max keep when they meet the rows in time order);
# ``OFFSET 0`` keeps the time computed once a row (not inlined into each aggregate)
_EQUITY_BUCKETS_PG = """
WITH span AS (
    SELECT min("timestamp") AS t0,
           CAST(extract(epoch FROM min("timestamp")) * 1000000 AS BIGINT) AS us0,
           CAST($buckets AS DOUBLE PRECISION) / greatest(
               round(date_part('epoch', max("timestamp") - min("timestamp")) * 1e6), 1)
           AS scale
    FROM equity WHERE run_id = $run
                  AND (CAST($portfolio AS VARCHAR) IS NULL OR portfolio = $portfolio)
), lohi AS (
    SELECT portfolio, least(CAST(floor(us * (SELECT scale FROM span)) AS BIGINT),
                            $buckets - 1) AS bucket,
           count(*) AS n, min(ARRAY[equity, us]) AS lo, max(ARRAY[equity, -us]) AS hi
    FROM (SELECT portfolio, equity, round(date_part('epoch', "timestamp" - (
                     SELECT t0 FROM span)) * 1e6) AS us
          FROM equity WHERE run_id = $run
                        AND (CAST($portfolio AS VARCHAR) IS NULL OR portfolio = $portfolio)
          OFFSET 0) AS timed
    GROUP BY portfolio, bucket
)
SELECT portfolio, bucket, n, span.us0 + CAST(lo[2] AS BIGINT) AS t_lo, lo[1] AS lo,
       span.us0 - CAST(hi[2] AS BIGINT) AS t_hi, hi[1] AS hi
FROM lohi, span
"""

# every row, the JSON arrays built by DuckDB (a million Python objects would cost seconds)
_EQUITY_FULL = """
SELECT portfolio, count(*) AS n,
       to_json(list(strftime("timestamp" AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')
                    ORDER BY "timestamp"))::VARCHAR AS ts,
       to_json(list(CASE WHEN isfinite(equity) THEN equity END
                    ORDER BY "timestamp"))::VARCHAR AS eq
FROM equity WHERE run_id = $run AND ($portfolio IS NULL OR portfolio = $portfolio)
GROUP BY portfolio ORDER BY portfolio
"""

# the same JSON text built by PostgreSQL (``equity - equity = 0``: finite)
_EQUITY_FULL_PG = """
SELECT portfolio, count(*) AS n,
       CAST(json_agg(to_char("timestamp" AT TIME ZONE 'UTC',
                             'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') ORDER BY "timestamp")
            AS TEXT) AS ts,
       CAST(json_agg(CASE WHEN equity - equity = 0 THEN equity END ORDER BY "timestamp")
            AS TEXT) AS eq
FROM equity WHERE run_id = $run
              AND (CAST($portfolio AS VARCHAR) IS NULL OR portfolio = $portfolio)
GROUP BY portfolio ORDER BY portfolio COLLATE "C"
"""


@router.get("/runs/{run_id}/equity", response_model=EquityResponse)
def run_equity(request: Request, run_id: RunId,
               points: Annotated[int, Query(ge=2, le=100_000, description="most rows per "
                                            "portfolio when downsampled")] = 2000,
               full: Annotated[bool, Query(description="every row (no downsampling)")] = False,
               portfolio: Text = None) -> Any:
    """A run's equity per portfolio. By default at most ``points`` rows a portfolio: the
    run's time span in ``points // 2`` buckets, each keeping a portfolio's rows of lowest
    and highest equity (computed in the database; of equal ones the earliest, except that
    DuckDB may keep another when a bucket spans row groups its threads read apart); a
    portfolio with no more rows comes whole. ``full=true``: every row. 404 for an unknown
    run."""
    store = _state(request).store
    params = {"run": _run_id(run_id), "portfolio": portfolio}
    if full:  # up to millions of values: the JSON text comes from the database
        frame = store.query(_EQUITY_FULL_PG if store.dialect == "postgres"
                            else _EQUITY_FULL, params)
        if not len(frame):
            _require_run(store, run_id)
        parts = [f'{{"portfolio":{json.dumps(str(name))},"rows":{int(n)},'
                 f'"timestamp":{ts},"equity":{eq}}}' for name, n, ts, eq in zip(
                     frame["portfolio"], frame["n"], frame["ts"], frame["eq"], strict=True)]
        return Response(f'{{"run_id":{json.dumps(run_id)},"downsampled":false,'
                        f'"points":{points},"series":[{",".join(parts)}]}}',
                        media_type="application/json")
    g = store.query(_EQUITY_BUCKETS_PG if store.dialect == "postgres" else _EQUITY_BUCKETS,
                    params | {"buckets": points // 2})
    if not len(g):
        _require_run(store, run_id)
    series: list[dict[str, Any]] = []
    for name, part in g.groupby("portfolio", sort=True):
        pts = pd.concat([pd.DataFrame({"t": part["t_lo"], "v": part["lo"]}),
                         pd.DataFrame({"t": part["t_hi"], "v": part["hi"]})])
        pts["t"] = pd.to_datetime(pts["t"].to_numpy(dtype=np.int64), unit="us", utc=True)
        pts = pts.drop_duplicates("t").sort_values("t", kind="stable")
        rows = int(part["n"].sum())
        if len(pts) < rows <= points:  # few rows, some sharing a bucket: all of them
            pts = store.query('SELECT "timestamp" AS t, equity AS v FROM equity WHERE '
                              'run_id = ? AND portfolio = ? ORDER BY "timestamp"',
                              [run_id, str(name)])
        eq = pts["v"].to_numpy(dtype=np.float64)
        series.append({"portfolio": str(name), "rows": rows, "timestamp": _iso(pts["t"]),
                       "equity": [v if math.isfinite(v) else None for v in eq.tolist()]})
    return {"run_id": run_id, "downsampled": any(s["rows"] > len(s["equity"]) for s in series),
            "points": points, "series": series}


def _run_page(name: str, table: str, model: type, order: str, doc: str,
              symbol_col: str | None = "symbol") -> None:
    def endpoint(request: Request, run_id: RunId, symbol: Text = None, limit: Limit = 100,
                 offset: Offset = 0) -> dict[str, Any]:
        store = _state(request).store
        _require_run(store, _run_id(run_id))
        where: dict[str, Any] = {"run_id": run_id}
        if symbol_col is not None:
            where[symbol_col] = symbol
        return _page(store, table, where, order, limit, offset)

    endpoint.__doc__ = doc
    endpoint.__name__ = f"run_{name}"
    router.add_api_route(f"/runs/{{run_id}}/{name}", endpoint, methods=["GET"],
                         response_model=model, name=f"run_{name}")


_run_page("trades", "trades", TradesPage, "entry_time, symbol",
          "A run's trades by entry time (``symbol``: that symbol's; 404 for an unknown run).")
_run_page("signals", "signals", SignalsPage, "timestamp, symbol",
          "A run's recorded signals by time.")
_run_page("daily", "daily_performance", DailyPage, "portfolio, date",
          "A run's daily performance by portfolio and date (``symbol``: that portfolio).",
          "portfolio")
_run_page("orders", "orders", OrdersPage, "bar_time, client_order_id",
          "A live or paper run's orders (latest state) by bar time.")
_run_page("fills", "fills", FillsPage, "timestamp, client_order_id",
          "A live or paper run's fills by time.")


# the newest row of each (run, symbol); a tie in time goes to the larger qty, then price
_LATEST_POSITIONS = f"""
SELECT {_cols("positions")} FROM (
    SELECT {_cols("positions")}, row_number() OVER (
        PARTITION BY run_id, symbol
        ORDER BY "timestamp" DESC, qty DESC, price DESC NULLS LAST) AS newest
    FROM positions WHERE CAST($r AS VARCHAR) IS NULL OR run_id = $r
) AS p WHERE newest = 1
ORDER BY run_id COLLATE "C" NULLS LAST, symbol COLLATE "C"
"""


@router.get("/positions", response_model=list[PositionRow])  # type: ignore[valid-type]
def positions(request: Request, run_id: Text = None) -> list[dict[str, Any]]:
    """The latest position of each (run, symbol), of one run or all."""
    frame = _state(request).store.query(_LATEST_POSITIONS, {"r": run_id})
    return _records(frame, "positions")


@router.get("/drift", response_model=DriftPage)
def drift(request: Request, run_id: Text = None, feature: Text = None,
          drifted: bool | None = None, limit: Limit = 100, offset: Offset = 0
          ) -> dict[str, Any]:
    """Drift statistics by window end, feature and method (filters: run, feature,
    whether it drifted)."""
    return _page(_state(request).store, "drift_stats",
                 {"run_id": run_id, "feature": feature, "drifted": drifted},
                 "window_end, feature, method", limit, offset)


@router.get("/alerts", response_model=AlertsPage)
def alerts(request: Request, run_id: Text = None, level: Text = None, limit: Limit = 100,
           offset: Offset = 0) -> dict[str, Any]:
    """Alerts that were sent, newest first (filters: run, level)."""
    return _page(_state(request).store, "alerts", {"run_id": run_id, "level": level},
                 "ts DESC", limit, offset)


def _bundle(request: Request) -> Any:
    bundle = _state(request).bundle
    if bundle is None:
        raise HTTPException(404, "no model bundle is served: start the service with "
                                 "--bundle model.atlb (create_app(..., bundle=...))")
    return bundle


@router.get("/models", response_model=ModelInfo, responses={404: {"description": "no bundle"}})
def models(request: Request) -> dict[str, Any]:
    """The served bundle's features, classes, validation metrics, specs and provenance."""
    b = _bundle(request)
    return {"features": b.feature_names, "classes": _plain(list(b.classes)),
            "n_features": int(b.n_features), "nan_policy": b.nan_policy,
            "max_missing": float(b.max_missing), "metrics": _plain(b.metrics),
            "feature_spec": _plain(b.feature_spec), "label_spec": _plain(b.label_spec),
            "created": str(b.created), "fingerprint": b.fingerprint,
            "versions": {str(k): str(v) for k, v in b.versions.items()},
            "estimator": type(b.model).__name__}


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(422, message)


@_scoring.post("/score", response_model=ScoreResponse,
               responses={404: {"description": "no bundle"}, 413: {"description": "body "
                          "too large"}, 422: {"description": "bad bars or features"}})
def score(request: Request, body: ScoreRequest) -> dict[str, Any]:
    """Class probabilities and signals of each bar under the served bundle.

    The bars' technical features (the bundle's feature spec) are aligned to the bundle by
    name; bundle features they cannot give are filled with training means up to the
    bundle's ``max_missing`` share (beyond: 422). Bad bars (NaN, non-positive prices,
    high below low, duplicates, unparseable times) give 422 naming the row and column.
    """
    from alphatrade_lab.data import validate
    from alphatrade_lab.features import technical
    from alphatrade_lab.models import signals

    bundle = _bundle(request)
    if not 0.0 <= body.threshold <= 1.0 or math.isnan(body.threshold):
        raise _unprocessable(f"threshold must be in [0, 1], got {body.threshold!r}")
    if not body.bars:
        raise _unprocessable("bars: expected at least one bar")
    raw = pd.DataFrame({k: [getattr(b, k) for b in body.bars] for k in
                        ("timestamp", "symbol", "open", "high", "low", "close", "volume")})
    try:
        with warnings.catch_warnings():  # rows in any order are fine: not worth a warning
            warnings.filterwarnings("ignore", "request body, bars: sorted by", RepairWarning)
            bars = validate(raw, source="request body, bars", sort=True)
        X = technical(bars, bundle.spec)
        _, missing, _ = bundle.column_plan([c for c in X.columns
                                            if c not in ("timestamp", "symbol")])
        proba = pd.DataFrame(bundle.proba_matrix(bundle.align(X, warn=False)), index=X.index,
                             columns=pd.Index(bundle.classes))
        sig = signals(bundle, X, body.threshold, proba=proba).frame
    except (DataError, ValueError) as exc:
        raise _unprocessable(str(exc)) from None
    names = [str(c) for c in bundle.classes]
    P = proba.to_numpy(dtype=np.float64)
    conf = sig["confidence"].to_numpy(dtype=np.float64)
    stamps = _iso(X["timestamp"])
    rows = [{"timestamp": stamps[i], "symbol": str(s),
             "proba": {n: (v if math.isfinite(v) else None)
                       for n, v in zip(names, P[i].tolist(), strict=True)},
             "direction": int(d), "confidence": c if math.isfinite(c) else None,
             "entry": bool(en), "exit": bool(ex)}
            for i, (s, d, c, en, ex) in enumerate(zip(
                X["symbol"].tolist(), sig["direction"].tolist(), conf.tolist(),
                sig["entry"].tolist(), sig["exit"].tolist(), strict=True))]
    return {"classes": names, "threshold": float(body.threshold),
            "missing_features": missing, "rows": rows}


router.include_router(_scoring)
