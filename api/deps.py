"""FastAPI dependencies: a database session, the current user, the orchestrator, the live hub."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.auth import CurrentUser
from api.live import LiveHub
from api.orchestrator import Orchestrator
from core.db import session_factory


def get_db() -> Iterator[Session]:
    with session_factory()() as session:
        yield session


def get_orchestrator(request: Request) -> Orchestrator:
    return request.app.state.orchestrator  # type: ignore[no-any-return]


def get_live_hub(request: Request) -> LiveHub:
    return request.app.state.live  # type: ignore[no-any-return]


SessionDep = Annotated[Session, Depends(get_db)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
LiveHubDep = Annotated[LiveHub, Depends(get_live_hub)]

__all__ = ["CurrentUser", "LiveHubDep", "OrchestratorDep", "SessionDep"]
