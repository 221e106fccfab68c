"""Engine -> WebSocket client through Redis, against the in-process bus (issue 20, part 4).

Run with ``.venv/bin/python benchmarks/bus_redis.py`` (``--repeats 5`` by default; needs
``redis-server``). Two paths are measured in the same run, their rounds interleaved:

``inproc``
    A service process (uvicorn on 127.0.0.1, ``websockets-sansio`` as ``alphatrade-lab
    serve`` runs it) whose publishing thread calls ``EventBus.publish`` (the engine in the
    same process as the service, as before).
``redis``
    This process publishes on its own ``EventBus`` with a
    :class:`~alphatrade_lab.live.redis_bus.RedisPublisher` attached (the engine's side);
    a ``redis-server`` (:class:`~alphatrade_lab.testing.LocalRedis`) holds the stream; the
    service process reads it with a :class:`~alphatrade_lab.service.redis_source.RedisSource`
    (consumer group, XACK after the hub) and fans it out.

One WebSocket client (in this process) subscribes to fills. Each round of each path:

1. **flood**: ``--events`` fills published as fast as the publisher can; throughput =
   events / (last receipt - first publish);
2. **paced**: ``--rate`` fills a second for ``--seconds``; latency = receipt time - the
   event's publish time (both ``time.time()`` on this machine), p50 and p99;
3. the publisher's own time per ``publish`` call (p99): what the engine pays.

Printed per path: min and median over the rounds of each number, and the ratio redis /
inproc of the medians. Both hubs get a 100,000-message client queue, so that the flood
does not disconnect the client on either path.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import socket
import sys
import threading
import time
from typing import Any

import numpy as np

QUEUE = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill(i: int, rnd: int) -> dict[str, Any]:
    return {"client_order_id": f"atl-{rnd}-{i}", "symbol": "AAA", "side": "buy", "qty": 1.0,
            "price": 100.0 + i % 7, "fees": 0.1, "i": i, "round": rnd}


def publish(bus: Any, n: int, rate: float | None, rnd: int) -> np.ndarray:
    """Publish ``n`` fills (at ``rate`` a second, or flat out); each call's seconds."""
    took = np.empty(n)
    start = time.perf_counter()
    for i in range(n):
        if rate:
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        t0 = time.perf_counter()
        bus.publish("fill", fill(i, rnd))
        took[i] = time.perf_counter() - t0
    return took


def run_service(mode: str, port: int, redis_url: str | None, jobs: mp.Queue,
                results: mp.Queue) -> None:
    import uvicorn

    from alphatrade_lab.live import EventBus
    from alphatrade_lab.service import create_app
    from alphatrade_lab.service.ws import WebSocketHub
    from alphatrade_lab.store import LabStore

    if mode == "redis":
        app = create_app(LabStore(":memory:"), redis_url=redis_url)
    else:
        app = create_app(LabStore(":memory:"), EventBus())
    bus = app.state.lab.bus
    app.state.lab.extra["ws"] = WebSocketHub(bus, queue_size=QUEUE)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", ws="websockets-sansio",
                                           ws_per_message_deflate=False))

    def worker() -> None:  # the in-process engine: publishes what it is asked to
        while True:
            job = jobs.get()
            if job is None:
                server.should_exit = True
                return
            n, rate, rnd = job
            results.put(publish(bus, n, rate, rnd))

    threading.Thread(target=worker, daemon=True).start()
    server.run()


class Path:
    """One path: its service process, its client connection and how it publishes."""

    def __init__(self, mode: str, redis_url: str | None):
        from websockets.sync.client import connect

        self.mode = mode
        self.port = free_port()
        ctx = mp.get_context("spawn")
        self.jobs: mp.Queue = ctx.Queue()
        self.results: mp.Queue = ctx.Queue()
        self.proc = ctx.Process(target=run_service, args=(mode, self.port, redis_url,
                                                          self.jobs, self.results),
                                daemon=True)
        self.proc.start()
        self.stack = contextlib.ExitStack()
        deadline = time.monotonic() + 120
        while True:
            try:
                self.ws = self.stack.enter_context(connect(
                    f"ws://127.0.0.1:{self.port}/ws?topics=fill", max_size=None,
                    compression=None))
                break
            except OSError:
                assert self.proc.is_alive() and time.monotonic() < deadline, \
                    f"{mode} service did not start"
                time.sleep(0.1)
        json.loads(self.ws.recv(timeout=30))  # the snapshot
        self.bus: Any = None
        self.publisher: Any = None
        if mode == "redis":
            from alphatrade_lab.live import EventBus
            from alphatrade_lab.live.redis_bus import RedisPublisher

            self.bus = EventBus()
            self.publisher = RedisPublisher(redis_url).attach(self.bus)

    def round(self, n: int, rate: float | None, rnd: int) -> dict[str, Any]:
        took: Any = None
        if self.mode == "redis":
            holder: list[np.ndarray] = []
            thread = threading.Thread(target=lambda: holder.append(
                publish(self.bus, n, rate, rnd)))
            thread.start()
        else:
            self.jobs.put((n, rate, rnd))
        lat = np.empty(n)
        first_pub = last_recv = 0.0
        got = 0
        while got < n:
            doc = json.loads(self.ws.recv(timeout=60))
            now = time.time()
            for msg in doc if isinstance(doc, list) else [doc]:
                if msg.get("type") != "event" or msg["data"].get("round") != rnd:
                    continue
                i = msg["data"]["i"]
                assert i == got, f"{self.mode}: fill {got} expected, got {i}"
                lat[i] = now - msg["time"]
                if i == 0:
                    first_pub = msg["time"]
                got += 1
                last_recv = now
        if self.mode == "redis":
            thread.join()
            took = holder[0]
        else:
            took = self.results.get(timeout=60)
        return {"rate": n / (last_recv - first_pub), "p50": float(np.percentile(lat, 50)),
                "p99": float(np.percentile(lat, 99)),
                "publish_p99": float(np.percentile(took, 99))}

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        self.stack.close()
        self.jobs.put(None)
        self.proc.join(20)
        if self.proc.is_alive():
            self.proc.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--events", type=int, default=20_000, help="fills per flood round")
    parser.add_argument("--rate", type=float, default=2_000.0, help="fills a second, paced")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a paced round")
    args = parser.parse_args(argv)

    from alphatrade_lab.testing.redis import LocalRedis

    with LocalRedis() as redis_server:
        paths = [Path("inproc", None), Path("redis", redis_server.url)]
        rows: dict[str, list[dict[str, Any]]] = {p.mode: [] for p in paths}
        try:
            rnd = 0
            for _ in range(args.repeats):
                for p in paths:  # interleaved: both paths see the same machine
                    rnd += 1
                    flood = p.round(args.events, None, rnd)
                    rnd += 1
                    paced = p.round(int(args.rate * args.seconds), args.rate, rnd)
                    rows[p.mode].append({"events_per_s": flood["rate"],
                                         "p50_ms": paced["p50"] * 1e3,
                                         "p99_ms": paced["p99"] * 1e3,
                                         "flood_p99_ms": flood["p99"] * 1e3,
                                         "publish_p99_us": paced["publish_p99"] * 1e6})
            stats = paths[1].publisher.stats()
        finally:
            for p in paths:
                p.close()
    print(f"{args.repeats} rounds per path; flood {args.events:,} fills, paced "
          f"{args.rate:,.0f}/s for {args.seconds:g} s; python {sys.version.split()[0]}")
    keys = ["events_per_s", "p50_ms", "p99_ms", "flood_p99_ms", "publish_p99_us"]
    print(f"{'path':8}" + "".join(f"{k + ' min/median':>30}" for k in keys))
    med: dict[str, dict[str, float]] = {}
    for mode, items in rows.items():
        med[mode] = {k: float(np.median([r[k] for r in items])) for k in keys}
        cells = [f"{min(r[k] for r in items):,.2f} / {med[mode][k]:,.2f}" for k in keys]
        print(f"{mode:8}" + "".join(f"{c:>30}" for c in cells))
    print("redis / inproc (medians): " + ", ".join(
        f"{k} {med['redis'][k] / med['inproc'][k]:.2f}x" for k in keys))
    print(f"redis publisher: {stats['sent']:,} sent, {stats['dropped']} dropped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
