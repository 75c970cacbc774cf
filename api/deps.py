"""FastAPI dependencies: a database session, the current user, the orchestrator, the live hub."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.auth import CurrentUser
from api.live_hub import LiveHub
from api.orchestrator import Orchestrator
from api.run_ownership import RunOwnership
from api.schemas import ErrorBody
from core.db import session_factory

# Errors are JSON on every route, event streams included (a `model` would take the route's
# media type); ErrorBody is in the schema through the routes that name it as their model.
JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
# What any route taking CurrentUser can answer before it runs; its router documents them.
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "The bearer token is missing, expired or invalid.", "content": JSON_ERROR},
    503: {"description": "The token's signing keys cannot be fetched now.", "content": JSON_ERROR},
}
# Routes that start syncs answer 503 while Prefect does not (the request stays owed).
START_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "The orchestrator is unreachable."}
}
# FastAPI's own answer to a body it cannot decode (not UTF-8): routes taking a body document it.
UNREADABLE_BODY: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body could not be read (it is not UTF-8).", "content": JSON_ERROR},
}


def get_db() -> Iterator[Session]:
    with session_factory()() as session:
        yield session


# Async, though they only read app state: FastAPI runs a plain `def` dependency in its thread
# pool, a thread hop per request that cost the status route more than its own work.
async def get_orchestrator(request: Request) -> Orchestrator:
    return request.app.state.orchestrator  # type: ignore[no-any-return]


async def get_ownership(request: Request) -> RunOwnership:
    return request.app.state.ownership  # type: ignore[no-any-return]


async def get_live_hub(request: Request) -> LiveHub:
    return request.app.state.live  # type: ignore[no-any-return]


SessionDep = Annotated[Session, Depends(get_db)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
OwnershipDep = Annotated[RunOwnership, Depends(get_ownership)]
LiveHubDep = Annotated[LiveHub, Depends(get_live_hub)]

__all__ = [
    "AUTH_ERRORS",
    "JSON_ERROR",
    "START_UNAVAILABLE",
    "UNREADABLE_BODY",
    "CurrentUser",
    "LiveHubDep",
    "OrchestratorDep",
    "SessionDep",
]
