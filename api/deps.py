"""FastAPI dependencies: a database session, the current user and the orchestrator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.auth import CurrentUser
from api.orchestrator import Orchestrator
from core.db import session_factory


def get_db() -> Iterator[Session]:
    with session_factory()() as session:
        yield session


def get_orchestrator(request: Request) -> Orchestrator:
    return request.app.state.orchestrator  # type: ignore[no-any-return]


SessionDep = Annotated[Session, Depends(get_db)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]

__all__ = ["CurrentUser", "OrchestratorDep", "SessionDep"]
