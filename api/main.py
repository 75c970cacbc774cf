"""The FastAPI app: `create_app()` wires routes, the orchestrator's lifetime, CORS and errors."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from api.auth import TokenVerifier
from api.live import LiveHub
from api.orchestrator import Orchestrator, OrchestratorUnavailable
from api.owed_starts import start_owed
from api.periodic import every
from api.routes import calendars, connections, events, health, linear, sync_runs, webhooks
from api.routes import settings as user_settings
from api.routes.demo_page import router as demo_page_router
from api.routes.live import router as live_router
from api.run_reconciler import RunReconciler
from core.errors import SyncError
from core.settings import get_settings

logger = logging.getLogger(__name__)

PREFECT_DOWN = "The sync service is temporarily unavailable. Try again in a moment."


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    orchestrator = Orchestrator(
        api_url=app.state.prefect_api_url, events_api_url=app.state.prefect_events_url
    )
    await orchestrator.start()
    app.state.orchestrator = orchestrator
    # One subscription to Prefect's event stream for every live stream this process serves.
    hub = LiveHub(orchestrator)
    await hub.start()
    app.state.live = hub
    settings = get_settings()
    reconciler = RunReconciler(orchestrator, settings.stuck_run_after_s)
    interval = settings.start_retry_interval_s
    keepers = [
        asyncio.create_task(every(interval, "owed starts", lambda: start_owed(orchestrator))),
        asyncio.create_task(every(interval, "run reconciler", reconciler.reconcile)),
    ]
    try:
        yield
    finally:
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        await hub.close()
        await orchestrator.close()


async def _orchestrator_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("orchestrator unavailable on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": PREFECT_DOWN}, status_code=503)


async def _provider_error(request: Request, exc: Exception) -> JSONResponse:
    message = exc.user_message if isinstance(exc, SyncError) else "request failed"
    return JSONResponse({"detail": message}, status_code=502)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "Internal error. It has been logged."}, status_code=500)


def create_app(prefect_api_url: str | None = None) -> FastAPI:
    """The app; `prefect_api_url` overrides PREFECT_API_URL (tests point it at a dead server)."""
    settings = get_settings()
    app = FastAPI(
        title="calsync API",
        version="1.0.0",
        description="Sync Google calendars and Linear issues; start runs and follow their status.",
        lifespan=lifespan,
    )
    app.state.token_verifier = TokenVerifier(settings)
    app.state.prefect_api_url = prefect_api_url
    # Where the events websocket is, when not beside the API (tests point it at a dead port).
    app.state.prefect_events_url = None
    if not settings.push_enabled:
        logger.info(
            "CALSYNC_PUBLIC_BASE_URL is not set: Google push notifications are off; the fallback "
            "sweep every %d minutes keeps calendars fresh",
            settings.fallback_sync_interval_minutes,
        )
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    app.add_exception_handler(OrchestratorUnavailable, _orchestrator_unavailable)
    app.add_exception_handler(SyncError, _provider_error)
    app.add_exception_handler(Exception, _unexpected)
    routers = (health, calendars, sync_runs, events, connections, user_settings, linear, webhooks)
    for module in routers:
        app.include_router(module.router)
    app.include_router(demo_page_router)
    app.include_router(live_router)
    # Everything imported so far (Prefect, SQLAlchemy, pydantic: ~10^6 objects) lives as long as
    # the process: keep it out of the collector's full passes, which big pages trigger.
    gc.freeze()
    return app
