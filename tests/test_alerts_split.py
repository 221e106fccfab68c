"""Splitting long alerts is linear and gives the same messages as the old (quadratic)
implementation: parts within Telegram's 4096 UTF-16 units, never split inside a
MarkdownV2 escape or an astral character, rejoining to the escaped text."""

from __future__ import annotations

import random

import pytest

from alphatrade_lab.alerts import Alert, discord_payload, telegram_messages
from alphatrade_lab.alerts.formatting import (
    _ELLIPSIS,
    _cut,
    _value_text,
    escape_markdown_v2,
    utf16_len,
)

# --------------------------------------------------------------------------------------
# Reference: the implementation as it was before splitting was made linear, copied
# verbatim from alphatrade_lab/alerts/formatting.py (quadratic; small inputs only).
# --------------------------------------------------------------------------------------


def old_cut(text: str, limit: int) -> str:
    if utf16_len(text) <= limit:
        return text
    out = text[:limit]
    while utf16_len(out) > limit - 1:
        out = out[:-1]
    return out + _ELLIPSIS


def old_safe_split(line: str, limit: int) -> list[str]:
    pieces = []
    while utf16_len(line) > limit:
        cut = min(len(line), limit)
        while utf16_len(line[:cut]) > limit:
            cut -= 1
        n = 0
        while n < cut and line[cut - 1 - n] == "\\":
            n += 1
        if n % 2 == 1:
            cut -= 1
        pieces.append(line[:cut])
        line = line[cut:]
    pieces.append(line)
    return pieces


def old_telegram_messages(alert: Alert, limit: int = 4096, max_parts: int = 4) -> list[str]:
    header = escape_markdown_v2(f"{alert.level.emoji} {alert.level.name}: "
                                f"{old_cut(alert.title, 256)}")
    lines = [f"*{header}*"]
    if alert.repeat_count > 1:
        lines.append("_" + escape_markdown_v2(f"repeated {alert.repeat_count} times") + "_")
    if alert.message:
        lines += [escape_markdown_v2(x) for x in alert.message.split("\n")]
    if alert.data:
        lines.append("")
        lines += [escape_markdown_v2(f"\u2022 {k}: {_value_text(v)}")
                  for k, v in alert.data.items()]
    text = "\n".join(lines)
    if utf16_len(text) <= limit:
        return [text]
    marker = "\n" + escape_markdown_v2(f"{_ELLIPSIS} (truncated)")
    chunks: list[str] = []
    current = ""
    for line in lines:
        rest = line
        while True:
            sep = "\n" if current else ""
            room = limit - utf16_len(current) - len(sep)
            if utf16_len(rest) <= room:
                current += sep + rest
                break
            if utf16_len(rest) <= limit or room < 2:
                chunks.append(current)
                current = ""
                continue
            piece = old_safe_split(rest, room)[0]
            current += sep + piece
            rest = rest[len(piece):]
            chunks.append(current)
            current = ""
    chunks.append(current)
    if len(chunks) > max_parts:
        last = chunks[max_parts - 1]
        room = limit - utf16_len(marker)
        last = old_safe_split(last, room)[0] if utf16_len(last) > room else last
        chunks = [*chunks[:max_parts - 1], last + marker]
    return chunks

# --------------------------------------------------------------------------------------


ALPHABET = ["a", "b", " ", ".", "_", "\\", "\n", "\n", "\U0001f680", "\u00e9", "*", "-"]


def random_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def escape_boundary_ok(part: str) -> bool:
    """``part`` ends outside an escape: its trailing backslash run is even."""
    return (len(part) - len(part.rstrip("\\"))) % 2 == 0


@pytest.mark.parametrize("seed", range(40))
def test_same_messages_as_the_old_implementation(seed):
    rng = random.Random(seed)
    limit = rng.choice([40, 41, 97, 300, 1000])  # above the truncation marker's length
    n = rng.randrange(0, limit * 7)
    data = {f"k{i}": random_text(rng, rng.randrange(0, limit)) for i in range(rng.randrange(3))}
    alert = Alert(rng.choice(["info", "critical"]), random_text(rng, rng.randrange(40)),
                  random_text(rng, n), data, repeat_count=rng.choice([1, 3]))
    max_parts = rng.choice([1, 2, 4, 6])
    assert telegram_messages(alert, limit, max_parts) == \
        old_telegram_messages(alert, limit, max_parts)


@pytest.mark.parametrize("message", [
    "\U0001f680" * 9000, "\\" * 9001, "x." * 7000, ("a" * 50 + "\n") * 300,
    "\U0001f680\\" * 3000 + "\n" + "b" * 5000,
])
def test_long_messages_match_the_old_implementation(message):
    alert = Alert("warning", "long", message)
    assert telegram_messages(alert) == old_telegram_messages(alert)


@pytest.mark.parametrize("seed", range(10))
def test_parts_rejoin_and_respect_the_limit(seed):
    rng = random.Random(100 + seed)
    message = random_text(rng, rng.randrange(2000, 12000))
    alert = Alert("info", "t", message)
    parts = telegram_messages(alert, max_parts=100)
    assert all(utf16_len(p) <= 4096 for p in parts)
    assert all(escape_boundary_ok(p) for p in parts)
    escaped = "\n".join([f"*{escape_markdown_v2(alert.level.emoji + ' INFO: t')}*",
                         *(escape_markdown_v2(x) for x in message.split("\n"))])
    # a part ends at a line break (the break itself is dropped) or inside a long line
    assert "".join(parts).replace("\n", "") == escaped.replace("\n", "")
    # astral characters are single code points: a part can never hold half of one
    assert all(p.encode("utf-16-le").decode("utf-16-le") == p for p in parts)


@pytest.mark.timeout(30)  # a guard, not a speed check: the quadratic version took 92 s
def test_huge_alert_is_truncated_quickly_and_correctly():
    alert = Alert("info", "t", "\U0001f680" * 250_000)
    parts = telegram_messages(alert)
    assert len(parts) == 4 and all(utf16_len(p) <= 4096 for p in parts)
    assert parts[-1].endswith(escape_markdown_v2("\u2026 (truncated)"))
    body = "".join(parts[1:-1]) + parts[-1].rpartition("\n")[0]
    assert set(body) == {"\U0001f680"}


@pytest.mark.parametrize("text", ["", "abc", "\U0001f680" * 300, "a\U0001f680" * 200,
                                  "x" * 257, "\U0001f680" + "x" * 255])
@pytest.mark.parametrize("limit", [1, 2, 3, 256, 1024])
def test_discord_cut_matches_the_old_one(text, limit):
    assert _cut(text, limit) == old_cut(text, limit)
    assert utf16_len(_cut(text, limit)) <= max(limit, 1)


def test_discord_payload_of_a_huge_alert_stays_within_limits():
    data = {f"key_{i}": "\U0001f680" * 5000 for i in range(40)}
    embed = discord_payload(Alert("info", "\U0001f680" * 5000, "\U0001f680" * 250_000,
                                  data))["embeds"][0]
    total = (utf16_len(embed["title"]) + utf16_len(embed["description"])
             + utf16_len(embed["footer"]["text"])
             + sum(utf16_len(f["name"]) + utf16_len(f["value"]) for f in embed["fields"]))
    assert utf16_len(embed["title"]) <= 256 and utf16_len(embed["description"]) <= 4096
    assert all(utf16_len(f["value"]) <= 1024 for f in embed["fields"]) and total <= 6000
