"""The token never reaches the service's logs: uvicorn's access log prints request paths
with their query string, and browsers send the token as ``?token=``."""

import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import pytest

import alphatrade_lab as atl

TOKEN = "tok-9f8e7d6c5b4a39281706"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_logs_no_token(store_url):
    """On both backends; the PostgreSQL store's password is not logged either."""
    store = str(store_url)
    with atl.store.LabStore(store) as lab:
        lab.record_run("paper", run_id="r1")
    port = free_port()
    env = {**os.environ, "ALPHATRADE_API_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "alphatrade_lab.cli", "serve", "--store",
                             str(store), "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(url + "/api/runs").status_code == 401
        ok = httpx.get(url + f"/api/runs?token={TOKEN}")
        assert ok.status_code == 200 and TOKEN not in ok.text
        assert httpx.get(url + "/api/runs",
                         headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    log = out.decode()
    assert "/api/runs?token=[REDACTED]" in log  # the request was logged, without the token
    assert TOKEN not in log
    password = urlsplit(store).password
    assert password is None or password not in log
