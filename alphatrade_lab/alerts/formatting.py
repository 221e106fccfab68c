"""Turn an :class:`~alphatrade_lab.alerts.Alert` into each service's message format.

* Telegram: MarkdownV2, where ``_ * [ ] ( ) ~ ` > # + - = | { } . !`` and ``\\`` must
  all be escaped (plain Markdown breaks on the ``_`` in ``BTC_USDT`` and the ``.`` and
  ``-`` in numbers); a message holds at most 4096 characters, so long alerts are split
  on line breaks (never inside an escape) into a few messages, then truncated.
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

from alphatrade_lab.alerts.levels import Alert

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


def _cut(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` UTF-16 units, ending in an ellipsis if cut."""
    if utf16_len(text) <= limit:
        return text
    out = text[:limit]
    while utf16_len(out) > limit - 1:
        out = out[:-1]
    return out + _ELLIPSIS


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


def _safe_split(line: str, limit: int) -> list[str]:
    """Split an escaped line into pieces of at most ``limit`` UTF-16 units, never
    between a backslash and the character it escapes."""
    pieces = []
    while utf16_len(line) > limit:
        cut = min(len(line), limit)
        while utf16_len(line[:cut]) > limit:
            cut -= 1
        # count trailing backslashes: an odd number means we would split an escape
        n = 0
        while n < cut and line[cut - 1 - n] == "\\":
            n += 1
        if n % 2 == 1:
            cut -= 1
        pieces.append(line[:cut])
        line = line[cut:]
    pieces.append(line)
    return pieces


def telegram_messages(alert: Alert, limit: int = TELEGRAM_LIMIT,
                      max_parts: int = 4) -> list[str]:
    """MarkdownV2 messages for one alert: a bold header, the message, then the data.

    Text longer than ``limit`` is split on line breaks into at most ``max_parts``
    messages; what is left after that is dropped and marked ``(truncated)``.
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
                chunks.append(current)  # break at the line end when the line fits alone
                current = ""
                continue
            piece = _safe_split(rest, room)[0]  # a long line: fill this message first
            current += sep + piece
            rest = rest[len(piece):]
            chunks.append(current)
            current = ""
    chunks.append(current)
    if len(chunks) > max_parts:
        last = chunks[max_parts - 1]
        room = limit - utf16_len(marker)
        last = _safe_split(last, room)[0] if utf16_len(last) > room else last
        chunks = [*chunks[:max_parts - 1], last + marker]
    return chunks


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
    fields = [{"name": _cut(str(k), lim["field_name"]) or "-",
               "value": _cut(_value_text(v), lim["field_value"]) or "-",
               "inline": len(_value_text(v)) <= 40}
              for k, v in items[:lim["fields"]]]
    if len(items) > lim["fields"]:
        fields[-1] = {"name": "\u2026", "value": f"{len(items) - lim['fields'] + 1} more",
                      "inline": False}

    def total() -> int:
        return (utf16_len(title) + utf16_len(description) + utf16_len(footer)
                + sum(utf16_len(f["name"]) + utf16_len(f["value"]) for f in fields))

    while total() > lim["total"] and fields:
        fields.pop()
    if total() > lim["total"]:
        description = _cut(description, lim["total"] - (total() - utf16_len(description)))
    embed = {"title": title, "description": description, "color": alert.level.color,
             "fields": fields, "footer": {"text": footer}, "timestamp": alert.ts.isoformat()}
    body: dict[str, Any] = {"embeds": [embed], "allowed_mentions": {"parse": []}}
    if username:
        body["username"] = username
    return body


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """The generic webhook's JSON body (:meth:`Alert.to_dict`)."""
    return alert.to_dict()
