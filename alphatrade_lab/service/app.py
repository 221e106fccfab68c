"""The service: REST, WebSocket, the dashboard page and Prometheus metrics in one FastAPI app.

``create_app(store, bus=None, bundle=None)`` builds it; ``alphatrade-lab serve`` runs it
under uvicorn. With ``redis_url=`` (or a :class:`~alphatrade_lab.service.redis_source.RedisSource`
as ``source=``) the live events come from the engine's Redis stream instead of an
in-process bus: the app's lifespan starts the reader before the WebSocket hub and stops it
after. Each part is a router of its own module: :mod:`.rest` (``/api/...``),
:mod:`.ws` (``/ws``), :mod:`.pages` (``/`` and its static files) and :mod:`.metrics`
(``/metrics``); they share :class:`~alphatrade_lab.service.state.ServiceState` on
``app.state.lab``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from alphatrade_lab.service import metrics, pages, rest, ws
from alphatrade_lab.service.security import check_token
from alphatrade_lab.service.state import ServiceState

__all__ = ["create_app"]

_OPEN_PATHS = ("/api/health",)  # a container's health check carries no token


def create_app(store: Any, bus: Any = None, bundle: Any = None, *, token: str | None = None,
               cors_origins: tuple[str, ...] = (), redis_url: str | None = None,
               source: Any = None, ready_timeout: float = 3.0) -> FastAPI:
    """The service's ASGI app.

    Parameters
    ----------
    store
        A :class:`~alphatrade_lab.store.LabStore` (or a path to one, opened read-only).
    bus
        The live engine's :class:`~alphatrade_lab.live.EventBus` (None: no live updates).
    bundle
        A model bundle (or a path to an exported one) for ``POST /api/score``.
    token
        The token every request must carry (see :mod:`alphatrade_lab.service.security`);
        None: no check (bind to 127.0.0.1 only).
    cors_origins
        Origins allowed to call the API from a browser (none by default: CORS closed).
    redis_url
        Read the engine's events from this Redis server (see
        :mod:`alphatrade_lab.service.redis_source`) into ``bus`` (a new bus when None).
    source
        A :class:`~alphatrade_lab.service.redis_source.RedisSource` to use instead (its
        bus is the service's).
    ready_timeout
        Seconds the startup waits for the source's first connection and history (Redis
        away: the service starts anyway and connects when it can).
    """
    from alphatrade_lab.models import ModelBundle, load_bundle
    from alphatrade_lab.store import LabStore

    if not isinstance(store, LabStore):
        store = LabStore(store, read_only=True)
    if bundle is not None and not isinstance(bundle, ModelBundle):
        bundle = load_bundle(bundle)
    if redis_url is not None and source is None:
        from alphatrade_lab.service.redis_source import RedisSource

        source = RedisSource(redis_url, bus)
    if source is not None:
        bus = source.bus
    app = FastAPI(title="alphatrade_lab", summary="Runs, trades, drift and live events of the "
                  "lab store and the live engine", docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None,
                  lifespan=None if source is None else _source_lifespan(source, ready_timeout))
    app.state.lab = ServiceState(store, bus, bundle, token)
    if source is not None:
        app.state.lab.extra["redis"] = source

    @app.middleware("http")
    async def _auth(request: Request, call_next: Any) -> Any:
        expected = request.app.state.lab.token
        if expected and request.url.path not in _OPEN_PATHS and not check_token(
                expected, request.headers, request.query_params):
            return JSONResponse({"detail": "missing or wrong API token"}, status_code=401)
        return await call_next(request)

    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization",
                                                                         "Content-Type"])
    for module in (rest, metrics, ws, pages):
        app.include_router(module.router)
        setup = getattr(module, "setup", None)  # per-app state (metrics registry, bus hooks)
        if setup is not None:
            setup(app)
    return app


def _source_lifespan(source: Any, ready_timeout: float) -> Any:
    """Start ``source`` and wait for its history before the routers' lifespans (the hub
    then takes the history as its state); stop it after them."""
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        source.start()
        await asyncio.get_running_loop().run_in_executor(None, source.ready.wait,
                                                         ready_timeout)
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, source.stop)

    return lifespan
