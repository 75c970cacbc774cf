"""Fixtures for the connect/disconnect tests: the real app over HTTP, the emulator's Google and
Linear parts (Linear reset per test) and a client per test user."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.accounts.flows import Api
from tests.linear.support import LinearEmulator


@pytest.fixture
def linear(emulator_url: str) -> Iterator[LinearEmulator]:
    emulator = LinearEmulator(emulator_url)
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def api(api_url: str) -> Iterator[Callable[[str | None], Api]]:
    """`api()` is a new user's client; `api(user_id)` acts as that user."""
    clients: list[httpx.Client] = []

    def make(user_id: str | None = None) -> Api:
        client = Api.for_user(api_url, user_id)
        clients.append(client.http)
        return client

    yield make
    for client in clients:
        client.close()
