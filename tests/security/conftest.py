"""Fixtures of the security tests: a user who owns one of everything (tests/security/owners.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.owners import Owner, connect_owner


@pytest.fixture(scope="module")
def owner(api_url: str, emulator_url: str) -> Iterator[Owner]:
    owner = connect_owner(api_url, emulator_url)
    yield owner
    owner.api.http.close()
