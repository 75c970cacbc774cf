"""Liveness and readiness probes (no auth)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import OrchestratorDep
from api.schemas import Health
from core.db import get_engine

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


def _database_ok() -> bool:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(orchestrator: OrchestratorDep) -> JSONResponse:
    database = await run_in_threadpool(_database_ok)
    prefect = await orchestrator.healthy()
    body = Health(
        status="ok" if database and prefect else "unavailable", database=database, prefect=prefect
    )
    return JSONResponse(body.model_dump(), status_code=200 if database and prefect else 503)
