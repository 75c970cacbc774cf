"""Opening and closing push channels against the emulator's `events.watch` / `channels.stop`."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import pytest
from pydantic import ValidationError

from core.db import utcnow
from core.push_channels import GOOGLE_WEBHOOK_PATH, close_channel, open_channel
from core.settings import Settings
from tests.support.push import new_calendar

pytestmark = pytest.mark.integration


def channels_of(google, calendar_id: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [c for c in google.channels() if c["calendar_id"] == calendar_id]


def test_open_channel_persists_a_fresh_hashed_secret_and_watches(
    google, push_settings, api_url
) -> None:
    first, second = new_calendar(google), new_calendar(google)

    assert open_channel(first.row_id, settings=push_settings)
    assert open_channel(second.row_id, settings=push_settings)
    assert open_channel(first.row_id, settings=push_settings)  # already has one: no new channel

    [channel] = channels_of(google, first.calendar["id"])
    row = first.row()
    assert row.channel_id == channel["id"] and not channel["stopped"]
    assert channel["address"] == f"{api_url}{GOOGLE_WEBHOOK_PATH}"
    assert row.channel_token == hashlib.sha256(channel["token"].encode()).hexdigest()
    assert channel["token"] not in (row.channel_token or "")
    assert row.channel_resource_id == channel["resource_id"]
    expected_expiry = utcnow() + timedelta(seconds=push_settings.push_channel_ttl_s)
    assert abs(row.channel_expires_at - expected_expiry) < timedelta(minutes=1)  # type: ignore[operator]
    [other] = channels_of(google, second.calendar["id"])
    assert other["token"] != channel["token"] and other["id"] != channel["id"]


def test_without_a_public_url_push_is_off_and_nothing_is_opened(google, database) -> None:
    calendar = new_calendar(google)

    assert not open_channel(calendar.row_id, settings=Settings(public_base_url=""))

    assert channels_of(google, calendar.calendar["id"]) == []
    assert calendar.row().channel_id is None


def test_the_public_url_must_be_https_except_on_localhost() -> None:
    with pytest.raises(ValidationError):
        Settings(public_base_url="http://calsync.example.com")
    assert Settings(public_base_url="https://calsync.example.com/").public_base_url == (
        "https://calsync.example.com"
    )
    assert Settings(public_base_url="http://127.0.0.1:8000").push_enabled
    assert not Settings(public_base_url="").push_enabled


def test_a_refused_watch_leaves_no_channel_behind(google, push_settings, caplog) -> None:
    calendar = new_calendar(google)
    google.fault(endpoint="events.watch", status=403, reason="forbidden", count=1)
    caplog.set_level(logging.WARNING, logger="core.push_channels")

    assert not open_channel(calendar.row_id, settings=push_settings)

    assert calendar.row().channel_id is None and calendar.row().channel_token is None
    assert "could not open a push channel" in caplog.text
    assert open_channel(calendar.row_id, settings=push_settings)  # the next attempt works


def test_closing_forgets_the_channel_then_stops_it_at_google(google, push_settings) -> None:
    calendar = new_calendar(google)
    assert open_channel(calendar.row_id, settings=push_settings)

    assert close_channel(calendar.row_id, settings=push_settings)

    [channel] = channels_of(google, calendar.calendar["id"])
    assert channel["stopped"]
    row = calendar.row()
    assert row.channel_id is row.channel_token is row.channel_resource_id is None
    assert not close_channel(calendar.row_id, settings=push_settings)
