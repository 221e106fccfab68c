"""Plain value types that every layer may build: :class:`AlertLevel` and :class:`Alert`.

Risk and monitoring decide what deserves an alert and build ``Alert`` records;
:mod:`alphatrade_lab.alerts`, a layer above them, formats and delivers them
(:class:`AlertDispatcher` is what they hand them to).

>>> AlertLevel.parse("warning") < AlertLevel.CRITICAL
True
>>> a = Alert(AlertLevel.WARNING, "Risk Alert: max_drawdown", "12.34%", {"symbol": "AAA"})
>>> a.key() == Alert("warning", "Risk Alert: max_drawdown", "12.34%", {"symbol": "AAA"}).key()
True
"""

from __future__ import annotations

import concurrent.futures
import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from alphatrade_lab.redact import redact

__all__ = ["Alert", "AlertDispatcher", "AlertLevel"]


class AlertLevel(enum.IntEnum):
    """How urgent an alert is; ordered, so ``level >= sink.min_level`` filters."""

    INFO = 10
    WARNING = 20
    CRITICAL = 30
    EMERGENCY = 40

    @classmethod
    def parse(cls, value: Any) -> AlertLevel:
        """A level from a member, its name (any case) or its number.

        >>> AlertLevel.parse("Critical"), AlertLevel.parse(40)
        (<AlertLevel.CRITICAL: 30>, <AlertLevel.EMERGENCY: 40>)
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        elif isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                pass
        names = ", ".join(m.name.lower() for m in cls)
        raise ValueError(f"unknown alert level {value!r}; expected one of {names}")

    @property
    def emoji(self) -> str:
        """A marker for chat messages."""
        return {10: "\u2139\ufe0f", 20: "\u26a0\ufe0f", 30: "\U0001f6a8", 40: "\U0001f198"}[
            int(self)]

    @property
    def color(self) -> int:
        """Discord embed colour (24-bit RGB): blue, amber, red, dark red."""
        return {10: 0x3498DB, 20: 0xF1C40F, 30: 0xE74C3C, 40: 0x8B0000}[int(self)]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


@dataclass
class Alert:
    """One alert: level, title, message and a flat dict of data (JSON-able values).

    ``ts`` defaults to now (UTC); ``repeat_count`` is set by the manager when identical
    alerts were folded into this one.
    """

    level: AlertLevel
    title: str
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    ts: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now(tz="UTC"))
    repeat_count: int = 1

    def __post_init__(self) -> None:
        self.level = AlertLevel.parse(self.level)
        self.title = str(self.title)
        self.message = "" if self.message is None else str(self.message)
        self.data = _jsonable(dict(self.data or {}))
        ts = pd.Timestamp(self.ts)
        self.ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")

    def __repr__(self) -> str:
        # an alert's text and data are free-form: a secret in them must not reach a log
        return redact(f"Alert(level={self.level!r}, title={self.title!r}, "
                      f"message={self.message!r}, data={self.data!r}, ts={self.ts!r}, "
                      f"repeat_count={self.repeat_count})")

    def key(self) -> str:
        """What makes two alerts identical (level, title, message, data)."""
        return json.dumps([int(self.level), self.title, self.message, self.data],
                          sort_keys=True, default=str)

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON-able values (the generic webhook's body)."""
        return {"level": self.level.name.lower(), "title": self.title,
                "message": self.message, "data": self.data, "ts": self.ts.isoformat(),
                "repeat_count": self.repeat_count}


class AlertDispatcher(Protocol):
    """What delivers alerts: :class:`~alphatrade_lab.alerts.AlertManager` is one. The
    layers below the alert layer take one of these instead of importing it."""

    def submit(self, level: Any, title: str | None = None, message: str = "",
               data: Mapping[str, Any] | None = None, *,
               deadline: float | None | str = "default") -> concurrent.futures.Future:
        """Hand an alert over without waiting."""
        ...

    def send_many(self, alerts: Iterable[Alert], *,
                  deadline: float | None | str = "default") -> list[Any]:
        """Deliver alerts, blocking; one result each."""
        ...
