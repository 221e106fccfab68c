"""The /ws WebSocket under load: many clients, a steady stream of events (issue 19).

Run with ``.venv/bin/python benchmarks/service_ws.py`` (``--seconds 60`` for the full run;
the default is 10 s). A server process runs the service (uvicorn on 127.0.0.1, the
``websockets`` implementation as ``alphatrade-lab serve`` uses) and, once every client is
connected, publishes ``--rate`` "fill" events a second on the event bus from a thread, as
the engine does. ``--clients`` WebSocket clients (asyncio, spread over ``--procs``
processes) subscribe to fills and record, for every event, the time from publish (the
event's ``time``) to receipt.

Printed:
1. latency publish -> client receipt, p50 / p99 / max over every event of every client
   (goal: p99 < 50 ms);
2. events lost: per client, the fills published that it did not receive, and any seq out
   of order (goal: 0; a client disconnected as too slow reconnects with ``?since=`` its
   last seq, as the dashboard does, and the reconnects are counted);
3. the server process's CPU (psutil: user + system seconds over the publishing window, as a
   share of one core) and the publisher's own time per ``publish`` call (p99 / max: the
   engine is never held up by the clients).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import sys
import threading
import time

import numpy as np
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_server(port: int, n_clients: int, rate: float, seconds: float, flush: float,
               out: mp.Queue) -> None:
    import uvicorn

    from alphatrade_lab.live import EventBus
    from alphatrade_lab.service import create_app
    from alphatrade_lab.service.ws import WebSocketHub, hub_for
    from alphatrade_lab.store import LabStore

    bus = EventBus()
    app = create_app(LabStore(":memory:"), bus)
    app.state.lab.extra["ws"] = WebSocketHub(bus, flush_interval=flush)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", ws="websockets"))

    def publish() -> None:
        while not server.started or hub_for(app).stats()["clients"] < n_clients:
            time.sleep(0.01)
        proc = psutil.Process()
        cpu0, wall0 = sum(proc.cpu_times()[:2]), time.perf_counter()
        n = int(rate * seconds)
        took = np.empty(n)
        start = time.perf_counter()
        for i in range(n):
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            t0 = time.perf_counter()
            bus.publish("fill", {"client_order_id": f"atl-{i}", "symbol": "AAA",
                                 "side": "buy", "qty": 1.0, "price": 100.0 + i % 7,
                                 "fees": 0.1, "i": i})
            took[i] = time.perf_counter() - t0
        time.sleep(0.5)  # let the last events out before reading the CPU
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        wall = time.perf_counter() - wall0
        bus.publish("status", {"status": "done", "published": n})
        out.put({"events": n, "cpu_s": cpu, "wall_s": wall,
                 "publish_p99_us": float(np.percentile(took, 99) * 1e6),
                 "publish_max_us": float(took.max() * 1e6), "hub": hub_for(app).stats()})
        time.sleep(1.0)
        server.should_exit = True

    threading.Thread(target=publish, daemon=True).start()
    server.run()


async def clients(url: str, n: int, deflate: bool, out: mp.Queue) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async def one() -> dict:
        lat: list[float] = []
        sent: list[float] = []
        seqs: list[int] = []
        reconnects = 0
        target = url
        while True:
            try:
                async with connect(target, max_size=None,
                                   compression="deflate" if deflate else None) as ws:
                    first = json.loads(await ws.recv())
                    first = first[0] if isinstance(first, list) else first
                    assert first["type"] in ("snapshot", "resume"), first
                    async for raw in ws:
                        now = time.time()
                        doc = json.loads(raw)
                        for msg in doc if isinstance(doc, list) else [doc]:
                            if msg.get("topic") == "status":
                                return {"lat": lat, "sent": sent, "seqs": seqs,
                                        "reconnects": reconnects}
                            if msg.get("type") == "event":
                                lat.append(now - msg["time"])
                                sent.append(msg["time"])
                                seqs.append(msg["seq"])
            except ConnectionClosed as exc:  # 1013, too slow: resume where it stopped
                if exc.rcvd is None or exc.rcvd.code != 1013:
                    raise
                reconnects += 1
                target = f"{url}&since={seqs[-1] if seqs else 0}"

    cpu0 = sum(psutil.Process().cpu_times()[:2])
    results = await asyncio.gather(*(one() for _ in range(n)))
    cpu = sum(psutil.Process().cpu_times()[:2]) - cpu0
    lat = np.concatenate([np.asarray(r["lat"]) for r in results])
    sent = np.concatenate([np.asarray(r["sent"]) for r in results])
    out.put({"lat": lat, "sent": sent, "cpu_s": cpu, "counts": [len(r["seqs"]) for r in results],
             "reconnects": sum(r["reconnects"] for r in results),
             "disorder": sum(int(np.any(np.diff(r["seqs"]) <= 0)) for r in results)})


def run_clients(url: str, n: int, deflate: bool, out: mp.Queue) -> None:
    asyncio.run(clients(url, n, deflate, out))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=1000.0, help="events a second")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--procs", type=int, default=2, help="client processes")
    p.add_argument("--no-deflate", action="store_true",
                   help="clients do not offer permessage-deflate (browsers do)")
    p.add_argument("--flush", type=float, default=0.005,
                   help="the hub's flush_interval (seconds)")
    args = p.parse_args(argv)
    port = free_port()
    ctx = mp.get_context("spawn")
    server_out: mp.Queue = ctx.Queue()
    server = ctx.Process(target=run_server, args=(port, args.clients, args.rate,
                                                  args.seconds, args.flush, server_out))
    server.start()
    url = f"ws://127.0.0.1:{port}/ws?topics=fill,status"
    deadline = time.monotonic() + 30
    while True:  # wait for the port
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("the server did not start")
            time.sleep(0.05)
    client_out: mp.Queue = ctx.Queue()
    per = [args.clients // args.procs + (i < args.clients % args.procs)
           for i in range(args.procs)]
    procs = [ctx.Process(target=run_clients, args=(url, k, not args.no_deflate,
                                                          client_out)) for k in per if k]
    for proc in procs:
        proc.start()
    parts = [client_out.get(timeout=args.seconds + 120) for _ in procs]
    stats = server_out.get(timeout=30)
    for proc in [*procs, server]:
        proc.join(10)
    lat = np.concatenate([part["lat"] for part in parts]) * 1e3
    sent = np.concatenate([part["sent"] for part in parts])
    order = np.argsort(sent, kind="stable")
    fifths = [float(np.percentile(chunk, 99)) for chunk in np.array_split(lat[order], 5)]
    counts = np.concatenate([part["counts"] for part in parts])
    lost = stats["events"] - counts
    print(f"{args.clients} clients ({len(procs)} processes), {args.rate:.0f} events/s for "
          f"{args.seconds:g} s, flush_interval {args.flush:g} s, "
          f"deflate {not args.no_deflate}: {stats['events']} events, "
          f"{lat.size} deliveries "
          f"(cores: {os.cpu_count()})")
    print(f"latency publish -> receipt: p50 {np.percentile(lat, 50):.2f} ms, "
          f"p99 {np.percentile(lat, 99):.2f} ms, max {lat.max():.2f} ms (goal p99 < 50 ms)")
    print("p99 in each fifth of the run (publish time): "
          + ", ".join(f"{v:.1f}" for v in fifths) + " ms")
    print(f"lost: {int(lost.sum())} in all, worst client {int(lost.max())}; clients with "
          f"events out of order: {sum(part['disorder'] for part in parts)} (goal 0); "
          f"reconnects after a 1013 (too slow): {sum(part['reconnects'] for part in parts)}")
    print(f"server CPU: {stats['cpu_s']:.2f} s over {stats['wall_s']:.2f} s "
          f"({100 * stats['cpu_s'] / stats['wall_s']:.0f}% of a core); publish() p99 "
          f"{stats['publish_p99_us']:.1f} us, max {stats['publish_max_us']:.1f} us")
    print(f"client processes' CPU: {sum(part['cpu_s'] for part in parts):.2f} s")
    print(f"hub: {stats['hub']}")


if __name__ == "__main__":
    main()
