"""Turn an :class:`~alphatrade_lab.alerts.Alert` into each service's message format.

* Telegram: MarkdownV2, where ``_ * [ ] ( ) ~ ` > # + - = | { } . !`` and ``\\`` must
  all be escaped (plain Markdown breaks on the ``_`` in ``BTC_USDT`` and the ``.`` and
  ``-`` in numbers); a message holds at most 4096 characters, counted here as UTF-16
  code units (as Telegram does: an emoji outside the BMP counts twice), so long alerts
  are split on line breaks (never inside an escape or a character) into a few messages,
  then truncated, in time linear in the alert's length.
* Discord: one embed within Discord's limits (title 256, description 4096, 25 fields of
  256/1024, 6000 characters in all), coloured by level, with the data as fields.
* Generic webhook: the alert as plain JSON.

>>> from alphatrade_lab.alerts import Alert
>>> escape_markdown_v2("BTC_USDT -1.5% (x*2)")
'BTC\\\\_USDT \\\\-1\\\\.5% \\\\(x\\\\*2\\\\)'
>>> msgs = telegram_messages(Alert("info", "t", "a.b\\n" * 3000))
>>> len(msgs) > 1 and all(utf16_len(m) <= 4096 for m in msgs)
True
>>> embed = discord_payload(Alert("critical", "x" * 300, "m", {"v": 1}))["embeds"][0]
>>> utf16_len(embed["title"]), embed["color"] == 0xE74C3C, embed["fields"][0]["name"]
(256, True, 'v')
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from alphatrade_lab.events import Alert

__all__ = [
    "DISCORD_LIMITS",
    "TELEGRAM_LIMIT",
    "discord_payload",
    "escape_markdown_v2",
    "format_text",
    "telegram_messages",
    "utf16_len",
    "webhook_payload",
]

TELEGRAM_LIMIT = 4096
DISCORD_LIMITS = {"title": 256, "description": 4096, "fields": 25, "field_name": 256,
                  "field_value": 1024, "footer": 2048, "total": 6000}
_MDV2_SPECIAL = set("_*[]()~`>#+-=|{}.!\\")
_ELLIPSIS = "\u2026"


def escape_markdown_v2(text: Any) -> str:
    """Escape every character Telegram's MarkdownV2 treats as markup."""
    return "".join("\\" + ch if ch in _MDV2_SPECIAL else ch for ch in str(text))


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (how Telegram and Discord count)."""
    return len(text.encode("utf-16-le")) // 2


def _prefix_fitting(text: str, limit: int, start: int = 0) -> int:
    """The largest ``end`` such that ``text[start:end]`` holds at most ``limit`` UTF-16
    units (an astral character, two units, is never split). Reads at most ``limit``
    characters."""
    if limit <= 0:
        return start
    window = text[start:start + limit]
    if window.isascii():
        return start + len(window)
    units = np.frombuffer(window.encode("utf-32-le"), dtype=np.uint32) > 0xFFFF
    cum = np.cumsum(units.astype(np.int64) + 1)
    return start + int(np.searchsorted(cum, limit, side="right"))


def _cut(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` UTF-16 units, ending in an ellipsis if cut."""
    if len(text) <= limit // 2 or utf16_len(text) <= limit:
        return text
    return text[:_prefix_fitting(text, limit - 1)] + _ELLIPSIS


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def format_text(alert: Alert) -> str:
    """One-line plain text (the log sink's format).

    >>> format_text(Alert("warning", "Risk", "dd 12%", {"symbol": "AAA"}))
    '[WARNING] Risk: dd 12% | symbol=AAA'
    """
    out = f"[{alert.level.name}] {alert.title}"
    if alert.message:
        out += f": {alert.message}"
    if alert.repeat_count > 1:
        out += f" (x{alert.repeat_count})"
    if alert.data:
        out += " | " + ", ".join(f"{k}={_value_text(v)}" for k, v in alert.data.items())
    return out


def _safe_end(line: str, start: int, limit: int) -> int:
    """Where the first piece of ``line[start:]`` of at most ``limit`` UTF-16 units ends,
    never between a backslash and the character it escapes (an odd run of backslashes
    before the cut moves it back by one)."""
    cut = _prefix_fitting(line, limit, start)
    run = cut - start - len(line[start:cut].rstrip("\\"))
    return cut - 1 if run % 2 == 1 else cut


class _Chunks:
    """Messages being filled with lines, counting UTF-16 units as it goes."""

    def __init__(self, limit: int, max_parts: int):
        self.limit, self.max_parts = limit, max_parts
        self.done: list[str] = []
        self.parts: list[str] = []   # pieces of the current message, joined by nothing
        self.units = 0

    @property
    def full(self) -> bool:
        """``max_parts`` messages are complete: what follows is truncated anyway."""
        return len(self.done) >= self.max_parts

    def close(self) -> None:
        self.done.append("".join(self.parts))
        self.parts, self.units = [], 0

    def add(self, line: str) -> None:
        """Append a line, as the first one of the message or after a line break: a line
        that fits whole in a new message starts one, a longer one fills this message
        first and goes on in the next ones."""
        limit = self.limit
        start, rest_units = 0, utf16_len(line)
        while not self.full:
            sep = "\n" if self.units else ""  # an empty message so far takes no break
            room = limit - self.units - len(sep)
            if rest_units <= room:
                self.parts += [sep, line[start:] if start else line]
                self.units += len(sep) + rest_units
                return
            if rest_units <= limit or room < 2:
                self.close()
                continue
            end = _safe_end(line, start, room)
            piece = line[start:end]
            self.parts += [sep, piece]
            rest_units -= utf16_len(piece)
            start = end
            self.close()


def telegram_messages(alert: Alert, limit: int = TELEGRAM_LIMIT,
                      max_parts: int = 4) -> list[str]:
    """MarkdownV2 messages for one alert: a bold header, the message, then the data.

    Text longer than ``limit`` UTF-16 units (as Telegram counts) is split on line breaks
    into at most ``max_parts`` messages (a line longer than a message is cut, never
    inside an escape); what is left after that is dropped and marked ``(truncated)``.
    Linear in the length of the alert: splitting stops once ``max_parts`` messages are
    full.
    """
    header = escape_markdown_v2(f"{alert.level.emoji} {alert.level.name}: "
                                f"{_cut(alert.title, 256)}")
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
    chunks = _Chunks(limit, max_parts)
    for line in lines:
        chunks.add(line)
        if chunks.full:
            break
    if not chunks.full:
        chunks.close()
        return chunks.done
    last = chunks.done[max_parts - 1]
    room = limit - utf16_len(marker)
    last = last[:_safe_end(last, 0, room)] if utf16_len(last) > room else last
    return [*chunks.done[:max_parts - 1], last + marker]


def discord_payload(alert: Alert, username: str | None = "alphatrade_lab") -> dict[str, Any]:
    """A Discord webhook body: one embed within Discord's limits."""
    lim = DISCORD_LIMITS
    title = _cut(f"{alert.level.emoji} {alert.title}", lim["title"])
    description = alert.message
    if alert.repeat_count > 1:
        description += f"\n_(repeated {alert.repeat_count} times)_"
    description = _cut(description, lim["description"])
    footer = _cut(f"alphatrade_lab \u00b7 {alert.level.name}", lim["footer"])
    items = list(alert.data.items())
    fields: list[dict[str, Any]] = [
        {"name": _cut(str(k), lim["field_name"]) or "-",
         "value": _cut(_value_text(v), lim["field_value"]) or "-",
         "inline": len(_value_text(v)) <= 40}
        for k, v in items[:lim["fields"]]]
    if len(items) > lim["fields"]:
        fields[-1] = {"name": "\u2026", "value": f"{len(items) - lim['fields'] + 1} more",
                      "inline": False}

    sizes = [utf16_len(f["name"]) + utf16_len(f["value"]) for f in fields]
    fixed = utf16_len(title) + utf16_len(footer)
    total = fixed + utf16_len(description) + sum(sizes)
    while total > lim["total"] and fields:
        fields.pop()
        total -= sizes.pop()
    if total > lim["total"]:
        description = _cut(description, lim["total"] - fixed)
    embed = {"title": title, "description": description, "color": alert.level.color,
             "fields": fields, "footer": {"text": footer}, "timestamp": alert.ts.isoformat()}
    body: dict[str, Any] = {"embeds": [embed], "allowed_mentions": {"parse": []}}
    if username:
        body["username"] = username
    return body


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """The generic webhook's JSON body (:meth:`Alert.to_dict`)."""
    return alert.to_dict()
