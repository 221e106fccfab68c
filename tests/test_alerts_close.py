"""Nothing is lost on close and nothing stalls the caller: close() drains alerts in flight
within its timeout (what it cancels is failed and recorded), send() has a total deadline,
429s trip the breaker, a locked store is written in the background, dedupe is bounded."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from alphatrade_lab.alerts import (
    Alert,
    AlertManager,
    LogAlerter,
    TelegramAlerter,
    WebhookAlerter,
)
from alphatrade_lab.risk import RiskLimits, RiskManager
from alphatrade_lab.store import LabStore
from alphatrade_lab.testing import LocalReceiver, Reply

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
FAST = {"backoff": 0.05, "max_backoff": 0.2, "rate": None}

HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
""")


@pytest.fixture()
def rx():
    with LocalReceiver() as receiver:
        yield receiver


def hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.slow
def test_close_with_alerts_in_flight_resolves_and_records_every_one(rx):
    rx.default("/hang", Reply(200, {"ok": True}, delay=30.0))   # accepts, never answers
    store = LabStore(":memory:")
    m = AlertManager([WebhookAlerter(rx.url + "/hang", timeout=20, **FAST)], store=store)
    rm = RiskManager(RiskLimits(max_drawdown=0.1, daily_loss=None), manager=m)
    rm.update("2024-01-01 00:00", 100.0)
    rm.update("2024-01-01 01:00", 80.0, closed_trade_pnl=[-1.0] * 7)
    assert len(rm.pending) == 3            # max_drawdown; consecutive_losses x 2 severities
    futures = [m.submit("warning", f"in flight {i}") for i in range(5)]
    rx.wait_for(4, "/hang", timeout=5)     # the sink's 4 concurrent requests; 4 wait their turn
    t0 = time.monotonic()
    m.close(timeout=0.5)
    assert time.monotonic() - t0 < 3.0
    results = [f.result(timeout=0) for f in futures] + rm.wait(timeout=1)
    assert len(results) == 8
    for r in results:
        assert r.delivered == ["log"] and "closed before delivery" in r.failed["webhook"]
    rows = store.alerts()
    assert len(rows) == 8
    assert all(json.loads(f) == ["webhook"] for f in rows["failed_sinks"])


def test_risk_wait_has_a_total_timeout_and_keeps_what_is_in_flight(rx):
    rx.default("/hang", Reply(200, {"ok": True}, delay=30.0))
    m = AlertManager([WebhookAlerter(rx.url + "/hang", timeout=20, **FAST)], log=False)
    rm = RiskManager(RiskLimits(max_drawdown=None, daily_loss=None, consecutive_losses=1),
                     manager=m)
    rm.update("2024-01-01 00:00", 100.0, closed_trade_pnl=[-1.0, -1.0])
    rm.update("2024-01-01 01:00", 100.0, closed_trade_pnl=[1.0, -1.0, -1.0])
    assert len(rm.pending) == 2
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="2 of 2"):
        rm.wait(timeout=0.3)
    assert time.monotonic() - t0 < 1.5 and len(rm.pending) == 2
    m.close(timeout=0.2)
    assert [sorted(r.failed) for r in rm.wait(timeout=1)] == [["webhook"], ["webhook"]]
    assert rm.pending == []


@pytest.mark.slow
def test_429_only_service_trips_the_breaker_and_send_keeps_its_deadline(rx):
    path = f"/bot{TOKEN}/sendMessage"
    rx.default(path, Reply(429, {"ok": False, "error_code": 429,
                                 "description": "Too Many Requests: retry after 0.3",
                                 "parameters": {"retry_after": 0.3}}))
    sink = TelegramAlerter(TOKEN, "42", api_base=rx.url, trip_after=3, cooldown=30,
                           attempts=5, **FAST)
    with AlertManager([sink], log=False) as m:
        long = "\n".join(f"line {i}" for i in range(1500))       # four messages
        t0 = time.monotonic()
        first = m.send("warning", "long", long, deadline=5.0)
        took = time.monotonic() - t0
        assert "telegram" in first.failed and "circuit now open" in first.failed["telegram"]
        assert len(rx.requests(path)) == 3 and took < 2.0      # 3 x 429, 2 waits of 0.3 s
        t0 = time.monotonic()
        second = m.send("warning", "again", deadline=5.0)
        assert time.monotonic() - t0 < 0.5 and "circuit open" in second.failed["telegram"]
        assert len(rx.requests(path)) == 3
    # with the breaker out of the way, the deadline bounds the waits
    rx.clear()
    patient = TelegramAlerter(TOKEN, "43", api_base=rx.url, trip_after=0, attempts=50,
                              **FAST)
    with AlertManager([patient], log=False) as m:
        t0 = time.monotonic()
        res = m.send("warning", "long", long, deadline=1.0)
        took = time.monotonic() - t0
    assert 0.9 <= took < 1.8
    assert "deadline of 1 s exceeded" in res.failed["telegram"]


def test_default_deadline_is_documented_and_applies():
    assert AlertManager(log=False).deadline == 60.0
    with pytest.raises(ValueError, match="deadline"):
        AlertManager(deadline=-1)


@pytest.mark.slow
def test_a_locked_store_does_not_block_send_and_the_row_arrives_later(tmp_path):
    path = tmp_path / "lab.duckdb"
    store = LabStore(path, lock_timeout=10)
    holder = hold_lock(path, 1.5)
    try:
        with AlertManager([LogAlerter()], store=store, close_timeout=10) as m:
            t0 = time.monotonic()
            res = m.send("critical", "while locked", "m")
            assert time.monotonic() - t0 < 0.5
            assert res.delivered == ["log"] and not res.recorded
            holder.wait(timeout=30)
            deadline = time.monotonic() + 10
            while not res.recorded and time.monotonic() < deadline:
                time.sleep(0.02)
            assert res.recorded
        rows = store.alerts()
        assert rows["title"].tolist() == ["while locked"]
    finally:
        holder.kill()


@pytest.mark.slow
def test_rows_that_cannot_be_written_by_close_are_logged(tmp_path, caplog):
    path = tmp_path / "lab.duckdb"
    store = LabStore(path, lock_timeout=0.1)
    holder = hold_lock(path, 3.0)
    try:
        m = AlertManager([LogAlerter()], store=store)
        for i in range(3):
            m.send("warning", f"lost {i}")
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING, "alphatrade_lab.alerts"):
            m.close(timeout=0.3)
            assert time.monotonic() - t0 < 2.0
            time.sleep(0.3)   # the row being written gives up once it sees the close
        text = " ".join(r.getMessage() for r in caplog.records)
        assert "not recorded in the store" in text
        assert all(f"lost {i}" in text for i in range(3))
        assert m.counts["record_errors"] == 3 and m.counts["recorded"] == 0
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_dedupe_table_is_bounded_and_evicted_counts_are_sent(rx):
    with AlertManager([WebhookAlerter(rx.url + "/d", **FAST)], log=False,
                      dedupe_window=300, max_dedupe_keys=3) as m:
        m.send("info", "A")
        assert m.send("info", "A").suppressed
        for i in range(10):
            m.send("info", f"other {i}")
            assert len(m._seen) <= 3
        rx.wait_for(12, "/d", timeout=5)
    titles = [(r.json["title"], r.json["repeat_count"]) for r in rx.requests("/d")]
    assert ("A", 1) in titles and ("A", 1) == titles[0]
    assert [t for t in titles if t[0] == "A"][1:] == [("A", 1)]  # the suppressed copy
    assert len(titles) == 12


def test_expired_dedupe_entries_are_dropped():
    m = AlertManager(log=False, dedupe_window=0.1)
    try:
        for i in range(50):
            m.send("info", f"k{i}")
        time.sleep(0.15)
        m.send("info", "fresh")
        assert list(m._seen) == [Alert("info", "fresh").key()]
    finally:
        m.close()


def test_risk_pending_futures_stay_bounded_without_wait():
    with AlertManager(log=False, dedupe_window=0) as m:
        rm = RiskManager(RiskLimits(max_drawdown=None, daily_loss=None,
                                    consecutive_losses=(1, None)), manager=m)
        rm.max_pending = 5
        for i in range(40):
            concurrent.futures.wait(rm.pending, timeout=5)
            rm.update(f"2024-01-01 00:{i:02d}", 100.0, closed_trade_pnl=[1.0, -1.0, -1.0])
            assert len(rm.pending) <= 5
        assert all(r.ok for r in rm.wait(timeout=5))
