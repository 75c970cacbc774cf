"""The FastAPI app: `create_app()` wires routes, the orchestrator's lifetime, CORS and errors.

Each uvicorn worker process (`CALSYNC_API_WORKERS`) builds its own app and is a replica like
any other: its own Prefect client and caches (answers only ever come from Prefect or the
database, so two workers never disagree for longer than a cache entry lives), its own
subscription to Prefect's event stream (so a live stream on one worker sees runs started through
another: tests/api/test_api_workers.py), its own per-user limits (N workers, up to N times the
budget: README), and its own owed-start and reconciler loops, idempotent across replicas
(api/owed_starts.py, api/run_reconciler.py).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import TokenVerifier
from api.body_limit import BodyLimit, document_body_limit
from api.bound_database import BoundDatabase
from api.catch_all import CatchAll
from api.errors import ErrorCode, error_response, http_error, refused
from api.limits import UserLimits
from api.live_hub import LiveHub
from api.openapi_contract import install_contract, operation_id
from api.orchestrator import Orchestrator, OrchestratorUnavailable
from api.owed_starts import start_owed
from api.periodic import every
from api.request_context import REQUEST_ID_HEADER, RequestContextMiddleware
from api.routes import (
    calendars,
    connections,
    events,
    health,
    linear,
    stream_tickets,
    sync_runs,
    webhooks,
)
from api.routes import metrics as metrics_route
from api.routes import settings as user_settings
from api.routes.demo_page import router as demo_page_router
from api.routes.sync_streams import router as sync_streams_router
from api.run_ownership import RunOwnership
from api.run_reconciler import RunReconciler
from core.db import current_engine, engine_bound
from core.db_errors import database_unavailable
from core.errors import RequestRefused, SyncError
from core.log_config import configure_logging
from core.settings import get_settings, settings_or_exit

logger = logging.getLogger(__name__)

PREFECT_DOWN = "The sync service is temporarily unavailable. Try again in a moment."
DATABASE_DOWN = "The service is temporarily unavailable. Try again in a moment."
DATABASE_RETRY_AFTER_S = 5
# How much of a rejected value a 422 echoes back: enough to recognise it, never the whole body.
MAX_ECHOED_INPUT = 100


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The loops and tasks started here work on the app's own database (api/bound_database.py).
    with engine_bound(app.state.engine):
        async with _running(app):
            yield


@asynccontextmanager
async def _running(app: FastAPI) -> AsyncIterator[None]:
    orchestrator = Orchestrator(
        api_url=app.state.prefect_api_url, events_api_url=app.state.prefect_events_url
    )
    await orchestrator.start()
    app.state.orchestrator = orchestrator
    app.state.ownership = RunOwnership()
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
    return error_response(503, PREFECT_DOWN, ErrorCode.PREFECT_UNAVAILABLE)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The app database away or overloaded: 503, retry shortly. Any other database error is a
    bug: re-raised for the catch-all's logged 500 (api/catch_all.py)."""
    if not database_unavailable(exc):
        raise exc
    cause = getattr(exc, "orig", None) or exc
    # The type only: a driver's message may quote the statement's parameters.
    logger.warning(
        "app database unavailable on %s %s: %s", request.method, request.url.path, type(cause)
    )
    return error_response(
        503,
        DATABASE_DOWN,
        ErrorCode.UNAVAILABLE,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


async def _provider_error(request: Request, exc: Exception) -> JSONResponse:
    message = exc.user_message if isinstance(exc, SyncError) else "request failed"
    return error_response(502, message, ErrorCode.PROVIDER_ERROR)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 (a list of errors with `loc`, `msg`, `type`), with each `input` cut short."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {**error, "input": _short(error["input"])} if "input" in error else error
        for error in exc.errors()
    ]
    # ASCII JSON: a rejected body may hold what UTF-8 cannot encode (a lone surrogate).
    body = json.dumps(
        {"detail": jsonable_encoder(errors), "code": ErrorCode.INVALID_REQUEST.value},
        ensure_ascii=True,
        default=str,
    )
    return Response(body, status_code=422, media_type="application/json")


def _short(value: Any) -> Any:
    """A scalar as it is; a string, or the JSON of anything else, cut to MAX_ECHOED_INPUT."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else _json_text(value)
    return text if len(text) <= MAX_ECHOED_INPUT else text[:MAX_ECHOED_INPUT] + "…"


def _json_text(value: Any) -> str:
    # Not orjson: a fuzzed body can hold integers past 64 bits.
    return json.dumps(jsonable_encoder(value), ensure_ascii=False, default=str)


def create_app(prefect_api_url: str | None = None) -> FastAPI:
    """The app; `prefect_api_url` overrides PREFECT_API_URL (tests point it at a dead server).

    A bad setting stops start-up with one line naming it (exit code 2)."""
    settings = settings_or_exit("api")
    configure_logging("api")
    app = FastAPI(
        title="calsync API",
        version="1.0.0",
        description="Sync Google calendars and Linear issues; start runs and follow their status.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.token_verifier = TokenVerifier(settings)
    app.state.limits = UserLimits(settings)
    app.state.prefect_api_url = prefect_api_url
    # The database this app works on for its whole life (no connection is made here).
    app.state.engine = current_engine()
    # Where the events websocket is, when not beside the API (tests point it at a dead port).
    app.state.prefect_events_url = None
    if not settings.push_enabled:
        logger.info(
            "CALSYNC_PUBLIC_BASE_URL is not set: Google push notifications are off; the fallback "
            "sweep every %d s keeps calendars fresh",
            settings.fallback_sync_interval_s,
        )
    # Added innermost first: CORS wraps the 413s and 500s too, so browsers can read them.
    app.add_middleware(BoundDatabase, engine=app.state.engine)
    app.add_middleware(CatchAll)
    app.add_middleware(BodyLimit)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", REQUEST_ID_HEADER],
            expose_headers=["Retry-After", "WWW-Authenticate", REQUEST_ID_HEADER],
        )
    # Added last, so outermost: every answer (CORS preflights too) gets an ID, a log line and
    # its metrics.
    app.add_middleware(RequestContextMiddleware)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(OrchestratorUnavailable, _orchestrator_unavailable)
    app.add_exception_handler(SyncError, _provider_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(RequestRefused, refused)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    routers = (health, calendars, sync_runs, events, connections, user_settings, linear, webhooks)
    for module in routers:
        app.include_router(module.router)
    app.include_router(demo_page_router)
    app.include_router(sync_streams_router)
    app.include_router(stream_tickets.router)
    app.include_router(metrics_route.router)
    install_contract(app)
    document_body_limit(app)
    # Everything imported so far (Prefect, SQLAlchemy, pydantic: ~10^6 objects) lives as long as
    # the process: keep it out of the collector's full passes, which big pages trigger.
    gc.freeze()
    return app
