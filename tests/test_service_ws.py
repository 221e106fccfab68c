"""The /ws WebSocket against a real uvicorn on 127.0.0.1 with a real websockets client:
snapshot then deltas, order and completeness, resume, conflation, slow clients, the token,
malformed messages."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from alphatrade_lab.live import EventBus
from alphatrade_lab.service import create_app
from alphatrade_lab.service.ws import WebSocketHub, hub_for
from alphatrade_lab.store import LabStore

WS_IMPL = "websockets"  # what `alphatrade-lab serve` runs; tests taking `impl` run both
IMPLS = ["websockets", "websockets-sansio"]


@contextlib.contextmanager
def serve(app, impl: str | None = None) -> Iterator[str]:
    """``app`` under uvicorn on a free port of 127.0.0.1; yields ``ws://host:port``."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           ws=impl or WS_IMPL))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture()
def bus() -> EventBus:
    return EventBus()


@pytest.fixture(params=IMPLS)
def impl(request) -> str:
    """uvicorn's WebSocket implementation: the legacy one `serve` uses and the default."""
    return request.param


@pytest.fixture()
def url(bus, impl) -> Iterator[str]:
    with serve(create_app(LabStore(":memory:"), bus), impl) as base:
        yield base + "/ws"


_PENDING: dict[int, list] = {}  # messages of a batch not yet taken, per connection


def messages(ws, timeout: float = 5.0) -> Iterator[dict]:
    """The server's messages one by one (arrays of batched messages flattened)."""
    pending = _PENDING.setdefault(id(ws), [])
    while True:
        while pending:
            yield pending.pop(0)
        doc = json.loads(ws.recv(timeout=timeout))
        pending.extend(doc if isinstance(doc, list) else [doc])


def take(ws, n: int, timeout: float = 5.0) -> list[dict]:
    out: list[dict] = []
    if n:
        for msg in messages(ws, timeout):
            out.append(msg)
            if len(out) == n:
                break
    return out


def wait_for(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def publish_mixed(bus: EventBus, n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    topics = ["bar", "fill", "order", "position", "alert", "risk"]
    out = []
    for i in range(n):
        topic = topics[rng.integers(len(topics))]
        out.append(bus.publish(topic, {"i": i, "symbol": f"S{i % 3}", "qty": float(i)}))
    return out


def test_snapshot_then_every_delta_in_order(bus, url):
    bus.publish("position", {"symbol": "AAA", "qty": 2.0,
                             "timestamp": pd.Timestamp("2024-01-02 09:30", tz="UTC")})
    bus.publish("equity", {"timestamp": pd.Timestamp("2024-01-02 09:30", tz="UTC"),
                           "equity": np.float64(101.25)})
    bus.publish("fill", {"symbol": "AAA", "qty": 2.0, "price": 50.5})
    with connect(url + "?topics=fills,order") as ws:
        snap = take(ws, 1)[0]
        assert snap["type"] == "snapshot" and snap["seq"] == 3 and snap["live"] is True
        assert snap["topics"] == ["fill", "order"]
        assert snap["positions"] == {"AAA": {"symbol": "AAA", "qty": 2.0,
                                             "timestamp": "2024-01-02T09:30:00+00:00"}}
        assert snap["equity"]["equity"] == 101.25
        assert [f["price"] for f in snap["fills"]] == [50.5]
        events = publish_mixed(bus, 600)
        want = [e.seq for e in events if e.topic in ("fill", "order")]
        got = take(ws, len(want))
    assert [m["type"] for m in got] == ["event"] * len(want)
    assert [m["seq"] for m in got] == want  # every one, strictly increasing
    by_seq = {e.seq: e for e in events}
    assert all(m["topic"] == by_seq[m["seq"]].topic and m["data"]["i"] ==
               by_seq[m["seq"]].data["i"] for m in got)
    assert all(abs(m["time"] - by_seq[m["seq"]].time) < 1e-6 for m in got)


def test_publishers_on_several_threads_still_give_one_order(bus, url):
    with connect(url + "?topics=fill") as ws:
        take(ws, 1)
        seqs: list[int] = []
        lock = threading.Lock()

        def publish(k):
            for i in range(300):
                e = bus.publish("fill", {"k": k, "i": i})
                with lock:
                    seqs.append(e.seq)

        threads = [threading.Thread(target=publish, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = [m["seq"] for m in take(ws, len(seqs))]
    assert got == sorted(seqs)


@pytest.mark.slow
def test_a_seq_late_from_its_publisher_is_taken_from_the_history():
    bus = EventBus()
    bus.on_event(lambda e: time.sleep(0.5) if e.data.get("slow") else None)  # before the hub
    with serve(create_app(LabStore(":memory:"), bus)) as base, connect(base + "/ws") as ws:
        take(ws, 1)
        slow = threading.Thread(target=bus.publish, args=("fill", {"slow": True}))
        slow.start()
        wait_for(lambda: bus.seq == 1)
        t0 = time.monotonic()
        bus.publish("fill", {"slow": False})  # seq 2 reaches the hub first
        got = take(ws, 2)
        waited = time.monotonic() - t0
        slow.join()
        bus.publish("fill", {"slow": False})
        got += take(ws, 1)
    assert [m["seq"] for m in got] == [1, 2, 3] and got[0]["data"] == {"slow": True}
    assert waited < 0.4  # from the history after ~50 ms, not when its callback came


def test_a_burst_beyond_the_queue_reaches_a_client_that_keeps_up(bus, url):
    with connect(url + "?topics=fill") as ws:
        take(ws, 1)
        seqs = [bus.publish("fill", {"i": i}).seq for i in range(3500)]  # queue: 1,000
        assert [m["seq"] for m in take(ws, len(seqs))] == seqs


def test_subscribe_message_replaces_topics(bus, url):
    with connect(url) as ws:
        assert take(ws, 1)[0]["topics"] == sorted(
            ["bar", "signal", "order", "fill", "equity", "position", "alert", "drift", "feed",
             "risk", "status"])
        ws.send(json.dumps({"subscribe": ["statuses", "Fill"]}))
        assert take(ws, 1)[0] == {"type": "subscribed", "topics": ["fill", "status"]}
        bus.publish("bar", {"x": 1})
        fill = bus.publish("fill", {"x": 2})
        bus.publish("equity", {"x": 3})
        status = bus.publish("status", {"x": 4})
        got = take(ws, 2)
    assert [(m["seq"], m["topic"]) for m in got] == [(fill.seq, "fill"),
                                                     (status.seq, "status")]


def test_boundary_converts_timestamps_and_numpy(bus, url):
    with connect(url + "?topics=fill") as ws:
        take(ws, 1)
        bus.publish("fill", {"timestamp": pd.Timestamp("2024-03-01 12:00", tz="UTC"),
                             "qty": np.float32(1.5), "n": np.int64(7), "fees": np.nan,
                             "ok": np.bool_(True), "arr": np.array([1.0, np.inf]),
                             "wait": pd.Timedelta("90s"), "nat": pd.NaT})
        data = take(ws, 1)[0]["data"]
    assert data == {"timestamp": "2024-03-01T12:00:00+00:00", "qty": 1.5, "n": 7,
                    "fees": None, "ok": True, "arr": [1.0, None], "wait": 90.0, "nat": None}


def test_resume_sends_exactly_the_missed_events(bus, url):
    first = publish_mixed(bus, 50, seed=1)
    since = first[19].seq
    with connect(url + f"?since={since}&topics=fill,bar") as ws:
        head = take(ws, 1)[0]
        want = [e.seq for e in first if e.seq > since and e.topic in ("fill", "bar")]
        assert head == {"type": "resume", "since": since, "seq": first[-1].seq,
                        "count": len(want)}
        assert [m["seq"] for m in take(ws, len(want))] == want
        later = publish_mixed(bus, 30, seed=2)  # then live deltas, nothing twice
        live = [e.seq for e in later if e.topic in ("fill", "bar")]
        assert [m["seq"] for m in take(ws, len(live))] == live
        # resume again mid-stream from a seq seen before: the stream restarts there
        again = first[40].seq
        ws.send(json.dumps({"resume": again}))
        head = take(ws, 1)[0]
        want = [e.seq for e in first + later if e.seq > again and e.topic in ("fill", "bar")]
        assert head["type"] == "resume" and head["count"] == len(want)
        assert [m["seq"] for m in take(ws, len(want))] == want
        ws.send(json.dumps({"snapshot": True}))
        assert take(ws, 1)[0]["seq"] == later[-1].seq


def test_resume_older_than_the_kept_history_gets_a_snapshot():
    bus = EventBus(history=10)
    publish_mixed(bus, 30)
    with serve(create_app(LabStore(":memory:"), bus)) as base, \
            connect(base + "/ws?since=5") as ws:
        snap = take(ws, 1)[0]
        assert snap["type"] == "snapshot" and snap["seq"] == 30
        assert "no longer keeps the events after seq 5" in snap["reason"]
        event = bus.publish("fill", {"x": 1})
        assert take(ws, 1)[0]["seq"] == event.seq


def test_equity_conflated_for_a_client_that_lags(bus):
    app = create_app(LabStore(":memory:"), bus)
    with serve(app) as base:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((base.split("//")[1].split(":")[0], int(base.rsplit(":", 1)[1])))
        with connect(base + "/ws?topics=equity", sock=sock, max_queue=1, compression=None) as ws:
            assert take(ws, 1)[0]["type"] == "snapshot"
            pad = "x" * 20_000  # fills the socket buffers: the server's queue backs up
            sent = [bus.publish("equity", {"equity": float(i), "pad": pad})
                    for i in range(1500)]
            wait_for(lambda: hub_for(app).stats()["queued"] == 0, 20)
            got = []
            for msg in messages(ws, 5):
                got.append(msg)
                if msg["seq"] == sent[-1].seq:
                    break
    assert hub_for(app).stats()["conflated"] > 0 and len(got) < len(sent)
    assert got[-1]["data"]["equity"] == 1499.0  # the latest always arrives
    prev = sent[0].seq - 1
    for msg in got:  # every gap is the number of ticks conflated into the event after it
        assert msg["seq"] - prev - 1 == msg.get("conflated", 0)
        assert msg["data"]["equity"] == float(msg["seq"] - sent[0].seq)
        prev = msg["seq"]


@pytest.mark.slow
def test_slow_client_disconnected_while_a_fast_one_gets_everything(bus, impl):
    app = create_app(LabStore(":memory:"), bus)
    app.state.lab.extra["ws"] = WebSocketHub(bus, queue_size=200)
    n = 2000
    with serve(app, impl) as base:
        host, port = base.split("//")[1].split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        slow = connect(base + "/ws?topics=fill", sock=sock, max_queue=1, compression=None)
        fast = connect(base + "/ws?topics=fill")
        assert take(slow, 1)[0]["type"] == take(fast, 1)[0]["type"] == "snapshot"
        received: list[int] = []

        def read_fast():
            for msg in messages(fast, 10):
                received.append(msg["seq"])
                if len(received) == n:
                    return

        reader = threading.Thread(target=read_fast)
        reader.start()
        pad = "y" * 10_000
        took, seqs = [], []
        for i in range(n):
            t0 = time.perf_counter()
            seqs.append(bus.publish("fill", {"i": i, "pad": pad}).seq)
            took.append(time.perf_counter() - t0)
            if i % 20 == 0:
                time.sleep(0.005)  # ~0.5 s in all, bursts of 20: the fast client keeps up
        reader.join(20)
        wait_for(lambda: hub_for(app).stats()["disconnected_slow"] == 1, 10)
        with pytest.raises(ConnectionClosed) as closed:
            for _ in messages(slow, 10):
                pass
        fast.close()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert "too slow" in closed.value.rcvd.reason and "since=" in closed.value.rcvd.reason
    assert received == seqs
    assert max(took) < 0.02 and float(np.percentile(took, 99)) < 0.001


@pytest.mark.slow
def test_a_client_over_the_bound_for_longer_than_the_grace_is_disconnected(bus):
    app = create_app(LabStore(":memory:"), bus)
    hub = app.state.lab.extra["ws"] = WebSocketHub(bus, queue_size=100, grace=0.2)
    with serve(app) as base:
        host, port = base.split("//")[1].split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        slow = connect(base + "/ws", sock=sock, max_queue=1, compression=None)
        take(slow, 1)
        pad = "z" * 30_000
        for i in range(350):  # under the hard limit of 4 x 100: only the grace can trip
            bus.publish("fill", {"i": i, "pad": pad})
            time.sleep(0.002)
        wait_for(lambda: hub.stats()["disconnected_slow"] == 1, 5)
        with pytest.raises(ConnectionClosed) as closed:
            for _ in messages(slow, 10):
                pass
    assert closed.value.rcvd.code == 1013


def test_token_required_when_set(bus):
    with serve(create_app(LabStore(":memory:"), bus, token="s3cret-token")) as base:
        for bad in ("/ws", "/ws?token=wrong"):
            with connect(base + bad) as ws, pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd.code == 1008
            assert "s3cret" not in closed.value.rcvd.reason
        with connect(base + "/ws?token=s3cret-token") as ws:
            assert take(ws, 1)[0]["type"] == "snapshot"
        with connect(base + "/ws", additional_headers={
                "Authorization": "Bearer s3cret-token"}) as ws:
            assert take(ws, 1)[0]["type"] == "snapshot"


def test_malformed_messages_get_errors_and_the_stream_goes_on(bus, url):
    cases = {
        "not json": "not JSON",
        "[1, 2]": "expected a JSON object",
        '{"subscribe": ["fills", "nope"]}': "unknown topic(s) 'nope'",
        '{"subscribe": "fill"}': None,  # one name as text is accepted
        '{"subscribe": 3}': "topics must be a list",
        '{"resume": -1}': "outside 0..",
        '{"resume": 10000}': "outside 0..",
        '{"resume": "x"}': "whole number",
        '{"resume": true}': "whole number",
        '{"bogus": 1}': "unknown key(s) ['bogus']",
        "x" * 70_000: "at most",
    }
    with connect(url) as ws:
        take(ws, 1)
        for text, detail in cases.items():
            ws.send(text)
            msg = take(ws, 1)[0]
            if detail is None:
                assert msg == {"type": "subscribed", "topics": ["fill"]}
            else:
                assert msg["type"] == "error" and detail in msg["detail"], (text[:40], msg)
        event = bus.publish("fill", {"x": 1})
        assert take(ws, 1)[0]["seq"] == event.seq
        ws.send(b"\x00binary")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1003
    with connect(url + "?topics=fill,nope") as ws:
        assert "unknown topic(s) 'nope'" in take(ws, 1)[0]["detail"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 4400
    with connect(url + "?since=abc") as ws:
        assert "whole number" in take(ws, 1)[0]["detail"]


def test_without_a_bus_the_snapshot_says_not_live():
    with serve(create_app(LabStore(":memory:"))) as base, connect(base + "/ws") as ws:
        snap = take(ws, 1)[0]
    assert snap["live"] is False and snap["seq"] == 0 and snap["positions"] == {}


def test_metrics_follow_the_clients(bus):
    app = create_app(LabStore(":memory:"), bus)
    m = app.state.lab.extra["metrics"]  # the service's metrics (service/metrics.py)
    with serve(app) as base:
        with connect(base + "/ws") as a, connect(base + "/ws?topics=fill") as b:
            take(a, 1), take(b, 1)
            assert m.value("alphatrade_websocket_clients") == 2
            bus.publish("fill", {"x": 1})
            bus.publish("bar", {"x": 2})
            take(a, 2), take(b, 1)
            wait_for(lambda: m.value("alphatrade_websocket_messages_total") == 5)
            assert m.value("alphatrade_event_lag_seconds_count") >= 2
        wait_for(lambda: m.value("alphatrade_websocket_clients") == 0)
