"""Liveness and readiness probes (no auth)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import OrchestratorDep
from api.schemas import Health
from core.db import current_engine

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


def _database_ok() -> bool:
    try:
        with current_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(orchestrator: OrchestratorDep) -> JSONResponse:
    """Ready while the database answers. Prefect down is `degraded`, still 200: every read
    route works without it, and failing here would take every replica out of the balancer."""
    database = await run_in_threadpool(_database_ok)
    prefect = await orchestrator.healthy()
    state = "unavailable" if not database else "ok" if prefect else "degraded"
    body = Health(status=state, database=database, prefect=prefect)
    return JSONResponse(body.model_dump(), status_code=200 if database else 503)
