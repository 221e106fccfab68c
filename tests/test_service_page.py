"""The dashboard page: served by the app with its own plotly.js and a CSP, nothing external;
and in headless Chromium against a real uvicorn on 127.0.0.1: charts rendered, no console
error, a fill published on the bus in the trades table within a second."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import alphatrade_lab as atl
from alphatrade_lab.service import create_app
from alphatrade_lab.service.pages import STATIC_DIR, plotly_js_path

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"   # git-ignored
IN_CI = os.environ.get("CI", "").lower() == "true"
# a URL to another host: scheme://..., or protocol-relative //host in an attribute or url()
EXTERNAL = re.compile(r"\b(?:https?|wss?|ftp):\\?/\\?/|[\"'(=]\s*//[A-Za-z0-9]", re.I)


# ------------------------------------------------------------------ fixtures
def _ma_cross(bars: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    close = atl.data.to_wide(bars, "close")
    fast, slow = close.rolling(3).mean(), close.rolling(8).mean()
    return fast > slow, fast < slow


def _populate(store: atl.store.LabStore, bus: atl.live.EventBus | None = None) -> str:
    """A paper run of two symbols (orders, fills, positions, equity), a stored backtest
    (trades, daily equity), drift statistics and an alert; returns the paper run's id."""
    bars = atl.data.resample(atl.data.load_sample(), "1h")
    bars = bars[bars["symbol"].isin(["AAA", "BBB"])]
    bars = bars[bars["timestamp"] < bars["timestamp"].min() + pd.Timedelta(days=12)]
    bars = bars.reset_index(drop=True)
    store.record_run("paper", run_id="paper-1")
    atl.live.Engine(atl.live.ReplayFeed(bars), atl.live.SignalStrategy(_ma_cross, 8),
                    atl.live.PaperBroker(100.0, fees=0.001), store=store, bus=bus,
                    run_id="paper-1", fees=0.001).run()
    daily = atl.data.resample(atl.data.load_sample(), "1D")
    close = atl.data.to_wide(daily, "close")
    entries, exits = _ma_cross(daily)
    store.record_backtest(atl.backtest.from_signals(close, entries, exits, fees=0.001),
                          run_id="bt-1", strategy="ma_cross")
    ends = pd.date_range("2024-01-02", periods=6, freq="D", tz="UTC")
    rng = np.random.default_rng(0)
    for end in ends:
        report = pd.DataFrame({"feature": ["rsi_14", "ret_1", "vol_20"], "method": "psi",
                               "statistic": rng.uniform(0, 0.4, 3), "threshold": 0.2})
        store.record_drift(report, run_id="paper-1", window_start=end - pd.Timedelta("1D"),
                           window_end=end)
    store.record_alert("warning", "drift", "rsi_14 drifted (psi 0.31)", run_id="paper-1")
    return "paper-1"


@pytest.fixture(scope="module")
def pg_module_url(postgres_admin) -> Iterator[str]:
    """A fresh PostgreSQL schema for this module's store (the session's server)."""
    import uuid

    import psycopg
    from psycopg import sql

    admin, url = postgres_admin
    name = f"page_{uuid.uuid4().hex[:12]}"
    user = psycopg.conninfo.conninfo_to_dict(url)["user"]
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
            sql.Identifier(name), sql.Identifier(user)))
    yield f"{url}?options=-csearch_path%3D{name}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def store(request) -> Iterator[atl.store.LabStore]:
    """The populated store, on each backend (DuckDB in memory, PostgreSQL)."""
    s = atl.store.LabStore(":memory:" if request.param == "duckdb"
                           else request.getfixturevalue("pg_module_url"))
    _populate(s)
    yield s
    s.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(app: object) -> Iterator[str]:
    """The app under a real uvicorn on 127.0.0.1 (a thread); yields its base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,  # type: ignore[arg-type]
                                           log_level="warning", ws="websockets"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


# ------------------------------------------------------------------ (a) served by the app
def test_page_served_with_csp_and_no_external_url(store):
    client = TestClient(create_app(store))
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert "unsafe-eval" not in csp and "script-src 'self' 'unsafe-inline'" not in csp
    html = page.text
    # every script and stylesheet is the app's own, under /static/
    srcs = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
    assert srcs == ["/static/vendor/plotly.min.js", "/static/dashboard.js"]
    assert re.findall(r'<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"', html) == [
        "/static/dashboard.css"]
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script (CSP)"
    for name, text in [("index.html", html), ("dashboard.js", client.get(
            "/static/dashboard.js").text), ("dashboard.css", client.get(
            "/static/dashboard.css").text)]:
        found = EXTERNAL.findall(text)
        assert not found, f"{name}: external URL(s) {found[:3]}"
    # the regex does catch what it is for
    assert EXTERNAL.search('<script src="https://cdn.plot.ly/plotly.js">')
    assert EXTERNAL.search("url(//fonts.example.com/a.woff)")
    assert not EXTERNAL.search('proto + "//" + window.location.host')


def test_plotly_js_is_the_installed_packages_with_caching(store):
    client = TestClient(create_app(store))
    r = client.get("/static/vendor/plotly.min.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    import plotly

    shipped = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert plotly_js_path() == shipped.resolve()
    assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(
        shipped.read_bytes()).hexdigest()
    assert len(r.content) > 1_000_000 and b"plotly.js v" in r.content[:200]
    assert "max-age=86400" in r.headers["cache-control"]
    assert "content-security-policy" in r.headers
    again = client.get("/static/vendor/plotly.min.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content
    for name in ("dashboard.js", "dashboard.css"):
        got = client.get(f"/static/{name}")
        assert got.status_code == 200 and got.content == (STATIC_DIR / name).read_bytes()
        assert got.headers["cache-control"] == "no-cache" and got.headers["etag"]


def test_only_the_pages_own_files_are_served(store):
    client = TestClient(create_app(store))
    for path in ("/static/index.html.bak", "/static/..%2Fpages.py", "/static/../pages.py",
                 "/static/%2e%2e/app.py", "/static/vendor/other.js"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "def " not in r.text and "import" not in r.text


def test_the_page_passes_its_token_on_to_its_assets(store):
    client = TestClient(create_app(store, token="s3cret-T0ken"))
    assert client.get("/").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    page = client.get("/?token=s3cret-T0ken")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    srcs = re.findall(r'\b(?:src|href)="(/static/[^"]+)"', page.text)
    assert len(srcs) == 3 and all(s.endswith("?token=s3cret-T0ken") for s in srcs)
    for src in srcs:
        assert client.get(src).status_code == 200
    # a bearer header opens the page too, but its token is never written into it
    by_header = client.get("/", headers={"Authorization": "Bearer s3cret-T0ken"})
    assert by_header.status_code == 200 and "s3cret" not in by_header.text
    # without a required token, a ?token= given is not echoed
    open_page = TestClient(create_app(store)).get("/?token=%22%3E%3Cscript%3E")
    assert "<script>" not in open_page.text and "token=" not in open_page.text


def test_static_files_are_package_data():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    wheel = config["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert "alphatrade_lab" in wheel["packages"]   # hatchling ships every file under it
    excluded = wheel.get("exclude", []) + config["tool"]["hatch"]["build"].get("exclude", [])
    assert not any("static" in e or e.endswith((".js", ".css", ".html")) for e in excluded)
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        assert (STATIC_DIR / name).is_file()
        assert STATIC_DIR.is_relative_to(root / "alphatrade_lab")


# ------------------------------------------------------------------ (b) headless Chromium
def _browser():
    """Playwright's Chromium on Debian's /usr/bin/chromium: skipped without it, except under
    CI=true where a missing browser fails the test."""
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        reason = f"playwright is not importable ({exc})"
    if reason is None and not CHROMIUM.is_file():
        reason = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI=true and the browser test cannot run: {reason}")
        pytest.skip(reason)
    return sync_playwright


@contextlib.contextmanager
def _page(base: str):
    sync_playwright = _browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            log: dict[str, list[str]] = {"errors": [], "requests": [], "sockets": []}
            page.on("console", lambda m: log["errors"].append(f"console: {m.text}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: log["errors"].append(f"pageerror: {e}"))
            page.on("request", lambda r: log["requests"].append(r.url))
            page.on("websocket", lambda w: log["sockets"].append(w.url))
            yield page, log
        finally:
            browser.close()


def _plotted(page) -> dict[str, int]:
    """Each chart's plotly root and the number of drawn SVG paths inside it."""
    return page.evaluate("""() => Object.fromEntries(
        Array.from(document.querySelectorAll('.chart')).map(el => [el.id,
          el.classList.contains('js-plotly-plot') && el.querySelector('svg.main-svg')
            ? el.querySelectorAll('.scatterlayer .trace path, .heatmaplayer image').length
            : -1]))""")


@pytest.mark.slow
def test_dashboard_in_headless_chromium(tmp_path):
    store = atl.store.LabStore(":memory:")
    bus = atl.live.EventBus()
    run_id = _populate(store, bus)
    app = create_app(store, bus)
    with serve(app) as base, _page(base) as (page, log):
        page.goto(base + "/", wait_until="load")
        page.wait_for_selector("html[data-ready='1']", timeout=15_000)
        page.wait_for_selector("#ws-status[data-state='live']", timeout=5_000)
        page.wait_for_timeout(400)  # the throttled chart render

        # the live run is picked and its stored rows shown
        assert page.eval_on_selector("#run-picker", "el => el.value") == "__live__"
        assert page.text_content("#run-info") == f"run {run_id}"
        options = page.eval_on_selector_all("#run-picker option", "els => els.map(e => e.value)")
        assert {"paper-1", "bt-1"} <= set(options)
        fills = store.fills(run_id)
        n_rows = page.eval_on_selector_all("#trades tbody tr[data-order]", "els => els.length")
        assert n_rows == min(len(fills), 200) and len(fills) > 5
        # each sell's P&L: what it sold, less what the buy it closes cost, fees of both sides
        f = fills.sort_values(["bar_time", "timestamp"]).reset_index(drop=True)
        expected = {}
        for _, part in f.groupby("symbol"):
            cost = 0.0
            for row in part.itertuples():
                if row.side == "buy":
                    cost = row.qty * row.price + row.fees
                else:
                    expected[row.client_order_id] = row.qty * row.price - row.fees - cost
        shown_pnl = dict(page.eval_on_selector_all(
            "#trades tbody tr[data-order]",
            "els => els.map(e => [e.dataset.order, e.cells[6].textContent])"))
        got = {k: shown_pnl[k] for k in expected if k in shown_pnl}
        assert len(got) > 10
        for k, text in got.items():
            assert float(text.replace(",", "")) == pytest.approx(expected[k], abs=1e-4), k
        assert all(shown_pnl[k] == "" for k in shown_pnl if k not in expected)  # buys open
        plotted = _plotted(page)
        assert set(plotted) == {"chart-equity", "chart-price", "chart-drift", "chart-model"}
        assert all(n > 0 for n in plotted.values()), plotted
        # the equity line has one point per stored timestamp (the sum of the two groups)
        eq = page.evaluate("() => document.getElementById('chart-equity').data[0]")
        stored = store.equity(run_id).groupby("timestamp")["equity"].sum()
        assert len(eq["x"]) == len(stored)
        np.testing.assert_allclose(eq["y"], stored.to_numpy(), rtol=1e-9)
        positions = store.positions(run_id).sort_values("timestamp").groupby("symbol").last()
        open_syms = sorted(positions.index[positions["qty"].abs() > 1e-12])
        shown = page.eval_on_selector_all("#positions tbody tr td:first-child",
                                          "els => els.map(e => e.textContent)")
        assert shown == (open_syms or ["flat"])
        drift = page.evaluate("() => document.getElementById('chart-drift').data[0]")
        assert sorted(drift["y"]) == ["ret_1", "rsi_14", "vol_20"] and len(drift["x"]) == 6
        assert "rsi_14 drifted" in page.text_content("#alerts")

        # a fill published on the bus shows in the trades table within a second
        t0 = time.monotonic()
        bus.publish("fill", {"client_order_id": "atl-browser-test-1", "symbol": "BBB",
                             "side": "buy", "qty": np.float64(1.25), "price": 123.456,
                             "fees": 0.1234, "timestamp": pd.Timestamp.now(tz="UTC"),
                             "bar_time": pd.Timestamp("2030-01-01", tz="UTC")})
        row = page.wait_for_selector("#trades tr[data-order='atl-browser-test-1']",
                                     timeout=1_000)
        elapsed = time.monotonic() - t0
        cells = row.eval_on_selector_all("td", "els => els.map(e => e.textContent)")
        assert cells[:5] == ["2030-01-01 00:00:00", "BBB", "buy", "1.25", "123.456"]
        assert page.eval_on_selector("#trades tbody tr", "el => el.dataset.order") == \
            "atl-browser-test-1"   # newest first
        print(f"fill on the bus -> trades table row: {elapsed * 1000:.0f} ms")
        assert elapsed < 1.0

        ARTIFACTS.mkdir(exist_ok=True)
        light = ARTIFACTS / "dashboard_light.png"
        page.screenshot(path=str(light), full_page=True)
        bg_light = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        page.click("#theme-toggle")
        page.wait_for_timeout(300)
        bg_dark = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
        assert bg_light != bg_dark
        dark = ARTIFACTS / "dashboard_dark.png"
        page.screenshot(path=str(dark), full_page=True)
        print(f"screenshots: {light} {dark}")
        assert light.stat().st_size > 20_000 and dark.stat().st_size > 20_000

        # the stored backtest: its daily equity and trades
        page.select_option("#run-picker", "bt-1")
        page.wait_for_function("() => document.getElementById('chart-equity').data[0].x.length"
                               " > 300", timeout=5_000)
        n_bt = page.eval_on_selector_all("#trades tbody tr", "els => els.length")
        assert n_bt == min(len(store.trades("bt-1")), 200)

        assert not log["errors"], log["errors"]
        external = [u for u in log["requests"] if not u.startswith((base, "data:"))]
        assert not external, external[:5]


@pytest.mark.slow
def test_dashboard_reconnects_and_resumes_with_a_token():
    store = atl.store.LabStore(":memory:")
    bus = atl.live.EventBus()
    token = "t0ken-" + "x" * 20
    app = create_app(store, bus, token=token)
    with serve(app) as base, _page(base) as (page, log):
        page.goto(f"{base}/?token={token}", wait_until="load")
        page.wait_for_selector("html[data-ready='1']", timeout=15_000)
        page.wait_for_selector("#ws-status[data-state='live']", timeout=5_000)
        bus.publish("fill", {"client_order_id": "f-1", "symbol": "AAA", "side": "buy",
                             "qty": 1.0, "price": 10.0, "fees": 0.0,
                             "timestamp": pd.Timestamp("2024-01-01", tz="UTC")})
        page.wait_for_selector("#trades tr[data-order='f-1']", timeout=1_000)
        # the server drops every socket; events published meanwhile arrive after the resume
        page.evaluate("() => window.atlDashboard.state.ws.close(4000, 'test')")
        bus.publish("fill", {"client_order_id": "f-2", "symbol": "AAA", "side": "sell",
                             "qty": 1.0, "price": 11.0, "fees": 0.0,
                             "timestamp": pd.Timestamp("2024-01-02", tz="UTC")})
        page.wait_for_selector("#trades tr[data-order='f-2']", timeout=5_000)
        page.wait_for_selector("#ws-status[data-state='live']", timeout=5_000)
        ids = page.eval_on_selector_all("#trades tbody tr", "els => els.map(e => e.dataset.order)")
        assert ids == ["f-2", "f-1"]  # each once
        assert not log["errors"], log["errors"]
        assert all(u.startswith(base) for u in log["requests"])
        ws_base = base.replace("http://", "ws://") + "/ws?"
        main = [u for u in log["sockets"] if "topics=" not in u]
        assert len(main) == 2 and all(u.startswith(ws_base) for u in log["sockets"])
        assert all(f"token={token}" in u for u in log["sockets"])
        assert "since=" not in main[0] and re.search(r"since=[1-9]", main[1])


@pytest.mark.slow
def test_dashboard_follows_a_run_that_starts_after_the_page_opened():
    """Everything of the run reaches the page live (the fast replay's equity ticks that the
    WebSocket conflates are read back from REST): every fill once, the store's equity."""
    store = atl.store.LabStore(":memory:")
    bus = atl.live.EventBus()
    with serve(create_app(store, bus)) as base, _page(base) as (page, log):
        page.goto(base + "/", wait_until="load")
        page.wait_for_selector("#ws-status[data-state='live']", timeout=15_000)
        assert page.eval_on_selector_all("#trades tbody tr[data-order]", "e => e.length") == 0
        _populate(store, bus)
        fills = store.fills("paper-1")
        stored = store.equity("paper-1").groupby("timestamp")["equity"].sum()
        page.wait_for_function(
            f"() => document.querySelectorAll('#trades tr[data-order]').length >= {len(fills)}"
            f" && document.getElementById('chart-equity').data[0].x.length >= {len(stored)}",
            timeout=10_000)
        page.wait_for_timeout(300)
        ids = page.eval_on_selector_all("#trades tbody tr[data-order]",
                                        "els => els.map(e => e.dataset.order)")
        assert sorted(ids) == sorted(fills["client_order_id"])
        eq = page.evaluate("() => document.getElementById('chart-equity').data[0]")
        assert [pd.Timestamp(x, tz="UTC") for x in eq["x"]] == list(stored.index)
        np.testing.assert_allclose(eq["y"], stored.to_numpy(), rtol=1e-9)
        prices = page.evaluate("() => document.getElementById('chart-price').data[0]")
        assert len(prices["x"]) > 100 and prices["name"] == "AAA close"  # the bars of the bus
        assert not log["errors"], log["errors"]


def test_a_missing_browser_fails_under_ci_and_skips_elsewhere(monkeypatch):
    import sys

    me = sys.modules[__name__]
    monkeypatch.setattr(me, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setattr(me, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true .* no chromium at /nonexistent"):
        me._browser()
    monkeypatch.setattr(me, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="no chromium at /nonexistent"):
        me._browser()


@pytest.mark.slow
def test_dashboard_without_an_event_bus_shows_the_stored_runs(store):
    with serve(create_app(store)) as base, _page(base) as (page, log):
        page.goto(base + "/?run=bt-1", wait_until="load")
        page.wait_for_selector("html[data-ready='1']", timeout=15_000)
        options = page.eval_on_selector_all("#run-picker option", "els => els.map(e => e.value)")
        assert "__live__" not in options and page.eval_on_selector(
            "#run-picker", "el => el.value") == "bt-1"
        page.wait_for_timeout(400)
        n_days = store.daily_performance("bt-1")["date"].nunique()
        eq = page.evaluate("() => document.getElementById('chart-equity').data[0]")
        daily = store.daily_performance("bt-1").groupby("date")["ending_equity"].sum()
        assert len(eq["x"]) == n_days
        np.testing.assert_allclose(eq["y"], daily.to_numpy(), rtol=1e-9)
        assert not log["errors"], log["errors"]


@pytest.mark.slow
def test_back_to_the_live_run_after_a_stored_one():
    store = atl.store.LabStore(":memory:")
    bus = atl.live.EventBus()
    _populate(store, bus)
    with serve(create_app(store, bus)) as base, _page(base) as (page, log):
        page.goto(base + "/", wait_until="load")
        page.wait_for_selector("#ws-status[data-state='live']", timeout=15_000)
        page.wait_for_function("() => document.getElementById('chart-price').data[0].x.length"
                               " > 100", timeout=5_000)
        live_rows = page.eval_on_selector_all("#trades tbody tr", "e => e.length")
        page.select_option("#run-picker", "bt-1")
        page.wait_for_function("() => document.getElementById('chart-price').data[0].name"
                               ".endsWith('fill prices')", timeout=5_000)
        page.select_option("#run-picker", "__live__")
        page.wait_for_function("() => document.getElementById('chart-price').data[0].x.length"
                               " > 100", timeout=5_000)
        assert page.eval_on_selector_all("#trades tbody tr", "e => e.length") == live_rows
        assert not log["errors"], log["errors"]
