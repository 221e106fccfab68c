"""The Redis event bus against a real ``redis-server`` started by the tests (LocalRedis):
engine -> Redis stream -> consumer group -> the service's bus -> a real WebSocket client;
a service process killed with SIGKILL mid-stream and started again; Redis away at the
engine's start and mid-run; passwords kept out of reprs, logs and output."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.sync.client import connect

import alphatrade_lab as atl
from alphatrade_lab.live import Engine, EventBus, PaperBroker, ReplayFeed, SignalStrategy
from alphatrade_lab.live.redis_bus import (
    DEFAULT_STREAM,
    RedisPublisher,
    decode_entry,
    encode_event,
    redis_client,
)
from alphatrade_lab.service import create_app
from alphatrade_lab.service.redis_source import DEFAULT_GROUP, RedisSource
from alphatrade_lab.store import LabStore
from alphatrade_lab.testing.redis import LocalRedis, find_redis_server

IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "rds-Pa55w0rd-9f3k"


def _need_redis() -> None:
    try:
        find_redis_server()
    except FileNotFoundError as exc:
        if IN_CI:
            pytest.fail(f"CI=true and the Redis tests cannot run: {exc}")
        pytest.skip(str(exc))


@pytest.fixture()
def redis_server() -> Iterator[LocalRedis]:
    """A real redis-server on 127.0.0.1 with a password (a missing binary fails under CI)."""
    _need_redis()
    with LocalRedis(password=PASSWORD) as srv:
        yield srv


def test_a_missing_binary_fails_under_ci(monkeypatch):
    me = sys.modules[__name__]
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("alphatrade_lab.testing.redis._FALLBACK", "/nonexistent/redis-server")
    monkeypatch.setattr(me, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true .* redis-server was not found"):
        _need_redis()


def _bars(n: int = 200):
    return atl.data.load_sample(["AAA", "BBB"]).groupby("symbol").head(n).reset_index(
        drop=True)


def _strategy() -> SignalStrategy:
    def fn(b):
        close = atl.data.to_wide(b, "close")
        return close > close.shift(1), close < close.shift(1)

    return SignalStrategy(fn, 2)


def _engine(n: int = 200, bus: EventBus | None = None) -> Engine:
    return Engine(ReplayFeed(_bars(n)), _strategy(), PaperBroker(fees=0.001), bus=bus,
                  run_id="redis-run")


@contextlib.contextmanager
def serve(app) -> Iterator[str]:
    """``app`` under uvicorn on a free port of 127.0.0.1 (lifespan on); ``ws://...``."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           ws="websockets-sansio", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def read_events(ws, until_seq: int, timeout: float = 20.0, first: dict | None = None
                ) -> tuple[dict, list[dict]]:
    """The first message (snapshot/resume) and the events after it up to ``until_seq``."""
    head: dict | None = first
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while not events or events[-1]["seq"] < until_seq:
        assert time.monotonic() < deadline, f"seq {until_seq} not reached: " \
            f"last {events[-1]['seq'] if events else None}"
        doc = json.loads(ws.recv(timeout=timeout))
        for msg in doc if isinstance(doc, list) else [doc]:
            if head is None:
                head = msg
            elif msg["type"] == "event":
                events.append(msg)
    assert head is not None
    return head, events


def wait_for(cond, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} not met in {timeout} s"
        time.sleep(0.01)


def test_entries_round_trip_what_the_engine_publishes():
    import numpy as np
    import pandas as pd

    ev = EventBus().publish("fill", {"timestamp": pd.Timestamp("2024-01-02 09:30", tz="UTC"),
                                     "qty": np.float64(2.5), "n": np.int64(3), "nat": pd.NaT,
                                     "arr": np.arange(2), "d": pd.Timedelta("1min")})
    back = decode_entry(encode_event(ev, seq=41))
    assert back.seq == 41 and back.topic == "fill" and back.time == ev.time
    assert back.data == {"timestamp": "2024-01-02T09:30:00+00:00", "qty": 2.5, "n": 3,
                         "nat": None, "arr": [0, 1], "d": 60.0}
    for bad, match in (({"seq": "1"}, "without the field 'event'"),
                       ({"event": "{not json"}, "malformed stream entry \\(JSONDecodeError"),
                       ({"event": '{"seq": 1, "topic": "x", "time": 1}'}, "KeyError: 'data'"),
                       ({"event": '{"seq": 0, "topic": "x", "time": 1, "data": {}}'},
                        "malformed stream entry \\(seq 0"),
                       ({"event": '{"seq": 1, "topic": "x", "time": 1, "data": [1]}'},
                        "data of type list")):
        with pytest.raises(ValueError, match=match):
            decode_entry(bad)


def test_engine_to_websocket_through_redis_every_event_in_order(redis_server):
    app = create_app(LabStore(":memory:"), redis_url=redis_server.url)
    source = app.state.lab.extra["redis"]
    with serve(app) as base, connect(base + "/ws") as ws:
        snap = json.loads(ws.recv(timeout=10))
        assert snap["type"] == "snapshot" and snap["seq"] == 0 and snap["live"] is True
        engine = _engine()
        publisher = RedisPublisher(redis_server.url).attach(engine.bus)
        result = engine.run()
        publisher.close()
        published = engine.bus.since(0)
        assert result.bars == 2 * 200 and len(published) == engine.bus.seq > 500
        assert publisher.stats()["sent"] == len(published) and publisher.dropped == 0
        _, got = read_events(ws, engine.bus.seq, first=snap)
    # every event, in order, with the engine's seq, topic, time and data; equity ticks a
    # busy client did not read in time are conflated by the hub (they say how many)
    plain = [e for e in published if e.topic != "equity"]
    assert [(m["seq"], m["topic"], m["time"]) for m in got if m["topic"] != "equity"] == \
        [(e.seq, e.topic, e.time) for e in plain]
    equity = {e.seq: e for e in published if e.topic == "equity"}
    ticks = [m for m in got if m["topic"] == "equity"]
    assert sum(1 + m.get("conflated", 0) for m in ticks) == len(equity)
    assert all(m["data"]["equity"] == equity[m["seq"]].data["equity"] for m in ticks)
    assert ticks[-1]["seq"] == max(equity)
    fills = [(m["data"]["symbol"], m["data"]["qty"], m["data"]["price"]) for m in got
             if m["topic"] == "fill"]
    assert fills == [(e.data["symbol"], e.data["qty"], e.data["price"]) for e in published
                     if e.topic == "fill"] and len(fills) > 10
    wait_for(lambda: source.counts["acked"] == len(published), what="every entry acked")
    client = redis_client(redis_server.url)
    assert client.xpending(DEFAULT_STREAM, DEFAULT_GROUP)["pending"] == 0
    assert source.counts["received"] == len(published) and source.counts["duplicates"] == 0


def test_pending_entries_of_a_stopped_reader_are_delivered_first(redis_server):
    """Entries given to the consumer and never acked (a reader that died between the
    read and the ack) are delivered by the next reader, once, then acked."""
    bus = EventBus()
    publisher = RedisPublisher(redis_server.url).attach(bus)
    for i in range(10):
        bus.publish("order", {"i": i})
    publisher.close()
    client = redis_client(redis_server.url)
    client.xgroup_create(DEFAULT_STREAM, DEFAULT_GROUP, id="0")
    client.xreadgroup(DEFAULT_GROUP, "service", {DEFAULT_STREAM: ">"}, count=4)  # no ack
    assert client.xpending(DEFAULT_STREAM, DEFAULT_GROUP)["pending"] == 4
    source = RedisSource(redis_server.url).start()
    try:
        assert source.wait_until(lambda: source.counts["acked"] >= 10)
        assert [(e.seq, e.data["i"]) for e in source.bus.since(0)] == \
            [(i + 1, i) for i in range(10)]
        assert client.xpending(DEFAULT_STREAM, DEFAULT_GROUP)["pending"] == 0
        assert source.counts["history"] == 4 and source.counts["received"] == 6
    finally:
        source.stop()


def test_a_second_engine_run_continues_the_streams_seq(redis_server):
    for _ in range(2):
        bus = EventBus()
        publisher = RedisPublisher(redis_server.url).attach(bus)
        for i in range(5):
            bus.publish("bar", {"i": i})
        publisher.close()
    entries = redis_client(redis_server.url).xrange(DEFAULT_STREAM)
    assert [decode_entry(f).seq for _, f in entries] == list(range(1, 11))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_process(store: Path, redis_url: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``alphatrade-lab serve`` in a subprocess, reading events from ``ATL_REDIS_URL``."""
    port = _free_port()
    env = {**os.environ, "ATL_REDIS_URL": redis_url, "ATL_STORE": str(store),
           "PYTHONUNBUFFERED": "1"}
    script = Path(sys.executable).with_name("alphatrade-lab")
    proc = subprocess.Popen([str(script), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"serve exited: {proc.stdout.read() if proc.stdout else ''}"
            assert time.monotonic() < deadline, "serve did not answer /api/health"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/api/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield proc, f"ws://127.0.0.1:{port}/ws"
    finally:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_killed_service_resumes_from_the_last_acknowledged_event(redis_server, tmp_path):
    """SIGKILL the service process mid-stream, start it again: the client that reconnects
    with its last seq gets every later event once, in order; nothing stays pending."""
    store = tmp_path / "lab.duckdb"
    LabStore(store).close()
    n, kill_after = 6000, 1000
    bus = EventBus()
    publisher = RedisPublisher(redis_server.url).attach(bus)
    stop = threading.Event()

    def engine() -> None:  # paced: at most 2,000 events a second (3 s at least)
        for i in range(n):
            if stop.is_set():
                return
            bus.publish(("bar", "order", "fill", "position")[i % 4], {"i": i, "symbol": "AAA"})
            if i % 20 == 19:
                time.sleep(0.01)

    writer = threading.Thread(target=engine, daemon=True)
    outputs = []
    try:
        with serve_process(store, redis_server.url) as (proc, url):
            with connect(url) as ws:
                writer.start()
                head, first = read_events(ws, kill_after)
                assert head["type"] == "snapshot" and head["seq"] == 0
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                outputs.append(proc.stdout.read() if proc.stdout else "")
        last = first[-1]["seq"]
        assert bus.seq < n, "the engine finished before the kill: make it slower"
        pending_at_kill = redis_client(redis_server.url).xpending(
            DEFAULT_STREAM, DEFAULT_GROUP)["pending"]
        with serve_process(store, redis_server.url) as (proc, url):
            with connect(url + f"?since={last}") as ws:
                head, rest = read_events(ws, n)
            writer.join(30)
            proc.terminate()
            outputs.append(proc.communicate(timeout=30)[0])
    finally:
        stop.set()
        publisher.close()
    assert head["type"] == "resume" and head["since"] == last
    seqs = [m["seq"] for m in first] + [m["seq"] for m in rest]
    assert seqs == list(range(1, n + 1)), "an event was lost or repeated across the restart"
    assert [m["data"]["i"] for m in first + rest] == list(range(n))
    client = redis_client(redis_server.url)
    assert client.xpending(DEFAULT_STREAM, DEFAULT_GROUP)["pending"] == 0
    (group,) = client.xinfo_groups(DEFAULT_STREAM)
    assert group["lag"] == 0 and pending_at_kill >= 0
    for out in outputs:
        assert PASSWORD not in out
    assert "events from redis redis://[REDACTED]@127.0.0.1" in outputs[0]


def test_redis_down_at_start_then_back_mid_run(redis_server, caplog):
    redis_server.stop()
    bus = EventBus()
    hits = []

    def bring_back(event) -> None:  # Redis comes back while the engine runs
        if event.seq == 300 and not hits:
            hits.append(event.seq)
            redis_server.start()

    bus.on_event(bring_back)
    engine = _engine(400, bus)
    with caplog.at_level(logging.WARNING, "alphatrade_lab.live.redis"):
        publisher = RedisPublisher(redis_server.url, buffer=100).attach(bus)
        result = engine.run()
        wait_for(lambda: publisher.connected, 15, "the publisher reconnected")
        publisher.close()
    assert result.bars == 2 * 400 and hits == [300]
    stats = publisher.stats()
    assert stats["dropped"] > 0 and stats["sent"] + stats["dropped"] == bus.seq
    entries = redis_client(redis_server.url).xrange(DEFAULT_STREAM)
    assert len(entries) == stats["sent"] and decode_entry(entries[-1][1]).seq == bus.seq
    assert "unreachable" in caplog.text and "connected after" in caplog.text
    assert PASSWORD not in caplog.text + repr(publisher) + publisher.summary()
    assert "redis://[REDACTED]@127.0.0.1" in repr(publisher)


def test_redis_down_mid_run_the_engine_completes(redis_server, caplog):
    bus = EventBus()
    engine = _engine(300, bus)
    with caplog.at_level(logging.WARNING, "alphatrade_lab.live.redis"):
        publisher = RedisPublisher(redis_server.url).attach(bus)

        def kill_redis(event) -> None:  # after the first 200 events reached the stream
            if event.seq == 200:
                wait_for(lambda: publisher.sent >= 200, 20, "the first events written")
                redis_server.stop(kill=True)

        bus.on_event(kill_redis)
        t0 = time.monotonic()
        result = engine.run()
        run_seconds = time.monotonic() - t0
        publisher.close(timeout=1.0)
    assert result.bars == 2 * 300 and not redis_server.running
    stats = publisher.stats()
    assert stats["dropped"] > 0 and stats["sent"] + stats["dropped"] == bus.seq
    assert stats["sent"] >= 200 and stats["outages"] >= 1
    assert run_seconds < 30
    assert "unreachable" in caplog.text and "not written at close" in caplog.text
    assert PASSWORD not in caplog.text


def test_the_service_starts_with_redis_away_and_catches_up(redis_server):
    redis_server.stop()
    app = create_app(LabStore(":memory:"), redis_url=redis_server.url, ready_timeout=0.5)
    source = app.state.lab.extra["redis"]
    with serve(app) as base:
        assert httpx.get(base.replace("ws://", "http://") + "/api/health").status_code == 200
        redis_server.start()
        bus = EventBus()
        publisher = RedisPublisher(redis_server.url).attach(bus)
        for i in range(50):
            bus.publish("fill", {"i": i, "symbol": "AAA", "qty": 1.0, "price": 1.0})
        publisher.close()
        wait_for(lambda: source.bus.seq == 50, 20, "the service caught up")
        with connect(base + "/ws?since=40") as ws:
            head, events = read_events(ws, 50)
    assert head["type"] == "resume" and [m["seq"] for m in events] == list(range(41, 51))
    assert source.counts["outages"] >= 1 and PASSWORD not in repr(source)


def test_publisher_and_source_refuse_bad_settings():
    with pytest.raises(ValueError, match="redis://, rediss:// or unix://, not 'http://"):
        RedisPublisher("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="buffer must be a positive whole number"):
        RedisPublisher("redis://127.0.0.1:1", buffer=0)
    with pytest.raises(ValueError, match="not above the bus's last seq 3"):
        bus = EventBus()
        for _ in range(3):
            bus.publish("bar", {})
        bus.publish_event(bus.since(0)[0])
    src = RedisSource(f"redis://:{PASSWORD}@127.0.0.1:1/0")
    assert PASSWORD not in repr(src) and "[REDACTED]" in repr(src)


def test_the_paper_command_publishes_to_atl_redis_url(redis_server, tmp_path, monkeypatch,
                                                      capsys):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from alphatrade_lab.cli import main

    bars = atl.data.resample(atl.data.load_sample(["AAA"]), "1h").head(2000)
    X, y = atl.models.align(atl.features.technical(bars), atl.models.labels(bars))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    atl.models.save_bundle(atl.models.train(X, y, model, n_splits=2, progress=False),
                           tmp_path / "m.atlb")
    bars.head(50).to_parquet(tmp_path / "bars.parquet")
    monkeypatch.setenv("ATL_REDIS_URL", redis_server.url)
    monkeypatch.setenv("ATL_STORE", str(tmp_path / "lab.duckdb"))
    assert main(["paper", "--bundle", str(tmp_path / "m.atlb"), "--bars",
                 str(tmp_path / "bars.parquet"), "--run-id", "p1"]) == 0
    out = capsys.readouterr().out
    entries = redis_client(redis_server.url).xrange(DEFAULT_STREAM)
    events = [decode_entry(f) for _, f in entries]
    assert [e.seq for e in events] == list(range(1, len(events) + 1)) and len(events) > 100
    assert sum(e.topic == "bar" for e in events) == 50
    assert f"{len(events)} events sent, 0 dropped" in out and PASSWORD not in out
    assert len(LabStore(tmp_path / "lab.duckdb", read_only=True).equity("p1")) == 50


def test_a_stream_that_started_over_is_renumbered_after_the_services_last_seq(redis_server):
    """Redis restarted empty, then a new engine: its seqs start at 1 again; the service
    renumbers them after its last seq instead of taking them for duplicates."""
    app = create_app(LabStore(":memory:"), redis_url=redis_server.url)
    source = app.state.lab.extra["redis"]

    def run_engine(n: int) -> None:
        bus = EventBus()
        publisher = RedisPublisher(redis_server.url).attach(bus)
        for i in range(n):
            bus.publish("fill", {"i": i, "symbol": "AAA", "qty": 1.0, "price": 1.0})
        publisher.close()

    with serve(app) as base, connect(base + "/ws") as ws:
        run_engine(20)
        head, before = read_events(ws, 20)
        redis_server.stop()
        redis_server.start()          # empty: no stream, no group
        run_engine(10)
        _, after = read_events(ws, 30, first=head)
    assert [m["seq"] for m in before + after] == list(range(1, 31))
    assert [m["data"]["i"] for m in after] == list(range(10))
    assert source.counts["renumbered"] == 10 and source.counts["duplicates"] == 0
