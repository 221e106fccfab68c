"""The live monitoring service: a FastAPI app with REST, WebSocket updates, the dashboard
page and Prometheus metrics, over the lab store and the live engine's event bus."""

from alphatrade_lab.service.app import create_app
from alphatrade_lab.service.state import ServiceState

__all__ = ["ServiceState", "create_app"]
