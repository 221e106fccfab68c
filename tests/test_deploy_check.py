"""``make deploy-check`` as part of ``make test``: the wheel in a fresh virtual environment,
the compose file's engine and api run as local processes against real PostgreSQL and
Redis servers, checked over SQL, HTTP, /metrics and the WebSocket (deploy/check.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_deployment_check_passes(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "deploy" / "check.py"), "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] and len(report["checks"]) >= 7
    rows = report["rows in PostgreSQL"]
    assert rows["fills"] > 50 and rows["equity"] > report["bars"] / 5 - 1
    assert report["fills in /metrics"] == rows["fills"]
    assert sum(report["fills over the WebSocket"].values()) >= rows["fills"]
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
