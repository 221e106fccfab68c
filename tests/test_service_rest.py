"""The service's REST API, Prometheus metrics and `alphatrade-lab serve` (issue 19, part 1).

Requests go through the ASGI app (httpx's ASGITransport) or a real uvicorn server on
127.0.0.1; every answer is checked against the store's own readers or pandas. The tests of
endpoints and data run on both store backends (DuckDB in memory, and PostgreSQL: a schema
of the session's server, tests/conftest.py), and one test asks every endpoint of both
about the same rows and compares the JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import uuid
import warnings

import httpx
import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.live import Engine, EventBus, ModelStrategy, PaperBroker, ReplayFeed
from alphatrade_lab.service import create_app
from alphatrade_lab.service.rest import MAX_BODY_BYTES
from alphatrade_lab.store.schema import TABLES
from alphatrade_lab.store.validate import to_arrow

TOKEN = "tok-3b1f0c9e2d7a48a6b5c4d3e2f1a0b9c8"  # a fake API token


def call(app, method: str, url: str, **kwargs) -> httpx.Response:
    """One request through the ASGI app (no socket)."""
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            return await client.request(method, url, **kwargs)
    return asyncio.run(go())


def get(app, url: str, **kwargs) -> httpx.Response:
    return call(app, "GET", url, **kwargs)


@pytest.fixture(scope="module")
def trained(sample_bars):
    """A bundle trained on 15-minute bars of two symbols, and three days of bars after."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bars = sample_bars[sample_bars["symbol"].isin(["AAA", "BBB"])]
    bars = atl.data.resample(bars[bars["timestamp"] < bars["timestamp"].min()
                                  + pd.Timedelta("40D")], "15min")
    cut = bars["timestamp"].quantile(0.7)
    train, held = bars[bars["timestamp"] < cut], bars[bars["timestamp"] >= cut]
    held = held[held["timestamp"] < held["timestamp"].min() + pd.Timedelta("3D")]
    X, y = atl.models.align(atl.features.technical(train), atl.models.labels(train))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    bundle = atl.models.train(X, y, model, n_splits=2, progress=False)
    return {"bundle": bundle, "train": train, "held": held}


def populate(store, trained) -> str:
    """A paper run of the bundle, a backtest run (returned) with drift, and alerts."""
    bundle, train, held = trained["bundle"], trained["train"], trained["held"]
    Engine(ReplayFeed(held), ModelStrategy(bundle, threshold=0.4), PaperBroker(100.0, fees=0.001),
           store=store, run_id="paper1").run()
    close = atl.data.to_wide(held, "close")
    n = len(close)
    pf = atl.backtest.from_signals(close, np.arange(n) % 20 == 0, np.arange(n) % 20 == 10)
    bt = store.record_backtest(pf, strategy="demo")
    ref = atl.features.technical(train).iloc[:500]
    cur = atl.features.technical(held).iloc[:200]
    store.record_drift(atl.monitoring.drift_report(ref.drop(columns=["timestamp", "symbol"]),
                                                   cur.drop(columns=["timestamp", "symbol"])),
                       run_id=bt)
    for i, level in enumerate(["info", "warning", "critical"]):
        store.record_alert(level, f"alert {i}", "message", {"i": i}, run_id="paper1")
    return bt


@pytest.fixture(scope="module")
def pg_module_url(postgres_admin):
    """A fresh PostgreSQL schema for this module's stores (the session's server)."""
    import psycopg
    from psycopg import sql

    admin, url = postgres_admin
    name = f"svc_{uuid.uuid4().hex[:12]}"
    user = psycopg.conninfo.conninfo_to_dict(url)["user"]
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
            sql.Identifier(name), sql.Identifier(user)))
    yield f"{url}?options=-csearch_path%3D{name}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def lab(request, trained):
    """A store (DuckDB in memory, or PostgreSQL) with a backtest run and a paper run of a
    trained bundle, drift and alerts."""
    where = ":memory:" if request.param == "duckdb" else request.getfixturevalue(
        "pg_module_url")
    store = atl.store.LabStore(where)
    bt = populate(store, trained)
    yield {"store": store, "bundle": trained["bundle"], "held": trained["held"], "bt": bt,
           "app": create_app(store, bundle=trained["bundle"])}
    store.close()


@pytest.fixture(scope="module")
def app(lab):
    return lab["app"]


# ----------------------------------------------------------------- endpoints
def test_health_reports_what_is_served(app, lab):
    body = get(app, "/api/health").json()
    assert body["status"] == "ok" and body["version"] == atl.__version__
    assert body["store"] == str(lab["store"].path) and "@" not in body["store"]
    assert body["bundle"] is True and body["bus"] is False
    assert body["uptime_seconds"] >= 0
    bare = get(create_app(atl.store.LabStore(":memory:"), EventBus()), "/api/health").json()
    assert bare["bundle"] is False and bare["bus"] is True


def test_runs_list_kind_filter_and_pagination(app, lab):
    store = lab["store"]
    want = store.runs()
    body = get(app, "/api/runs").json()
    assert body["total"] == len(want) == 2
    assert [r["run_id"] for r in body["rows"]] == want["run_id"].tolist()
    paper = get(app, "/api/runs", params={"kind": "paper"}).json()
    assert [r["run_id"] for r in paper["rows"]] == ["paper1"] and paper["total"] == 1
    second = get(app, "/api/runs", params={"limit": 1, "offset": 1}).json()
    assert second["total"] == 2 and [r["run_id"] for r in second["rows"]] == \
        [want["run_id"].iloc[1]]
    assert get(app, "/api/runs", params={"kind": "nope"}).json()["rows"] == []


def test_run_summary_matches_the_store_and_unknown_runs_are_404(app, lab):
    store, bt = lab["store"], lab["bt"]
    body = get(app, f"/api/runs/{bt}").json()
    want = store.run_summary(bt)
    assert [s["symbol"] for s in body["symbols"]] == want["symbol"].tolist()
    assert [s["trades"] for s in body["symbols"]] == want["trades"].tolist()
    np.testing.assert_allclose([s["pnl"] for s in body["symbols"]], want["pnl"])
    assert body["counts"]["trades"] == len(store.trades(bt))
    assert body["counts"]["drift_stats"] == len(store.drift(bt)) > 0
    assert body["run"]["run_id"] == bt and body["run"]["kind"] == "backtest"
    paper = get(app, "/api/runs/paper1").json()
    assert paper["counts"]["fills"] == len(store.fills("paper1")) > 0
    assert paper["counts"]["equity"] == len(store.equity("paper1"))
    for url in ("/api/runs/nope", "/api/runs/nope/equity", "/api/runs/nope/trades",
                "/api/runs/nope/fills"):
        r = get(app, url)
        assert r.status_code == 404 and "nope" in r.json()["detail"], url


@pytest.mark.parametrize("name, table, key", [
    ("trades", "trades", ["symbol", "entry_time"]),
    ("signals", "signals", ["symbol", "timestamp"]),
    ("daily", "daily_performance", ["portfolio", "date"]),
    ("orders", "orders", ["client_order_id"]),
    ("fills", "fills", ["client_order_id", "timestamp"]),
])
def test_run_tables_page_through_every_row(app, lab, name, table, key):
    store = lab["store"]
    reader = {"daily": store.daily_performance, "trades": store.trades,
              "signals": store.signals, "orders": store.orders, "fills": store.fills}[name]
    for run in ("paper1", lab["bt"]):
        want = reader(run)
        rows, offset = [], 0
        while True:
            page = get(app, f"/api/runs/{run}/{name}", params={"limit": 7, "offset": offset})
            assert page.status_code == 200
            body = page.json()
            assert body["total"] == len(want) and len(body["rows"]) <= 7
            rows += body["rows"]
            offset += 7
            if offset >= body["total"]:
                break
        got = pd.DataFrame(rows, columns=list(want.columns))
        assert len(got) == len(want)
        if not len(want):
            continue
        for col in key:  # same rows: compare the keys, as text, in a canonical order
            a = sorted(map(str, pd.to_datetime(got[col], utc=True) if "time" in col or
                           col == "date" else got[col]))
            b = sorted(map(str, pd.to_datetime(want[col], utc=True) if "time" in col or
                           col == "date" else want[col]))
            assert a == b, col
        numeric = [c for c in want.columns if pd.api.types.is_float_dtype(want[c])]
        for c in numeric:
            np.testing.assert_allclose(np.sort(got[c].astype(float).to_numpy()),
                                       np.sort(want[c].to_numpy(dtype=float)), equal_nan=True)
    assert sum(len(reader(r)) for r in ("paper1", lab["bt"])) > 0


def test_symbol_filter(app, lab):
    want = lab["store"].trades(lab["bt"], "AAA")
    body = get(app, f"/api/runs/{lab['bt']}/trades", params={"symbol": "AAA",
                                                              "limit": 10_000}).json()
    assert body["total"] == len(want) > 0 and {r["symbol"] for r in body["rows"]} == {"AAA"}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 10_001}, {"offset": -1},
                                    {"limit": "x"}, {"kind": "k" * 201}])
def test_bad_query_values_are_422(app, params):
    r = get(app, "/api/runs", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][0] == "query"


def test_a_nul_character_in_a_value_is_422(app):
    """PostgreSQL's text cannot hold NUL: refused up front on both backends (not a 500)."""
    for url in ("/api/runs?kind=%00", "/api/runs/paper1/trades?symbol=x%00",
                "/api/positions?run_id=%00", "/api/drift?feature=%00",
                "/api/runs/paper1/equity?portfolio=%00"):
        r = get(app, url)
        assert r.status_code == 422, url
        assert r.json()["detail"][0]["type"] == "string_pattern_mismatch", url
    for url in ("/api/runs/a%00b", "/api/runs/a%00/trades", "/api/runs/%00/equity"):
        r = get(app, url)
        assert r.status_code == 422 and "NUL" in r.json()["detail"], url


def test_equity_full_is_every_row_and_downsampled_keeps_extremes(app, lab):
    eq = lab["store"].equity("paper1").sort_values(["portfolio", "timestamp"])
    full = get(app, "/api/runs/paper1/equity", params={"full": "true"}).json()
    assert full["downsampled"] is False
    for s in full["series"]:
        part = eq[eq["portfolio"] == s["portfolio"]]
        assert s["rows"] == len(part) == len(s["equity"])
        np.testing.assert_allclose(s["equity"], part["equity"].to_numpy(), rtol=0, atol=0)
        assert pd.to_datetime(s["timestamp"], utc=True).equals(
            pd.DatetimeIndex(part["timestamp"]))
    assert {s["portfolio"] for s in full["series"]} == set(eq["portfolio"])
    small = get(app, "/api/runs/paper1/equity", params={"points": 20}).json()
    assert small["downsampled"] is True
    for s in small["series"]:
        part = eq[eq["portfolio"] == s["portfolio"]]
        assert 2 <= len(s["equity"]) <= 20
        assert min(s["equity"]) == part["equity"].min()
        assert max(s["equity"]) == part["equity"].max()
        # every point is a stored row, in time order
        t = pd.to_datetime(s["timestamp"], utc=True)
        assert t.is_monotonic_increasing
        stored = part.set_index("timestamp")["equity"]
        np.testing.assert_array_equal(stored.loc[t].to_numpy(), s["equity"])
    whole = get(app, "/api/runs/paper1/equity").json()  # fewer rows than points: all
    assert whole["downsampled"] is False
    assert sum(len(s["equity"]) for s in whole["series"]) == len(eq)
    n = eq.groupby("portfolio").size().max()  # as many points as rows: still all
    exact = get(app, "/api/runs/paper1/equity", params={"points": int(n)}).json()
    assert exact["downsampled"] is False
    assert sum(len(s["equity"]) for s in exact["series"]) == len(eq)
    one = get(app, "/api/runs/paper1/equity", params={"portfolio": "AAA"}).json()
    assert [s["portfolio"] for s in one["series"]] == ["AAA"]


def test_downsampling_equals_a_pandas_min_max_per_bucket(store_url):
    """A 20,000-row run with a one-bar crash: the crash survives and each bucket's min and
    max equal pandas' on the same buckets (on both backends)."""
    rng = np.random.default_rng(3)
    n = 20_000
    t = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    eq = 100 + np.cumsum(rng.normal(0, 0.05, n))
    eq[12_345] = 1.0  # a one-bar crash
    store = atl.store.LabStore(store_url)
    store.record_run("paper", run_id="r")
    store.record_live("r", equity=pd.DataFrame({"timestamp": t, "portfolio": "P",
                                                "equity": eq, "cash": np.nan}))
    body = get(create_app(store), "/api/runs/r/equity", params={"points": 200}).json()
    s = body["series"][0]
    assert s["rows"] == n and len(s["equity"]) <= 200 and 1.0 in s["equity"]
    ns = t.asi8 // 1000
    bucket = np.minimum(np.floor((ns - ns[0]) * (100 / (ns[-1] - ns[0]))), 99)
    g = pd.Series(eq).groupby(bucket)
    want = pd.Series(eq[np.union1d(g.idxmin(), g.idxmax())],
                     index=t[np.union1d(g.idxmin(), g.idxmax())])
    got = pd.Series(s["equity"], index=pd.to_datetime(s["timestamp"], utc=True))
    pd.testing.assert_series_equal(got, want, check_names=False, check_freq=False)


@pytest.mark.slow
def test_equity_of_a_million_row_run_answers_in_under_200_ms():
    rng = np.random.default_rng(1)
    n = 500_000
    t = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC")
    store = atl.store.LabStore(":memory:")
    store.record_run("paper", run_id="big")
    store.record_live("big", equity=pd.concat([pd.DataFrame({
        "timestamp": t, "portfolio": p, "equity": 100 + np.cumsum(rng.normal(0, .01, n)),
        "cash": np.nan}) for p in ("A", "B")], ignore_index=True))
    app = create_app(store)

    async def timed():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                r = await client.get("/api/runs/big/equity")
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200
            return min(times), r.json()

    best, body = asyncio.run(timed())
    assert [s["rows"] for s in body["series"]] == [n, n]
    assert all(len(s["equity"]) <= 2000 for s in body["series"])
    assert best < 0.2, f"best of 5: {best * 1e3:.0f} ms"


def test_positions_are_the_latest_per_run_and_symbol(app, lab):
    pos = lab["store"].positions("paper1")
    want = pos.sort_values("timestamp", kind="stable").groupby("symbol").last()
    body = get(app, "/api/positions").json()
    assert sorted(r["symbol"] for r in body) == sorted(want.index)
    for r in body:
        assert r["run_id"] == "paper1"
        assert r["qty"] == pytest.approx(want.loc[r["symbol"], "qty"], abs=0)
        assert pd.Timestamp(r["timestamp"]) == want.loc[r["symbol"], "timestamp"]
    assert get(app, "/api/positions", params={"run_id": "other"}).json() == []


def test_drift_and_alerts(app, lab):
    store, bt = lab["store"], lab["bt"]
    drift = store.drift(bt)
    body = get(app, "/api/drift", params={"run_id": bt, "limit": 10_000}).json()
    assert body["total"] == len(drift)
    flagged = get(app, "/api/drift", params={"drifted": "true", "limit": 10_000}).json()
    assert flagged["total"] == int(drift["drifted"].sum())
    assert all(r["drifted"] for r in flagged["rows"])
    alerts = get(app, "/api/alerts").json()
    assert alerts["total"] == 3
    assert [a["title"] for a in alerts["rows"]] == ["alert 2", "alert 1", "alert 0"]
    assert alerts["rows"][0]["data"] == {"i": 2}
    crit = get(app, "/api/alerts", params={"level": "critical"}).json()
    assert [a["level"] for a in crit["rows"]] == ["critical"]


def _same(a, b, where="$"):
    """JSON values equal, floats to 1e-12 (sums may add in another order); objects are
    unordered (PostgreSQL's JSONB orders a stored object's keys its own way)."""
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _copy_store(source, target) -> None:
    """Every row of every table of ``source`` into ``target`` (runs first)."""
    batches = []
    for table in TABLES:
        frame = source.query(f"SELECT * FROM {table}")
        if len(frame):
            batches.append((table, to_arrow(table, frame)))
    target._write(batches)


def test_every_endpoint_answers_the_same_json_on_both_backends(trained, pg_url):
    """The same rows in DuckDB and in PostgreSQL: every endpoint, every page, the same
    JSON (rows in the same order: the pages' total order needs no rowid)."""
    duck = atl.store.LabStore(":memory:")
    bt = populate(duck, trained)
    rng = np.random.default_rng(5)  # a random walk: no equal equities in a bucket
    t = pd.date_range("2024-01-01", periods=5000, freq="1min", tz="UTC")
    duck.record_run("paper", run_id="walk")
    duck.record_live("walk", equity=pd.concat([pd.DataFrame({
        "timestamp": t, "portfolio": p, "equity": 100 + np.cumsum(rng.normal(0, .1, len(t))),
        "cash": np.nan}) for p in ("b", "B", "a")], ignore_index=True))
    duck.record_run("paper", run_id="flat")  # equal equities in every bucket
    duck.record_live("flat", equity=pd.DataFrame({
        "timestamp": t, "portfolio": "P", "cash": np.nan,
        "equity": np.repeat([100.0, 101.0, 100.0, 99.0, 100.0], len(t) // 5)}))
    k = 40  # trades tied on the sort keys (entry time, symbol), written in random order
    duck.record_trades(pd.DataFrame({
        "symbol": rng.choice(["x", "X", "é"], k), "side": "long",
        "quantity": rng.integers(1, 4, k).astype(float), "entry_time": t[0],
        "entry_price": 10.0, "pnl": rng.normal(size=k).round(1), "status": "closed"}),
        run_id="walk")
    pg = atl.store.LabStore(pg_url)
    _copy_store(duck, pg)
    apps = [create_app(s) for s in (duck, pg)]
    urls = [("/api/runs", {}), ("/api/runs", {"kind": "paper"}), ("/api/positions", {}),
            ("/api/positions", {"run_id": "paper1"}), ("/api/runs/walk/equity", {}),
            ("/api/runs/walk/equity", {"points": 50}),
            ("/api/runs/walk/equity", {"points": 50, "portfolio": "B"}),
            ("/api/runs/walk/equity", {"full": "true"}),
            ("/api/runs/paper1/equity", {"full": "true"}),
            ("/api/runs/paper1/equity", {"points": 20}),
            ("/api/runs/flat/equity", {"points": 20}), ("/api/runs/flat/equity", {}),
            ("/api/drift", {"limit": 10_000}), ("/api/drift", {"drifted": "true"}),
            ("/api/alerts", {}), ("/api/alerts", {"level": "warning"})]
    for run in ("paper1", bt, "walk", "nope"):
        urls.append((f"/api/runs/{run}", {}))
        for name in ("trades", "signals", "daily", "orders", "fills"):
            urls += [(f"/api/runs/{run}/{name}", {"limit": 7, "offset": k})
                     for k in range(0, 50, 7)]
    urls += [("/api/drift", {"limit": 5, "offset": k}) for k in range(0, 60, 5)]
    for url, params in urls:
        a, b = (get(app, url, params=params) for app in apps)
        assert a.status_code == b.status_code, (url, params)
        _same(a.json(), b.json(), f"{url} {params}")
    assert get(apps[1], f"/api/runs/{bt}/trades").json()["total"] > 0
    tied = get(apps[1], "/api/runs/walk/trades", params={"limit": k}).json()["rows"]
    keys = [(r["symbol"].encode(), r["quantity"]) for r in tied]
    assert keys == sorted(keys) and len(tied) == k  # byte-wise, then the next columns
    pg.close()


def test_models_metadata(app, lab):
    b = lab["bundle"]
    body = get(app, "/api/models").json()
    assert body["features"] == b.feature_names and body["classes"] == list(b.classes)
    assert body["created"] == b.created and body["estimator"] == "Pipeline"
    assert body["feature_spec"] == json.loads(json.dumps(b.feature_spec))
    r = get(create_app(atl.store.LabStore(":memory:")), "/api/models")
    assert r.status_code == 404 and "bundle" in r.json()["detail"]


@pytest.mark.slow
def test_models_metadata_of_a_bundle_file_shows_no_path(lab, tmp_path):
    path = atl.models.save_bundle(lab["bundle"], tmp_path / "secret-place" / "m.atlb")
    body = get(create_app(lab["store"], bundle=path), "/api/models")
    assert body.json()["features"] == lab["bundle"].feature_names
    assert "secret-place" not in body.text and str(tmp_path) not in body.text


# ----------------------------------------------------------------- scoring
def _rows(bars: pd.DataFrame) -> list[dict]:
    out = bars[["timestamp", "symbol", "open", "high", "low", "close", "volume"]].copy()
    out["timestamp"] = out["timestamp"].map(lambda t: t.isoformat())
    return out.to_dict("records")


def test_score_equals_predict_proba_and_signals(app, lab):
    bundle, held = lab["bundle"], lab["held"]
    bars = held.groupby("symbol").head(120)
    body = call(app, "POST", "/api/score", json={"bars": _rows(bars), "threshold": 0.4}).json()
    X = atl.features.technical(bars.reset_index(drop=True), bundle.spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = bundle.predict_proba(X)
    sig = atl.models.signals(bundle, X, 0.4, proba=proba).frame
    assert body["classes"] == [str(c) for c in bundle.classes]
    assert len(body["rows"]) == len(X) == len(bars)
    got = np.array([[r["proba"][str(c)] for c in bundle.classes] for r in body["rows"]])
    np.testing.assert_allclose(got, proba.to_numpy(), rtol=1e-12, atol=1e-15)
    assert [r["direction"] for r in body["rows"]] == sig["direction"].tolist()
    assert [r["entry"] for r in body["rows"]] == sig["entry"].tolist()
    assert [r["symbol"] for r in body["rows"]] == X["symbol"].tolist()
    assert pd.to_datetime([r["timestamp"] for r in body["rows"]], utc=True).equals(
        pd.DatetimeIndex(X["timestamp"]))
    assert body["missing_features"] == []
    # the input order does not matter: rows come back sorted by symbol and time
    shuffled = call(app, "POST", "/api/score", json={"bars": _rows(bars.iloc[::-1]),
                                                     "threshold": 0.4}).json()
    assert shuffled["rows"] == body["rows"]


def test_score_rejects_bad_bars_with_the_row_and_column(app, lab):
    rows = _rows(lab["held"].head(50))
    bad = [dict(r) for r in rows]
    bad[7]["close"] = -1.0
    r = call(app, "POST", "/api/score", json={"bars": bad})
    assert r.status_code == 422 and "close" in r.json()["detail"]
    missing = [dict(r) for r in rows]
    del missing[3]["volume"]
    r = call(app, "POST", "/api/score", json={"bars": missing})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "bars", 3, "volume"]
    text = json.dumps({"bars": rows}).replace(f'"high": {rows[5]["high"]}', '"high": NaN', 1)
    assert "NaN" in text
    r = call(app, "POST", "/api/score", content=text,
             headers={"content-type": "application/json"})
    assert r.status_code == 422 and "high" in r.text
    r = call(app, "POST", "/api/score", json={"bars": rows, "threshold": 1.5})
    assert r.status_code == 422 and "threshold" in r.text
    assert call(app, "POST", "/api/score", json={"bars": []}).status_code == 422
    dup = rows + rows[:1]
    assert call(app, "POST", "/api/score", json={"bars": dup}).status_code == 422


def test_score_missing_features_beyond_the_limit_is_422(lab):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    A = rng.normal(size=(200, 3))
    model = LogisticRegression().fit(A, np.where(A[:, 0] > 0, 1, -1))
    b = atl.models.ModelBundle(model, ["ret_1", "not_a_feature", "nor_this"], A.mean(0),
                               A.std(0), [-1, 1], max_missing=0.5)
    r = call(create_app(lab["store"], bundle=b), "POST", "/api/score",
             json={"bars": _rows(lab["held"].head(40))})
    assert r.status_code == 422 and "not_a_feature" in r.json()["detail"]


def test_score_without_a_bundle_is_404_and_big_bodies_are_413(lab):
    bare = create_app(atl.store.LabStore(":memory:"))
    rows = _rows(lab["held"].head(5))
    r = call(bare, "POST", "/api/score", json={"bars": rows})
    assert r.status_code == 404 and "bundle" in r.json()["detail"]
    big = json.dumps({"bars": rows * (MAX_BODY_BYTES // len(json.dumps(rows)) + 1)})
    assert len(big) > MAX_BODY_BYTES
    r = call(lab["app"], "POST", "/api/score", content=big,
             headers={"content-type": "application/json"})
    assert r.status_code == 413


# ----------------------------------------------------------------- security
ENDPOINTS = ["/api/health", "/api/runs", "/api/runs/paper1", "/api/runs/paper1/equity",
             "/api/runs/paper1/trades", "/api/runs/paper1/signals", "/api/runs/paper1/daily",
             "/api/runs/paper1/orders", "/api/runs/paper1/fills", "/api/positions",
             "/api/drift", "/api/alerts", "/api/models", "/api/openapi.json", "/metrics"]


def test_token_required_when_set_and_health_open(lab):
    app = create_app(lab["store"], bundle=lab["bundle"], token=TOKEN)
    assert get(app, "/api/health").status_code == 200
    for url in ENDPOINTS[1:]:
        r = get(app, url)
        assert r.status_code == 401, url
        assert TOKEN not in r.text
        assert get(app, url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert get(app, "/api/runs", params={"token": TOKEN}).status_code == 200
    assert get(app, "/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = call(app, "POST", "/api/score", json={"bars": _rows(lab["held"].head(5))})
    assert r.status_code == 401


def test_no_secret_in_any_response(lab, monkeypatch):
    secrets = {"ALPHATRADE_API_TOKEN": TOKEN, "TELEGRAM_BOT_TOKEN": "123456:tg-secret-xyz",
               "DISCORD_WEBHOOK": "https://discord.example/api/webhooks/1/dc-secret-abc",
               "APCA_API_SECRET_KEY": "alpaca-secret-qwe"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    app = create_app(lab["store"], EventBus(), lab["bundle"], token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    texts = [get(app, url, headers=auth).text for url in ENDPOINTS]
    texts.append(call(app, "POST", "/api/score", headers=auth,
                      json={"bars": _rows(lab["held"].head(60))}).text)
    texts.append(get(app, "/api/runs/nope", headers=auth).text)
    texts.append(repr(app.state.lab))
    for text in texts:
        for value in secrets.values():
            assert value not in text


def test_cors_is_closed_by_default(app):
    r = get(app, "/api/runs", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    pre = call(app, "OPTIONS", "/api/runs", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in pre.headers


def test_openapi_lists_typed_responses(app):
    schema = get(app, "/api/openapi.json").json()
    comps = schema["components"]["schemas"]
    for name in ("Health", "RunsPage", "RunRow", "RunSummary", "EquityResponse",
                 "TradesPage", "TradeRow", "FillsPage", "OrdersPage", "DriftPage",
                 "AlertsPage", "ModelInfo", "ScoreRequest", "ScoreResponse", "PositionRow"):
        assert name in comps, name
    assert set(comps["TradeRow"]["properties"]) >= {"symbol", "entry_time", "pnl"}
    for path, ops in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in ops.items():
            content = op["responses"]["200"]["content"]["application/json"]["schema"]
            assert "$ref" in content or content.get("type") == "array", (method, path)
    body = schema["paths"]["/api/score"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"].endswith("ScoreRequest")


# ----------------------------------------------------------------- metrics
def test_metrics_move_with_bus_events(lab):
    bus = EventBus()
    app = create_app(atl.store.LabStore(":memory:"), bus)
    other = create_app(atl.store.LabStore(":memory:"), EventBus())  # a registry of its own
    m = app.state.lab.extra["metrics"]
    t = pd.Timestamp("2024-01-01", tz="UTC")
    bus.publish("bar", {"timestamp": t, "bars": {"AAA": {}, "BBB": {}}})
    bus.publish("order", {"client_order_id": "o1", "status": "new"})
    bus.publish("order", {"client_order_id": "o1", "status": "filled"})
    bus.publish("order", {"client_order_id": "o2", "status": "rejected"})
    bus.publish("fill", {"client_order_id": "o1", "qty": np.float64(1.5), "price": 10.0})
    for e in (100.0, 120.0, 90.0):
        bus.publish("equity", {"timestamp": t, "equity": e, "groups": {}})
    bus.publish("alert", {"level": "warning", "title": "x", "message": ""})
    bus.publish("drift", {"feature": "f", "drifted": True})
    bus.publish("drift", {"feature": "g", "drifted": False})
    text = get(app, "/metrics").text
    assert get(app, "/metrics").headers["content-type"].startswith("text/plain")
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and
                 not line.startswith("#"))
    assert float(lines["alphatrade_bars_total"]) == 1
    assert float(lines["alphatrade_bar_symbols_total"]) == 2
    assert float(lines["alphatrade_orders_total"]) == 2
    assert float(lines["alphatrade_rejects_total"]) == 1
    assert float(lines['alphatrade_order_updates_total{status="filled"}']) == 1
    assert float(lines["alphatrade_fills_total"]) == 1
    assert float(lines["alphatrade_filled_qty_total"]) == 1.5
    assert float(lines["alphatrade_equity"]) == 90.0
    assert float(lines["alphatrade_drawdown"]) == pytest.approx(0.25)
    assert float(lines['alphatrade_alerts_total{level="warning"}']) == 1
    assert float(lines["alphatrade_drift_breaches_total"]) == 1
    assert float(lines["alphatrade_last_event_seq"]) == bus.seq == 11
    assert 0 <= float(lines["alphatrade_last_event_age_seconds"]) < 60
    assert bus.callback_errors == 0
    m.websocket_clients.inc()
    m.observe_lag(bus.since(0)[-1])
    text = get(app, "/metrics").text
    assert "alphatrade_websocket_clients 1.0" in text
    assert "alphatrade_event_lag_seconds_count 1.0" in text
    assert "alphatrade_bars_total 0.0" in get(other, "/metrics").text


def test_metrics_export_an_alert_managers_counts():
    from alphatrade_lab.alerts import AlertManager, LogAlerter

    app = create_app(atl.store.LabStore(":memory:"))
    manager = AlertManager([LogAlerter()])
    try:
        app.state.lab.extra["metrics"].alert_manager = manager
        assert manager.send("warning", "disk", "almost full").ok
        lines = get(app, "/metrics").text.splitlines()
        assert "alphatrade_alert_manager_sent_total 1.0" in lines
        assert any(line.startswith("alphatrade_alert_manager_failed_total{sink=")
                   and line.endswith(" 0.0") for line in lines)
    finally:
        manager.close()


def test_metrics_callback_is_thread_safe():
    bus = EventBus()
    m = create_app(atl.store.LabStore(":memory:"), bus).state.lab.extra["metrics"]

    def work(k):
        for i in range(500):
            bus.publish("order", {"client_order_id": f"{k}-{i}", "status": "new"})
            bus.publish("fill", {"qty": 1.0})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert m.value("alphatrade_orders_total") == 2000
    assert m.value("alphatrade_fills_total") == 2000


# ----------------------------------------------------------------- a real server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(lab):
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(lab["app"], host="127.0.0.1", port=port, log_level="warning",
                            ws="websockets")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not srv.started:
        if os.environ.get("CI") == "true":
            pytest.fail("the uvicorn server did not start")
        pytest.skip("the uvicorn server did not start")
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_real_server_refuses_a_streamed_body_over_the_limit(server, lab):
    rows = _rows(lab["held"].head(30))
    with httpx.Client(base_url=server) as client:
        assert client.get("/api/runs").json()["total"] == 2
        ok = client.post("/api/score", json={"bars": rows})
        assert ok.status_code == 200 and len(ok.json()["rows"]) == 30
        chunk = b" " * 65536

        def chunks():  # no content-length: the limit applies while it streams in
            yield b'{"bars": []'
            for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
                yield chunk
            yield b"}"

        r = client.post("/api/score", content=chunks(),
                        headers={"content-type": "application/json"})
        assert r.status_code == 413


def test_serve_refuses_a_public_host_without_a_token(monkeypatch, tmp_path, capsys):
    from alphatrade_lab.cli import main

    monkeypatch.delenv("ALPHATRADE_API_TOKEN", raising=False)
    path = tmp_path / "lab.duckdb"
    atl.store.LabStore(path).close()
    assert main(["serve", "--store", str(path), "--host", "0.0.0.0"]) == 2
    assert "ALPHATRADE_API_TOKEN" in capsys.readouterr().err
    assert main(["serve", "--store", str(tmp_path / "none.duckdb")]) == 2
    assert "no lab store" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_command_runs_the_service(tmp_path):
    """`alphatrade-lab serve` in a subprocess: health open, the API behind the token."""
    import subprocess
    import sys

    path = tmp_path / "lab.duckdb"
    with atl.store.LabStore(path) as store:
        store.record_run("paper", run_id="r1")
    port = _free_port()
    env = {**os.environ, "ALPHATRADE_API_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "alphatrade_lab.cli", "serve", "--store",
                             str(path), "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/api/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        assert health.json()["store"] == str(path)
        assert httpx.get(f"{url}/api/runs").status_code == 401
        runs = httpx.get(f"{url}/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert [r["run_id"] for r in runs.json()["rows"]] == ["r1"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert TOKEN not in out and "token required" in out


# ----------------------------------------------------------------- fuzzing
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzed_requests_never_give_a_server_error(lab, mode):
    """schemathesis over the OpenAPI schema (every /api operation and /metrics), valid and
    invalid inputs, 30 examples per operation (run ids often those of stored runs): never
    a 5xx."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.openapi import from_asgi

    schema = from_asgi("/api/openapi.json", lab["app"]).include(path_regex=r"^/(api|metrics)")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    gen = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    for op in operations:
        @settings(max_examples=30, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(gen), run=st.sampled_from([None, "paper1", lab["bt"]]))
        def fuzz(case, run):
            if run is not None and "run_id" in (case.path_parameters or {}):
                case.path_parameters["run_id"] = run  # a stored run, not only 404s
            case.call_and_validate(checks=[not_a_server_error])

        try:
            fuzz()
        except Unsatisfiable:  # no parameter or body to make invalid
            assert mode == "negative", op.label
            assert not (len(op.query) or len(op.path_parameters) or len(op.body)), op.label
