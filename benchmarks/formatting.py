"""Alert formatting timings: Telegram splitting and the Discord embed on huge alerts.

Run with ``.venv/bin/python benchmarks/formatting.py``. Formatting runs on the alert
loop, so a slow split stalls every sink. Target: linear in the alert's length (the
quadratic version took 1.3-2.5 s on 40,000 emoji and 92 s on 250,000).
"""

from __future__ import annotations

import time

from alphatrade_lab.alerts import Alert, discord_payload, telegram_messages


def best_of(fn, n: int = 5) -> float:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main() -> None:
    cases = {
        "emoji, one line": lambda n: "\U0001f680" * n,
        "escapes, one line": lambda n: "x." * (n // 2),
        "short lines": lambda n: ("row 1.5 BTC_USDT\n" * (n // 17)),
        "backslashes": lambda n: "\\" * n,
    }
    print(f"{'case':<20} {'chars':>9} {'telegram':>10} {'discord':>10}")
    for name, make in cases.items():
        for n in (40_000, 250_000, 1_000_000):
            alert = Alert("warning", "huge", make(n), {"note": make(n // 10)})
            tg = best_of(lambda a=alert: telegram_messages(a))
            dc = best_of(lambda a=alert: discord_payload(a))
            print(f"{name:<20} {n:>9,} {tg * 1e3:8.1f} ms {dc * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
