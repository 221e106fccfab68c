"""``make deploy-check``: the compose stack's engine and dashboard service, run here as local
processes against real PostgreSQL and Redis servers, and checked over HTTP, WebSocket and SQL.

These machines have no Docker engine, so the containers cannot start. What runs instead is
what they would run:

1. the project's wheel, built and installed into a fresh virtual environment with the
   Dockerfile's own commands (``pip wheel --no-deps``, then ``pip install --constraint
   constraints.txt <wheel>[deploy]``) and its runtime ``ENV`` lines;
2. a PostgreSQL server and a Redis server started in a temporary folder, set up as the
   compose file's ``db`` service is (superuser and database from its ``POSTGRES_*``
   variables, then ``deploy/db/grafana-reader.sh``, the script the image runs at init);
3. the ``engine`` and ``api`` services' ``command`` and ``environment`` from
   ``docker-compose.yml``, with ``${VAR}`` taken from ``.env.example`` (empty secrets filled
   with random values) and these local stand-ins for the container's network and mounts:
   the service names ``db`` and ``redis`` become 127.0.0.1 and the servers' ports, the
   api's ``--port`` a free port, and each volume's container path its host folder in the
   temporary folder (the exported model and bars; ``live.toml`` copied with the replay's
   ``speed`` removed so that the check does not wait in real time);
4. the walk-forward model of notebook 10 exported into the models folder, with the
   held-out bars the engine replays.

Then the checks: the engine exits 0 at the end of the replay; its orders and fills are in
PostgreSQL (read as Grafana's read-only user); the api answers ``/api/health``, serves the
run over ``/api/runs`` and counts the fills in ``/metrics`` (with the token, as Prometheus
sends it); a WebSocket client receives every fill through Redis with the engine's sequence
numbers; and each SQL panel of the Grafana dashboard runs on the deployed store as
``grafana_reader``. Not verified here: the images themselves (Python base image, user,
read-only root file system, health checks), TimescaleDB (Debian has no package: the
store runs on plain PostgreSQL 15), Prometheus and Grafana servers.

    .venv/bin/python deploy/check.py [--venv PATH] [--models DIR] [--out DIR]

``--venv`` reuses an environment that has the project installed instead of building a
fresh one, and ``--models`` takes an exported ``model.atlb`` and ``bars.parquet`` instead of
exporting them (notebook 12 does both, to stay quick); ``--out`` keeps the report
(``report.json``), the run's fills as PostgreSQL holds them (``fills.parquet``), the Grafana
panels' query results (``panels.json``) and a screenshot of the dashboard
(``dashboard.png``). Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUN_ID = "paper-deploy"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def log(msg: str) -> None:
    print(f"[deploy-check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------- environment
def env_file(path: Path) -> dict[str, str]:
    """``.env.example``'s values, with every empty password, token and key filled with a
    random one (as a user's ``.env`` would be)."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    for key, value in out.items():
        if not value and re.search(r"PASSWORD|TOKEN", key):
            out[key] = secrets.token_urlsafe(24)
    return out


def substitute(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}`` and ``${VAR:-default}``."""
    return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def dockerfile_env(path: Path, tmp: Path) -> dict[str, str]:
    """The runtime stage's ``ENV`` settings (``/tmp`` becomes the check's own folder; PATH
    is set by the caller)."""
    text = path.read_text().replace("\\\n", " ")
    stage = text.rsplit("\nFROM ", 1)[1]
    out: dict[str, str] = {}
    for line in stage.splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                key, _, value = item.partition("=")
                if key != "PATH":
                    out[key] = value.replace("/tmp", str(tmp))
    return out


def build_venv(tmp: Path) -> Path:
    """The Dockerfile's build stage, here: the wheel, then a fresh venv from it."""
    dist, venv = tmp / "dist", tmp / "venv"
    log("building the wheel (pip wheel --no-deps)")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(dist), str(ROOT)], check=True)
    wheel = next(dist.glob("alphatrade_lab-*.whl"))
    log(f"installing {wheel.name}[deploy] into a fresh virtual environment")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "--constraint",
                    str(ROOT / "constraints.txt"), f"{wheel}[deploy]"], check=True)
    return venv


# ---------------------------------------------------------------------- model
def export_model(models: Path) -> int:
    """Notebook 10's model: a scaler and logistic regression trained with walk-forward
    validation on the first 70% of the sample's 15-minute bars, exported with its hash;
    the held-out bars are what the engine replays. Returns the held-out bar count."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import alphatrade_lab as atl

    bars = atl.data.resample(atl.data.load_sample(), "15min")
    cut = bars["timestamp"].quantile(0.7).floor("D")
    train = bars[bars["timestamp"] < cut].reset_index(drop=True)
    held = bars[bars["timestamp"] >= cut].reset_index(drop=True)
    X, y = atl.models.align(atl.features.technical(train), atl.models.labels(train))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        trained = atl.models.train(X, y, make_pipeline(StandardScaler(),
                                                       LogisticRegression(max_iter=2000)),
                                   n_splits=3, progress=False, threads=1)
    models.mkdir(parents=True, exist_ok=True)
    atl.models.save_bundle(trained, models / "model.atlb")
    held.to_parquet(models / "bars.parquet", index=False)
    return len(held)


# ------------------------------------------------------------------- services
class Stack:
    """The compose file's services as local processes."""

    def __init__(self, tmp: Path, venv: Path, env: dict[str, str]):
        self.tmp, self.venv, self.env = tmp, venv, env
        self.compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        self.mounts: dict[str, Path] = {}
        self.hosts: dict[str, str] = {}
        self.procs: dict[str, subprocess.Popen] = {}

    def service(self, name: str) -> dict[str, Any]:
        return self.compose["services"][name]

    def mount(self, name: str, local: dict[str, Path]) -> None:
        """Map each volume ``host:container`` of service ``name`` to a local path."""
        for volume in self.service(name).get("volumes", []):
            host, container = volume.split(":")[:2]
            if host.startswith((".", "/")):
                self.mounts[container] = local.get(host, ROOT / host)
            else:  # a named volume: a folder of its own
                self.mounts[container] = self.tmp / "volumes" / host
                self.mounts[container].mkdir(parents=True, exist_ok=True)

    def localize(self, value: str) -> str:
        for container, local in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            value = value.replace(container, str(local))
        for host, local in self.hosts.items():
            value = value.replace(host, local)
        return value

    def process_env(self, name: str) -> dict[str, str]:
        env = {"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "HOME": str(self.tmp),
               "LANG": "C.UTF-8", **dockerfile_env(ROOT / "Dockerfile", self.tmp)}
        for key, value in self.service(name).get("environment", {}).items():
            env[key] = self.localize(substitute(str(value), self.env))
        return env

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        cmd = [str(self.venv / "bin" / "alphatrade-lab"), *args]
        log(f"starting {name}: alphatrade-lab {' '.join(args)}")
        with open(self.tmp / f"{name}.log", "ab") as out:  # the child keeps its own copy
            proc = subprocess.Popen(cmd, env=self.process_env(name), cwd=self.tmp,
                                    stdout=out, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def output(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def setup_db(pg: Any, env: dict[str, str], db_env: dict[str, str]) -> None:
    """What the db image does at init: the database of POSTGRES_DB, then the init script."""
    pg.create_database(db_env["POSTGRES_DB"], owner=db_env["POSTGRES_USER"])
    script_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **db_env,
                  "PGHOST": str(pg.socket_dir), "PGPORT": str(pg.port)}
    subprocess.run(["sh", str(ROOT / "deploy" / "db" / "grafana-reader.sh")], env=script_env,
                   check=True, capture_output=True)


def wait_http(url: str, stack: Stack, name: str, args: list[str],
              timeout: float = 120) -> int:
    """Wait for ``url``; a service that exits first is started again, as the compose
    file's ``restart: unless-stopped`` does (the api exits while the engine has not yet
    created the store's schema). Returns the number of restarts."""
    deadline, restarts = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        if stack.procs[name].poll() is not None:
            restarts += 1
            log(f"{name} exited with {stack.procs[name].returncode}: "
                f"{stack.output(name).strip().splitlines()[-1:]}; restarting it")
            time.sleep(1.0)
            stack.start(name, args)
            continue
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return restarts
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f} s")


class FillWatcher:
    """A WebSocket client of the api from the moment it answers: the fills of its first
    snapshot (what the service had consumed from Redis before) and every fill event after
    it, with their sequence numbers."""

    def __init__(self, url: str):
        import threading

        self.url, self.snapshot, self.events = url, [], []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from websockets.sync.client import connect

        try:
            with connect(self.url) as ws:
                while not self._stop.is_set():
                    try:
                        doc = json.loads(ws.recv(timeout=0.2))
                    except TimeoutError:
                        continue
                    for msg in doc if isinstance(doc, list) else [doc]:
                        if msg.get("type") == "snapshot" and not self.events:
                            self.snapshot = msg.get("fills", [])
                        elif msg.get("type") == "event" and msg.get("topic") == "fill":
                            self.events.append(msg)
        except BaseException as exc:  # reported by the check
            self.error = exc

    def orders(self) -> set[str]:
        return ({f["client_order_id"] for f in self.snapshot}
                | {m["data"]["client_order_id"] for m in self.events})

    def wait_for(self, orders: set[str], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not orders <= self.orders() and time.monotonic() < deadline:
            time.sleep(0.1)
        self._stop.set()
        self._thread.join(5)


def grafana_panels(conn: Any) -> dict[str, dict[str, Any]]:
    """Run each SQL panel of the generated dashboard on the store: per panel title, its
    columns and rows (JSON-able)."""
    path = next((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
    board = json.loads(path.read_text())
    out = {}
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            sql = target.get("rawSql")
            if not sql:
                continue
            # Grafana's macros, for the whole run: every row is in the time range
            sql = re.sub(r"\$__timeFilter\(([^)]*)\)", "TRUE", sql)
            sql = re.sub(r"\$__time\(([^)]*)\)", r"\1 AS time", sql)
            sql = re.sub(r"\$__timeGroupAlias\(([^,]*),[^)]*\)", r"\1 AS time", sql)
            # the dashboard's run variable, as Grafana's sqlstring format quotes it
            sql = re.sub(r"\$\{run(:[a-z]+)?\}|\$run\b", f"'{RUN_ID}'", sql)
            with conn.cursor() as cur:
                cur.execute(sql)
                cols = [d.name for d in cur.description]
                rows = [[v if isinstance(v, int | float | str) or v is None else str(v)
                         for v in row] for row in cur.fetchall()]
            out[panel.get("title", "?")] = {"columns": cols, "rows": rows}
    return out


def screenshot(url: str, path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or
                                    "/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu",
                                          "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_timeout(2500)
        page.screenshot(path=str(path), full_page=True)
        browser.close()


# ---------------------------------------------------------------------- check
def check(tmp: Path, venv: Path | None, models: Path | None, out: Path | None
          ) -> dict[str, Any]:
    import psycopg

    from alphatrade_lab.testing import LocalPostgres, LocalRedis

    report: dict[str, Any] = {"checks": {}}
    env = env_file(ROOT / ".env.example")
    venv = venv.resolve() if venv else build_venv(tmp)
    if models is None:
        models = tmp / "models"
        log("exporting the walk-forward model and the held-out bars")
        export_model(models)
    report["bars"] = len(pd.read_parquet(models / "bars.parquet"))
    stack = Stack(tmp, venv, env)
    config = tmp / "live.toml"
    text = (ROOT / "deploy" / "live.toml").read_text()
    feed = tomllib.loads(text)["feed"]
    text = re.sub(r"(?m)^speed\s*=.*\n", "", text) if "speed" in feed else text
    config.write_text(text)
    for name in ("engine", "api"):
        stack.mount(name, {"./deploy/models": models, "./deploy/live.toml": config})
    config.write_text(stack.localize(text))

    db = {k: substitute(str(v), env) for k, v in stack.service("db")["environment"].items()}
    with LocalPostgres(user=db["POSTGRES_USER"], password=db["POSTGRES_PASSWORD"]) as pg, \
            LocalRedis() as redis:
        setup_db(pg, env, db)
        stack.hosts = {"@db:5432": f"@127.0.0.1:{pg.port}",
                       "//redis:6379": f"//127.0.0.1:{redis.port}"}
        port = free_port()
        try:
            engine = stack.start("engine", [stack.localize(a) for a in
                                            stack.service("engine")["command"]])
            api_args = [str(port) if prev == "--port" else a for prev, a in
                        zip(["", *stack.service("api")["command"]],
                            stack.service("api")["command"], strict=False)]
            api_args = [stack.localize(a) for a in api_args]
            stack.start("api", api_args)
            base = f"http://127.0.0.1:{port}"
            report["api restarts"] = wait_http(base + "/api/health", stack, "api", api_args)
            token = env["ALPHATRADE_API_TOKEN"]
            watcher = FillWatcher(f"ws://127.0.0.1:{port}/ws?topics=fill&token={token}")
            code = engine.wait(600)
            report["checks"]["engine exited 0"] = code == 0
            if code != 0:
                log("engine output:\n" + stack.output("engine")[-4000:])
            reader = pg.url_for(db["POSTGRES_DB"], "grafana_reader", db["GRAFANA_DB_PASSWORD"])
            with psycopg.connect(reader) as conn:
                with conn.cursor() as cur:
                    counts = {}
                    for table in ("orders", "fills", "equity", "positions"):
                        cur.execute(f"SELECT count(*) FROM {table} WHERE run_id = %s",
                                    [RUN_ID])
                        counts[table] = cur.fetchone()[0]
                    cur.execute("SELECT * FROM fills WHERE run_id = %s ORDER BY bar_time, "
                                "client_order_id", [RUN_ID])
                    fills = pd.DataFrame(cur.fetchall(), columns=[d.name for d in
                                                                  cur.description])
                report["rows in PostgreSQL"] = counts
                report["checks"]["fills reached PostgreSQL"] = counts["fills"] > 0
                panels = grafana_panels(conn)
                report["grafana panels"] = {k: len(v["rows"]) for k, v in panels.items()}
                # every panel's query runs; the run's equity and orders have rows (an
                # alert-free run has none in its alerts panel)
                report["checks"]["Grafana's SQL panels run as grafana_reader"] = (
                    len(panels) >= 2 and all(panels[t]["rows"] for t in panels
                                             if "alert" not in t.lower()))
            auth = {"Authorization": f"Bearer {token}"}
            runs = httpx.get(base + "/api/runs", headers=auth, timeout=10).json()
            report["checks"]["the api serves the run"] = RUN_ID in json.dumps(runs)
            report["checks"]["the api refuses a request without the token"] = (
                httpx.get(base + "/api/runs", timeout=10).status_code == 401)
            stored = set(fills["client_order_id"])
            watcher.wait_for(stored)
            seqs = [m["seq"] for m in watcher.events]
            report["fills over the WebSocket"] = {"in the first snapshot": len(watcher.snapshot),
                                                  "as events": len(watcher.events)}
            report["checks"]["every fill reached the WebSocket through Redis, in order"] = (
                watcher.error is None and watcher.orders() == stored
                and seqs == sorted(set(seqs)))
            metrics = httpx.get(base + "/metrics", headers=auth, timeout=10).text
            m = re.search(r"(?m)^alphatrade_fills_total (\S+)$", metrics)
            report["fills in /metrics"] = float(m.group(1)) if m else None
            report["checks"]["/metrics counts the fills"] = (
                m is not None and float(m.group(1)) == counts["fills"])
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                fills.to_parquet(out / "fills.parquet", index=False)
                (out / "panels.json").write_text(json.dumps(panels))
                screenshot(f"{base}/?run={RUN_ID}&token={token}", out / "dashboard.png")
        finally:
            stack.stop()
            report["logs"] = {name: stack.output(name)[-2000:] for name in stack.procs}
    report["ok"] = all(report["checks"].values())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, help="reuse this environment (no wheel build)")
    parser.add_argument("--models", type=Path,
                        help="a folder with model.atlb and bars.parquet (no export)")
    parser.add_argument("--out", type=Path, help="keep the report, fills, panels and a "
                        "screenshot of the dashboard here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="atl-deploy-"))
    started = time.monotonic()
    try:
        report = check(tmp, args.venv, args.models, args.out)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report["seconds"] = round(time.monotonic() - started, 1)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_text(json.dumps(report, indent=2))
    for name, ok in report["checks"].items():
        log(f"{'ok  ' if ok else 'FAIL'} {name}")
    if not report["ok"]:
        for name, text in report["logs"].items():
            log(f"{name} output (end):\n{text}")
    log(f"{'all checks passed' if report['ok'] else 'FAILED'} in {report['seconds']} s")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
