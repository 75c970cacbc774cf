"""Sweep fixtures: each test's sweep only sees the calendars the test adds."""

from __future__ import annotations

import pytest

from tests.support.push import disable_all_calendars


@pytest.fixture(autouse=True)
def only_new_calendars(runner: None) -> None:
    disable_all_calendars()
