"""What the service's routes share: the store, the engine's event bus, the bundle, the
metrics registry and the security settings (one object, on ``app.state.lab``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ServiceState"]


@dataclass
class ServiceState:
    """``store``: a :class:`~alphatrade_lab.store.LabStore` (read through its readers);
    ``bus``: the engine's :class:`~alphatrade_lab.live.EventBus` or None; ``bundle``: the
    exported :class:`~alphatrade_lab.models.ModelBundle` ``POST /api/score`` uses, or None;
    ``token``: the API token checked on every request (None: only on 127.0.0.1 and without
    a check); ``extra``: what each route module keeps (its own key)."""

    store: Any
    bus: Any = None
    bundle: Any = None
    token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # the token never shows
        token = "set" if self.token else "none"
        return (f"ServiceState(store={self.store!r}, bus={'yes' if self.bus else 'no'}, "
                f"bundle={'yes' if self.bundle else 'no'}, token={token})")
