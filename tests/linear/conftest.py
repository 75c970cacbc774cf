"""Fixtures for the Linear tests: the session's emulator (Linear part reset per test), the
session's migrated database on each backend, and settings pointing the client at both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, session_factory
from tests.conftest import reset_caches
from tests.linear.support import LinearEmulator


@pytest.fixture
def linear(emulator_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[LinearEmulator]:
    monkeypatch.setenv("LINEAR_API_URL", f"{emulator_url}/linear/graphql")
    monkeypatch.setenv("LINEAR_OAUTH_TOKEN_URL", f"{emulator_url}/linear/oauth/token")
    monkeypatch.setenv("LINEAR_CLIENT_ID", "calsync-linear-test")
    monkeypatch.setenv("LINEAR_CLIENT_SECRET", "calsync-linear-secret")
    reset_caches()
    emulator = LinearEmulator(emulator_url)
    emulator.reset()
    yield emulator
    emulator.reset()
    monkeypatch.undo()
    reset_caches()


@pytest.fixture
def sessions(database: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def viewer(linear: LinearEmulator) -> dict[str, Any]:
    """A workspace and its user, with a personal API key and OAuth tokens."""
    workspace = linear.workspace()
    user = linear.user(workspace["id"], name="Ada Lovelace", oauth=True)
    return {"workspace": workspace, **user}
