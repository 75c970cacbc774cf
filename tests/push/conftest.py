"""Push fixtures: settings whose public URL is the real API, and a calendar with a live channel."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from api.routes import webhooks
from core.log_throttle import ThrottledLog
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rejection_log(monkeypatch: pytest.MonkeyPatch) -> Callable[[], FakeClock]:
    """The webhook's rejection log starting afresh on a clock the test moves (earlier tests'
    rejections would otherwise still hold back this test's lines)."""
    clock = FakeClock()
    fresh = ThrottledLog(webhooks.logger, interval_s=60, clock=clock)
    monkeypatch.setattr(webhooks, "rejections", fresh)
    return lambda: clock
