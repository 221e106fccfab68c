"""Alert delivery timings: 1,000 alerts through three sinks against local servers.

Run with ``make bench`` or ``.venv/bin/python benchmarks/alerts.py``. Local receivers
(``alphatrade_lab.alerts.LocalReceiver``) impersonate Telegram, Discord and a webhook on
127.0.0.1, in a separate process (so the servers do not share the client's GIL). Each
job sends 1,000 distinct alerts with ``AlertManager.send_many`` (concurrently, one pooled
client) and records every one in an in-memory lab store:

1. all three sinks up;
2. the webhook **hangs** (accepts the connection, never answers; 5 s timeout, 3 attempts);
3. the webhook's port is **closed** (connection refused).

A warm-up job (all sinks up, not counted) comes first, so no job absorbs the start-up of
the client, the event loop and the store; then each job runs ``REPEAT`` times. The extra
time of a down sink is measured against a job that does the same delivered work: Telegram
and Discord only (a down webhook delivers nothing, so against all three sinks up it would
look faster), as the difference of the jobs' minimum (and median) times.

Targets: every alert accounted for (delivered or failed at every sink, one store row
each), and a down sink adds no more than its timeout to the job. The services' real rate
limits (Telegram 1 message/s per chat, Discord 5 per 2 s per webhook) would make 1,000
alerts take 17-35 minutes, so the local sinks run without them (``rate=None``).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import socket
import statistics
import time

from alphatrade_lab.alerts import (
    Alert,
    AlertManager,
    DiscordAlerter,
    TelegramAlerter,
    WebhookAlerter,
)
from alphatrade_lab.store import LabStore
from alphatrade_lab.testing import LocalReceiver, Reply

N = 1_000
REPEAT = 2
TIMEOUT = 5.0
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(conn, hang: bool) -> None:
    """Child process: run a receiver; answer "count <prefix>" and "clear"; stop on "stop"."""
    with LocalReceiver() as rx:
        if hang:
            rx.default("/", Reply(200, {"ok": True}, delay=3600))
        conn.send(rx.url)
        while True:
            cmd = conn.recv()
            if cmd == "stop":
                return
            if cmd == "clear":
                rx.clear()
                conn.send(None)
            else:
                conn.send(len(rx.requests(cmd.split(" ", 1)[1])))


class Remote:
    def __init__(self, hang: bool = False):
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=serve, args=(child, hang), daemon=True)
        self.proc.start()
        self.url = self.conn.recv()

    def count(self, prefix: str) -> int:
        self.conn.send(f"count {prefix}")
        return self.conn.recv()

    def clear(self) -> None:
        self.conn.send("clear")
        self.conn.recv()

    def stop(self) -> None:
        self.conn.send("stop")
        self.proc.join(10)


def job(name: str, rx: Remote, webhook_url: str | None, hook_rx: Remote | bool | None = None
        ) -> float:
    """One job of N alerts; ``webhook_url=None``: Telegram and Discord only."""
    rx.clear()
    sinks = [TelegramAlerter(TOKEN, "42", api_base=rx.url, rate=None, timeout=TIMEOUT),
             DiscordAlerter(rx.url + "/api/webhooks/1/secret", rate=None, timeout=TIMEOUT)]
    if webhook_url is not None:
        sinks.append(WebhookAlerter(webhook_url, rate=None, timeout=TIMEOUT))
    store = LabStore(":memory:")
    alerts = [Alert("warning", f"Risk Alert #{i}", f"value {i / 10:.1f}%", {"i": i})
              for i in range(N)]
    with AlertManager(sinks, store=store, log=False) as manager:
        t0 = time.perf_counter()
        results = manager.send_many(alerts)
        elapsed = time.perf_counter() - t0
    rows = store.alerts()
    outcome = {s.name: {"delivered": sum(s.name in r.delivered for r in results),
                        "failed": sum(s.name in r.failed for r in results)} for s in sinks}
    accounted = all(v["delivered"] + v["failed"] == N for v in outcome.values())
    stored = (len(rows) == N and sorted(json.loads(d)["i"] for d in rows["data"])
              == list(range(N)))
    arrived = {"telegram": rx.count(f"/bot{TOKEN}/"), "discord": rx.count("/api/webhooks/"),
               "webhook": (hook_rx or rx).count("/hook") if hook_rx is not False else 0}
    arrived = {k: v for k, v in arrived.items() if k in outcome}
    print(f"{name:<16} {elapsed:6.2f} s  {N / elapsed:6.0f} alerts/s  "
          f"accounted={accounted} stored={stored} ({len(rows)} rows)")
    for sink, v in outcome.items():
        reason = next((r.failed[sink] for r in results if sink in r.failed), "")
        print(f"    {sink:<9} delivered {v['delivered']:5d}  failed {v['failed']:5d}  "
              f"received {arrived[sink]:5d}  {reason[:64]}")
    assert accounted and stored
    return elapsed


def main() -> None:
    rx, hang = Remote(), Remote(hang=True)
    try:
        job("warm-up", rx, rx.url + "/hook")
        up, ok, hung, refused = [], [], [], []
        for _ in range(REPEAT):
            up.append(job("all sinks up", rx, rx.url + "/hook"))
            ok.append(job("two sinks only", rx, None))
            hung.append(job("webhook hangs", rx, hang.url + "/hook", hang))
            refused.append(job("webhook refused", rx, f"http://127.0.0.1:{free_port()}/hook",
                               False))
    finally:
        rx.stop()
        hang.proc.kill()
        hang.proc.join(10)
    for label, pick in (("min", min), ("median", statistics.median)):
        print(f"\n{label} of {REPEAT} jobs each: all three sinks up {pick(up):.2f} s, two "
              f"sinks only {pick(ok):.2f} s; extra time from a down third sink (timeout "
              f"{TIMEOUT:g} s): hanging {pick(hung) - pick(ok):+.2f} s, refused "
              f"{pick(refused) - pick(ok):+.2f} s (target <= {TIMEOUT:g} s)")


if __name__ == "__main__":
    main()
