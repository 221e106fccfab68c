"""Delivery against real sockets: local servers impersonate Telegram and Discord."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from alphatrade_lab.alerts import (
    Alert,
    AlertLevel,
    AlertManager,
    DiscordAlerter,
    LogAlerter,
    Sink,
    TelegramAlerter,
    WebhookAlerter,
)
from alphatrade_lab.store import LabStore
from alphatrade_lab.testing import LocalReceiver, Reply

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
CHAT = "-1001234567890"
HOOK = "/api/webhooks/1122334455/SeCrEt-WeBhOoK-ToKeN_abcdefghijklmnop"
FAST = {"backoff": 0.05, "max_backoff": 0.2}


@pytest.fixture()
def rx():
    with LocalReceiver() as receiver:
        yield receiver


def telegram(rx, **kw):
    opts = {**FAST, "rate": None, **kw}
    return TelegramAlerter(TOKEN, CHAT, api_base=rx.url, **opts)


def discord(rx, **kw):
    return DiscordAlerter(rx.url + HOOK, **{**FAST, "rate": None, **kw})


def tg_path() -> str:
    return f"/bot{TOKEN}/sendMessage"


def test_telegram_message_arrives_once_as_markdown_v2(rx):
    with AlertManager([telegram(rx)], log=False) as m:
        res = m.send("critical", "Risk Alert: max_drawdown", "dd 12.5%", {"symbol": "BTC_USDT"})
    assert res.delivered == ["telegram"] and not res.failed
    (req,) = rx.requests(tg_path())
    body = req.json
    assert body["chat_id"] == CHAT and body["parse_mode"] == "MarkdownV2"
    assert "BTC\\_USDT" in body["text"] and "12\\.5%" in body["text"]


@pytest.mark.slow
def test_telegram_429_waits_retry_after(rx):
    rx.script(tg_path(), [Reply(429, {"ok": False, "error_code": 429,
                                      "description": "Too Many Requests: retry after 1",
                                      "parameters": {"retry_after": 1}})])
    with AlertManager([telegram(rx)], log=False) as m:
        t0 = time.monotonic()
        res = m.send("warning", "x", "y")
    reqs = rx.requests(tg_path())
    assert res.delivered == ["telegram"]
    assert len(reqs) == 2
    assert reqs[1].t - reqs[0].t >= 0.95
    assert time.monotonic() - t0 < 10


@pytest.mark.slow
def test_discord_429_uses_body_then_header(rx):
    rx.script(HOOK, [Reply(429, {"message": "You are being rate limited.",
                                 "retry_after": 0.6, "global": False}),
                     Reply(429, "not json", headers={"Retry-After": "1"})])
    with AlertManager([discord(rx)], log=False) as m:
        res = m.send("info", "x")
    reqs = rx.requests(HOOK)
    assert res.delivered == ["discord"] and len(reqs) == 3
    assert reqs[1].t - reqs[0].t >= 0.55
    assert reqs[2].t - reqs[1].t >= 0.95
    assert reqs[0].json["embeds"][0]["color"] == AlertLevel.INFO.color


def test_429_longer_than_max_wait_fails_at_once(rx):
    rx.script(HOOK, [Reply(429, {"retry_after": 120})])
    with AlertManager([discord(rx, max_wait=5)], log=False) as m:
        t0 = time.monotonic()
        res = m.send("info", "x")
    assert "discord" in res.failed and "max_wait" in res.failed["discord"]
    assert len(rx.requests(HOOK)) == 1 and time.monotonic() - t0 < 3


def test_5xx_is_retried_with_backoff_then_succeeds(rx):
    rx.script(tg_path(), [Reply(500, "boom"), Reply(502, "bad gateway")])
    with AlertManager([telegram(rx, backoff=0.2, max_backoff=1.0)], log=False) as m:
        res = m.send("info", "x")
    reqs = rx.requests(tg_path())
    assert res.delivered == ["telegram"] and len(reqs) == 3
    # jittered exponential backoff: [0.1, 0.2] s then [0.2, 0.4] s
    assert reqs[1].t - reqs[0].t >= 0.09
    assert reqs[2].t - reqs[1].t >= 0.19


def test_attempts_are_bounded(rx):
    rx.default(HOOK, Reply(503, "down"))
    with AlertManager([discord(rx, attempts=4, trip_after=0)], log=False) as m:
        res = m.send("info", "x")
    assert len(rx.requests(HOOK)) == 4
    assert "HTTP 503" in res.failed["discord"] and "4 attempts" in res.failed["discord"]


def test_4xx_is_not_retried(rx):
    rx.script(tg_path(), [Reply(400, {"ok": False, "error_code": 400,
                                      "description": "Bad Request: chat not found"})])
    with AlertManager([telegram(rx)], log=False) as m:
        res = m.send("info", "x")
    assert len(rx.requests(tg_path())) == 1
    assert "chat not found" in res.failed["telegram"]


@pytest.mark.slow
def test_slow_answer_beyond_timeout_is_retried_then_fails(rx):
    rx.default(tg_path(), Reply(200, {"ok": True}, delay=3.0))
    with AlertManager([telegram(rx, timeout=0.3, attempts=2, trip_after=0)], log=False) as m:
        t0 = time.monotonic()
        res = m.send("info", "x")
        elapsed = time.monotonic() - t0
    assert len(rx.requests(tg_path())) == 2
    assert "timed out after 0.3 s" in res.failed["telegram"]
    assert 0.55 <= elapsed < 2.5


@pytest.mark.parametrize("body", ["<html>gateway</html>", {"result": 1}, b""])
def test_malformed_telegram_success_is_a_failure_not_retried(rx, body):
    rx.script(tg_path(), [Reply(200, body)])
    with AlertManager([telegram(rx)], log=False) as m:
        res = m.send("info", "x")
    assert "malformed" in res.failed["telegram"]
    assert len(rx.requests(tg_path())) == 1


@pytest.mark.slow
def test_failing_sink_does_not_delay_or_fail_the_others(rx, caplog):
    rx.default(tg_path(), Reply(200, {"ok": True}, delay=5.0))
    rx.default("/hook", Reply(500))
    sinks = [telegram(rx, timeout=1.0, attempts=1), discord(rx),
             WebhookAlerter(rx.url + "/hook", attempts=2, **FAST), LogAlerter()]
    with AlertManager(sinks) as m:
        t0 = time.monotonic()
        res = m.send("critical", "x", "y")
        elapsed = time.monotonic() - t0
    (d,) = rx.requests(HOOK)
    assert d.t - t0 < 0.8  # Discord was posted at once, not after Telegram's timeout
    assert sorted(res.delivered) == ["discord", "log"]
    assert sorted(res.failed) == ["telegram", "webhook"]
    assert elapsed < 3.0
    assert any("not delivered" in r.getMessage() for r in caplog.records)


def test_sink_exceptions_never_reach_the_caller():
    class Broken(Sink):
        kind = "broken"

        async def deliver(self, alert, client=None):
            raise ZeroDivisionError("nope")

    with AlertManager([Broken()]) as m:
        res = m.send("info", "x")
    assert res.delivered == ["log"] and "ZeroDivisionError" in res.failed["broken"]


def test_deliveries_and_failures_are_recorded(rx):
    rx.default("/hook", Reply(404, "no such hook"))
    store = LabStore(":memory:")
    run = store.record_run("live")
    sinks = [discord(rx), WebhookAlerter(rx.url + "/hook", **FAST)]
    with AlertManager(sinks, store=store, run_id=run) as m:
        m.send("warning", "first", "m1", {"k": 1})
        m.send("emergency", "second")
    rows = store.alerts(run_id=run)
    assert rows["title"].tolist() == ["first", "second"]
    assert rows["level"].tolist() == ["warning", "emergency"]
    assert [sorted(json.loads(x)) for x in rows["delivered_sinks"]] == [["discord", "log"]] * 2
    assert [json.loads(x) for x in rows["failed_sinks"]] == [["webhook"]] * 2
    data = json.loads(rows["data"].iloc[0])
    (err,) = data["_delivery_errors"]
    assert data["k"] == 1 and err["sink"] == "webhook" and "HTTP 404" in err["error"]


@pytest.mark.slow
def test_telegram_rate_limit_one_message_a_second(rx):
    with AlertManager([telegram(rx, rate=(1, 1.0))], log=False) as m:
        t0 = time.monotonic()
        results = m.send_many([Alert("info", f"m{i}") for i in range(3)])
    reqs = rx.requests(tg_path())
    assert all(r.delivered == ["telegram"] for r in results) and len(reqs) == 3
    gaps = [b.t - a.t for a, b in zip(reqs, reqs[1:], strict=False)]
    assert min(gaps) >= 0.9 and time.monotonic() - t0 >= 1.9


@pytest.mark.slow
def test_discord_rate_limit_five_per_two_seconds(rx):
    with AlertManager([discord(rx, rate=(5, 2.0))], log=False) as m:
        m.send_many([Alert("info", f"m{i}") for i in range(7)])
    t = sorted(r.t for r in rx.requests(HOOK))
    assert len(t) == 7
    assert t[4] - t[0] < 1.0            # the first five go at once
    assert t[5] - t[0] >= 1.9           # the sixth waits for the window


def test_identical_alerts_are_sent_once_with_a_repeat_count(rx):
    with AlertManager([discord(rx)], log=False, dedupe_window=300) as m:
        results = [m.send("warning", "same", "text", {"a": 1}) for _ in range(5)]
        other = m.send("warning", "same", "text", {"a": 2})
        assert len(rx.requests(HOOK)) == 2
        flushed = m.flush()
    assert [r.suppressed for r in results] == [False, True, True, True, True]
    assert not other.suppressed
    assert len(flushed) == 1 and flushed[0].alert.repeat_count == 4
    reqs = rx.requests(HOOK)
    assert len(reqs) == 3 and "repeated 4 times" in reqs[2].json["embeds"][0]["description"]


def test_repeat_after_window_carries_the_count(rx):
    with AlertManager([discord(rx)], log=False, dedupe_window=0.3) as m:
        m.send("info", "t")
        m.send("info", "t")
        m.send("info", "t")
        time.sleep(0.35)
        late = m.send("info", "t")
    assert late.alert.repeat_count == 3 and len(rx.requests(HOOK)) == 2


def test_minimum_level_per_sink(rx):
    sinks = [telegram(rx, min_level="critical"), discord(rx)]
    with AlertManager(sinks, log=False) as m:
        low = m.send("warning", "w")
        high = m.send("emergency", "e")
    assert low.skipped == ["telegram"] and low.delivered == ["discord"]
    assert sorted(high.delivered) == ["discord", "telegram"]
    assert len(rx.requests(tg_path())) == 1


def test_async_api_and_sync_send_inside_a_running_loop(rx):
    m = AlertManager([discord(rx)], log=False)

    async def main():
        a = await m.warning("async", "w")
        b = await m.critical("async", "c")
        c = m.send("info", "sync in a running loop")   # as in a Jupyter cell
        return a, b, c

    try:
        a, b, c = asyncio.run(main())
    finally:
        m.close()
    assert [r.alert.level for r in (a, b, c)] == [AlertLevel.WARNING, AlertLevel.CRITICAL,
                                                  AlertLevel.INFO]
    assert all(r.delivered == ["discord"] for r in (a, b, c)) and len(rx.requests(HOOK)) == 3


@pytest.mark.slow
def test_dead_service_costs_about_one_timeout(rx):
    rx.default(tg_path(), Reply(200, {"ok": True}, delay=30.0))   # accepts, never answers
    sink = telegram(rx, timeout=0.5, attempts=3)
    with AlertManager([sink, discord(rx)], log=False) as m:
        t0 = time.monotonic()
        results = m.send_many([Alert("info", f"m{i}") for i in range(40)])
        elapsed = time.monotonic() - t0
    assert all(r.delivered == ["discord"] and "telegram" in r.failed for r in results)
    assert elapsed < 0.5 + 2.5           # one timeout (plus slack), not 40 x 3 of them
    assert len(rx.requests(tg_path())) <= sink.max_concurrency + 3
    assert any("circuit open" in r.failed["telegram"] for r in results)


def test_long_telegram_alert_is_sent_as_several_messages_in_order(rx):
    with AlertManager([telegram(rx)], log=False) as m:
        res = m.send("info", "long", "\n".join(f"line {i}" for i in range(1500)))
    reqs = rx.requests(tg_path())
    assert res.delivered == ["telegram"] and 2 <= len(reqs) <= 4
    assert all(len(r.json["text"]) <= 4096 for r in reqs)
    assert "line 0" in reqs[0].json["text"] and "line 1499" in reqs[-1].json["text"]
