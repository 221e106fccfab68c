"""Message formats: MarkdownV2 escaping and splitting, Discord embed limits."""

from __future__ import annotations

import re

import pytest

from alphatrade_lab.alerts import Alert, AlertLevel, discord_payload, telegram_messages
from alphatrade_lab.alerts.formatting import escape_markdown_v2, utf16_len

SPECIAL = "_*[]()~`>#+-=|{}.!\\"


def unescape(text: str) -> str:
    """Parse MarkdownV2 plain text: fail on an unescaped special character."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            assert i + 1 < len(text), "dangling backslash"
            assert text[i + 1] in SPECIAL, f"needless escape of {text[i + 1]!r}"
            out.append(text[i + 1])
            i += 2
            continue
        assert ch not in SPECIAL, f"unescaped {ch!r} at {i} in {text[max(0, i - 20):i + 5]!r}"
        out.append(ch)
        i += 1
    return "".join(out)


def body_lines(message: str) -> list[str]:
    """The lines after the bold header (which is the only entity)."""
    first, _, rest = message.partition("\n")
    assert first.startswith("*") and first.endswith("*")
    unescape(first[1:-1])
    return rest.split("\n")


def test_every_special_character_is_escaped():
    text = "BTC_USDT *pump* [x](y) ~a~ `c` >q #h +1 -2 =3 |p| {b} 1.5! back\\slash"
    esc = escape_markdown_v2(text)
    assert unescape(esc) == text
    for ch in SPECIAL:
        assert unescape(escape_markdown_v2(ch * 3)) == ch * 3


def test_telegram_message_round_trips_symbols_and_numbers():
    alert = Alert(AlertLevel.CRITICAL, "Risk_Alert: max_drawdown (AAA_USD)",
                  "Current value: -12.34%, threshold 10.00% exceeded!",
                  {"symbol": "ETH_USDT", "value": -0.1234, "note": "a*b=c"})
    (msg,) = telegram_messages(alert)
    lines = body_lines(msg)
    plain = "\n".join(unescape(line) for line in lines)
    assert alert.message in plain
    assert "symbol: ETH_USDT" in plain and "note: a*b=c" in plain and "-0.1234" in plain
    assert unescape(msg.split("\n")[0][1:-1]).endswith("CRITICAL: " + alert.title)


@pytest.mark.parametrize("message", [
    "x.y_z " * 2000,                              # long lines with many escapes
    "\n".join(f"row {i}: 1.{i}" for i in range(1200)),
    "\\" * 5000,                                   # an escape at every split point
    "\U0001f680." * 3000,                           # astral characters count twice
])
def test_long_messages_split_within_the_limit_without_breaking_escapes(message):
    msgs = telegram_messages(Alert("info", "long", message))
    assert len(msgs) > 1
    assert all(utf16_len(m) <= 4096 for m in msgs)
    parts = [unescape("\n".join(body_lines(msgs[0])))] + [unescape(m) for m in msgs[1:]]
    # chunks end at a line break (dropped) or inside a long line: compare without breaks
    rebuilt = "".join(parts).replace("\n", "")
    flat = message.replace("\n", "")
    if not rebuilt.endswith("\u2026 (truncated)"):
        assert rebuilt == flat
    else:
        assert len(msgs) == 4
        kept = rebuilt[: -len("\u2026 (truncated)")]
        assert flat.startswith(kept) and len(kept) > 3 * 4000 // 2


def test_very_long_message_is_truncated_to_max_parts():
    msgs = telegram_messages(Alert("warning", "huge", "a" * 50_000), max_parts=3)
    assert len(msgs) == 3
    assert unescape(msgs[-1]).endswith("(truncated)")
    assert all(utf16_len(m) <= 4096 for m in msgs)


def test_discord_embed_limits_and_colours():
    data = {f"key_{i}" * 20: "v" * 2000 for i in range(40)}
    body = discord_payload(Alert("emergency", "t" * 1000, "d" * 10_000, data))
    (embed,) = body["embeds"]
    assert utf16_len(embed["title"]) <= 256
    assert utf16_len(embed["description"]) <= 4096
    assert len(embed["fields"]) <= 25
    assert all(len(f["name"]) <= 256 and len(f["value"]) <= 1024 for f in embed["fields"])
    total = (len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
             + sum(len(f["name"]) + len(f["value"]) for f in embed["fields"]))
    assert total <= 6000
    colours = {discord_payload(Alert(lv, "t"))["embeds"][0]["color"] for lv in AlertLevel}
    assert len(colours) == 4


def test_discord_fields_carry_the_data():
    embed = discord_payload(Alert("warning", "Risk", "m", {"symbol": "AAA", "value": 0.25}))[
        "embeds"][0]
    assert {f["name"]: f["value"] for f in embed["fields"]} == {"symbol": "AAA",
                                                                "value": "0.25"}
    assert re.match(r"\d{4}-\d\d-\d\dT", embed["timestamp"])
