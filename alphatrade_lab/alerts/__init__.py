"""Alerts: levels, message formats, sinks (Telegram, Discord, webhook, log), manager.

>>> from alphatrade_lab.alerts import AlertManager, AlertLevel
>>> manager = AlertManager.from_env({})          # only the log sink
>>> manager.send(AlertLevel.INFO, "hello", "from a doctest").delivered
['log']
>>> manager.close()
"""

from alphatrade_lab.alerts.formatting import (
    discord_payload,
    escape_markdown_v2,
    format_text,
    telegram_messages,
    webhook_payload,
)
from alphatrade_lab.alerts.manager import AlertManager, AlertResult
from alphatrade_lab.alerts.sinks import (
    AlertDeliveryError,
    CircuitBreaker,
    DiscordAlerter,
    LogAlerter,
    RateLimiter,
    Sink,
    TelegramAlerter,
    WebhookAlerter,
    scrub,
)
from alphatrade_lab.events import Alert, AlertLevel

__all__ = [
    "Alert",
    "AlertDeliveryError",
    "AlertLevel",
    "AlertManager",
    "AlertResult",
    "CircuitBreaker",
    "DiscordAlerter",
    "LogAlerter",
    "RateLimiter",
    "Sink",
    "TelegramAlerter",
    "WebhookAlerter",
    "discord_payload",
    "escape_markdown_v2",
    "format_text",
    "scrub",
    "telegram_messages",
    "webhook_payload",
]
