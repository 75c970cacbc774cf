"""Push fixtures: settings whose public URL is the real API, and a calendar with a live channel."""

from __future__ import annotations

import pytest

from core.push_channels import open_channel
from core.settings import Settings, get_settings
from tests.support.google import GoogleEmulator
from tests.support.push import SeededCalendar, disable_all_calendars, new_calendar


@pytest.fixture
def push_settings(api_url: str) -> Settings:
    """The app's settings with push on: Google posts to the API this session serves."""
    return get_settings().model_copy(update={"public_base_url": api_url})


@pytest.fixture
def only_new_calendars(database: str) -> None:
    disable_all_calendars()


@pytest.fixture
def watched(runner: None, google: GoogleEmulator, push_settings: Settings) -> SeededCalendar:
    """A calendar (not synced yet) whose push channel is open."""
    calendar = new_calendar(google)
    assert open_channel(calendar.row_id, settings=push_settings)
    return calendar
