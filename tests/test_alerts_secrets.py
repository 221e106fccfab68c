"""Tokens and webhook URLs never show in logs, reprs, errors or stored rows; from_env."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback

import httpx
import pytest

from alphatrade_lab.alerts import (
    Alert,
    AlertDeliveryError,
    AlertLevel,
    AlertManager,
    DiscordAlerter,
    TelegramAlerter,
    WebhookAlerter,
    scrub,
)
from alphatrade_lab.alerts.manager import AlertResult
from alphatrade_lab.store import LabStore
from alphatrade_lab.testing import LocalReceiver, Reply

TOKEN = "987654321:AAF-secretTokenPartThatIsLong_enough1"
CHAT = "77665544"
HOOK_SECRET = "zzSecretWebhookTokenXyz-0123456789abcdef"
HOOK = f"/api/webhooks/5566778899/{HOOK_SECRET}"
GENERIC = "/ingest/k3yInPathQwerty?token=qsSecretParam4567"
SECRETS = (TOKEN, TOKEN.split(":")[1], HOOK_SECRET, "k3yInPathQwerty", "qsSecretParam4567")


def assert_clean(text: str) -> None:
    for s in SECRETS:
        assert s not in text, f"secret {s[:6]}... leaked in {text[:300]!r}"


def sinks(base: str, **kw):
    opts = {"backoff": 0.01, "attempts": 2, "rate": None, **kw}
    return [TelegramAlerter(TOKEN, CHAT, api_base=base, **opts),
            DiscordAlerter(base + HOOK, **opts),
            WebhookAlerter(base + GENERIC, headers={"Authorization": "Bearer hdrSecret12345"},
                           **opts)]


def test_reprs_hide_secrets():
    m = AlertManager(sinks("https://example.com"), store=LabStore(":memory:"))
    text = repr(m) + "".join(repr(s) + str(s) for s in m.sinks)
    assert_clean(text)
    assert "hdrSecret12345" not in text and CHAT not in text
    assert "example.com" in text and "[REDACTED]" in text


def test_logs_and_results_of_failing_sinks_hide_secrets(caplog):
    caplog.set_level(logging.DEBUG)
    with LocalReceiver() as rx:
        rx.default("/", Reply(500, {"error": "internal"}))
        with AlertManager(sinks(rx.url), store=LabStore(":memory:")) as m:
            res = m.send("critical", "t", "m")
            store = m.store
    assert sorted(res.failed) == ["discord", "telegram", "webhook"]
    # httpx logs each request's URL at INFO: it must have been scrubbed
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)
    assert_clean(caplog.text)
    assert_clean(" ".join(res.failed.values()))
    rows = store.alerts()
    assert_clean(rows.to_json(date_format="iso"))


def test_httpx_errors_that_contain_the_url_are_scrubbed(caplog):
    caplog.set_level(logging.DEBUG)

    def handler(request: httpx.Request) -> httpx.Response:
        if "webhooks" in str(request.url):
            response = httpx.Response(418, request=request)
            response.raise_for_status()   # HTTPStatusError: "... for url '<the url>'"
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    transport = httpx.MockTransport(handler)
    store = LabStore(":memory:")
    with AlertManager(sinks("https://gateway.example"), store=store,
                      transport=transport) as m:
        res = m.send("emergency", "boom", "details")
    assert sorted(res.failed) == ["discord", "telegram", "webhook"]
    assert "ConnectError" in res.failed["telegram"] and "[REDACTED]" in res.failed["telegram"]
    assert "HTTPStatusError" in res.failed["discord"]
    rows = store.alerts().to_json(date_format="iso")
    assert_clean(" ".join(res.failed.values()) + caplog.text + rows)


def test_direct_delivery_errors_hide_secrets():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused: {request.url}", request=request)

    async def run(sink):
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            await sink.deliver(__import__("alphatrade_lab").alerts.Alert("info", "t"), client)

    for sink in sinks("https://gw.example", attempts=1):
        with pytest.raises(AlertDeliveryError) as info:
            asyncio.run(run(sink))
        exc = info.value
        assert exc.__cause__ is None and exc.__context__ is None
        assert_clean(str(exc) + repr(exc) + "".join(traceback.format_exception(exc)))


def test_secrets_in_alert_content_are_redacted_in_the_store_and_log(caplog):
    caplog.set_level(logging.INFO)
    store = LabStore(":memory:")
    with AlertManager([], store=store) as m:
        m.send("warning", "failed to post to https://discord.com/api/webhooks/1/" + HOOK_SECRET,
               f"token {TOKEN}", {"bot_token": TOKEN, "note": "x"})
    rows = store.alerts()
    assert_clean(rows.to_json(date_format="iso") + caplog.text)
    assert json.loads(rows["data"].iloc[0])["note"] == "x"


def test_from_env_builds_the_configured_sinks():
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT,
           "TELEGRAM_API_BASE": "http://127.0.0.1:9", "DISCORD_WEBHOOK":
           "https://discord.com" + HOOK, "DISCORD_API_BASE": "http://127.0.0.1:10/base",
           "ALERT_WEBHOOK_URL": "http://127.0.0.1:11/hook", "ALERT_TIMEOUT": "2.5",
           "ALERT_MIN_LEVEL": "warning"}
    m = AlertManager.from_env(env)
    kinds = {type(s).__name__: s for s in m.sinks}
    assert sorted(kinds) == ["DiscordAlerter", "LogAlerter", "TelegramAlerter",
                             "WebhookAlerter"]
    tg, dc = kinds["TelegramAlerter"], kinds["DiscordAlerter"]
    assert tg._url() == f"http://127.0.0.1:9/bot{TOKEN}/sendMessage"
    assert dc._url == "http://127.0.0.1:10/base" + HOOK
    assert tg.timeout == 2.5 and tg.min_level.name == "WARNING"
    assert kinds["LogAlerter"].min_level.name == "INFO"
    assert_clean(repr(m))
    assert [type(s).__name__ for s in AlertManager.from_env({}).sinks] == ["LogAlerter"]


def test_from_env_with_half_the_telegram_settings_warns(caplog):
    m = AlertManager.from_env({"TELEGRAM_BOT_TOKEN": TOKEN})
    assert [s.name for s in m.sinks] == ["log"]
    assert "TELEGRAM_CHAT_ID" in caplog.text
    assert_clean(caplog.text)


def test_end_to_end_from_env_against_local_servers():
    with LocalReceiver() as rx:
        env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT,
               "TELEGRAM_API_BASE": rx.url, "DISCORD_WEBHOOK": rx.url + HOOK}
        with AlertManager.from_env(env) as m:
            res = m.send("warning", "hello")
        assert sorted(res.delivered) == ["discord", "log", "telegram"]
        assert len(rx.requests(f"/bot{TOKEN}/")) == 1 and len(rx.requests(HOOK)) == 1


def leaked(text: str, secret: str) -> bool:
    """The secret, or any 8-character piece of it, is in ``text``."""
    return secret in text or any(secret[i:i + 8] in text for i in range(len(secret) - 7))


def test_a_webhook_url_in_alert_data_reaches_neither_discord_nor_the_store(caplog):
    caplog.set_level(logging.DEBUG)
    v10 = "V10HookTokenInAlertData_Q1w2E3r4T5y6U7i8O9p0"
    slack = "SlackHookPartInData9z8y7x6w"
    data = {"target": f"https://discord.com/api/v10/webhooks/99887766/{v10}",
            "backup": f"https://hooks.slack.com/services/T01/B02/{slack}",
            "error": "{'api_key': 'sk_live_51DataDictRepr0123abcd'} refused",
            "feature": "macd_signal", "sigma": 0.2}
    store = LabStore(":memory:")
    with LocalReceiver() as rx:
        opts = {"backoff": 0.01, "attempts": 1, "rate": None}
        sinks = [DiscordAlerter(rx.url + HOOK, **opts),
                 WebhookAlerter(rx.url + "/ingest", **opts),
                 TelegramAlerter(TOKEN, CHAT, api_base=rx.url, **opts)]
        with AlertManager(sinks, store=store) as m:
            res = m.send("warning", f"macd_signal: drifted, see {data['target']}",
                         "psi 0.31 > 0.2", data)
        bodies = [r.body.decode() for r in rx.requests()]
    assert sorted(res.delivered) == ["discord", "log", "telegram", "webhook"]
    assert len(bodies) == 3
    posted = " ".join(bodies)
    stored = store.alerts().to_json(date_format="iso")
    for text in (posted, stored, caplog.text):
        for secret in (v10, slack, "sk_live_51DataDictRepr0123abcd"):
            assert not leaked(text, secret), secret
    embed = next(json.loads(b) for b in bodies if "embeds" in b)["embeds"][0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["feature"] == "macd_signal" and fields["sigma"] == "0.2"
    assert fields["target"] == "https://discord.com/api/v10/webhooks/[REDACTED]"
    assert embed["title"].endswith("macd_signal: drifted, see "
                                   "https://discord.com/api/v10/webhooks/[REDACTED]")


@pytest.mark.parametrize("pad", [160, 170, 180])   # the token straddles the cut
def test_a_4xx_body_cut_at_200_characters_leaks_no_part_of_a_secret(caplog, pad):
    caplog.set_level(logging.DEBUG)
    tg = "555666777:AAE-CutInHalfTokenQwErTyUiOp0123456"
    body = "e" * pad + f" rejected {tg} and more text after it"
    store = LabStore(":memory:")
    with LocalReceiver() as rx:
        rx.default("/", Reply(400, body))
        opts = {"backoff": 0.01, "attempts": 1, "rate": None}
        with AlertManager([DiscordAlerter(rx.url + HOOK, **opts),
                           TelegramAlerter(TOKEN, CHAT, api_base=rx.url, **opts)],
                          store=store) as m:
            res = m.send("critical", "t")
    assert sorted(res.failed) == ["discord", "telegram"]
    text = (" ".join(res.failed.values()) + caplog.text
            + store.alerts().to_json(date_format="iso"))
    assert not leaked(text, tg)
    assert all(err.startswith(f"{name}: HTTP 400") and "eeee" in err
               for name, err in res.failed.items())


def test_secrets_in_a_from_env_mapping_are_redacted_everywhere():
    secret = "FromEnvMappingSecret7Yx3"      # no recognisable shape
    AlertManager.from_env({"EXCHANGE_API_SECRET": secret, "LOG_LEVEL": "debug"}).close()
    assert secret not in str(__import__("alphatrade_lab").errors.DataError(f"bad {secret}"))
    assert scrub(f"order rejected: {secret}") == "order rejected: [REDACTED]"


def test_a_sink_registers_its_secret_parts_but_not_plain_paths_or_words():
    WebhookAlerter("http://dash.example:8000/api/alerts?channel=alerts&sig=Sg7Hk2Lm9Qw4",
                   headers={"Authorization": "Bearer HeaderOnlyTok3n77"})
    text = "GET /api/alerts?limit=5 -> 200; alerts channel ok"
    assert scrub(text) == text
    assert scrub("retry with HeaderOnlyTok3n77 and Sg7Hk2Lm9Qw4") == \
        "retry with [REDACTED] and [REDACTED]"


def test_alert_and_result_reprs_hide_secrets_in_their_content():
    hook = "https://discord.com/api/webhooks/123456789012345678/Zq9xWv4RtY7pLm2KjH5gF3dS1a"
    alert = Alert(AlertLevel.WARNING, "Sink failed", f"posting to {hook}",
                  data={"target": hook, "password": "correct horse battery"})
    result = AlertResult(alert, failed={"discord": "HTTP 404"})
    for text in (repr(alert), repr(result), str([alert])):
        assert "Zq9xWv4RtY7pLm2KjH5gF3dS1a" not in text and "horse" not in text, text
        assert "Sink failed" in text
