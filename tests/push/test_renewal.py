"""The renewal flow replaces channels before Google expires them, and stops the ones it replaces."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from core.db import utcnow
from core.push_channels import open_channel, renew_channel
from flows.channel_renewal import renew_calendar_channels
from tests.conftest import reset_caches
from tests.support.push import new_calendar

pytestmark = pytest.mark.integration


@pytest.fixture
def push_env(monkeypatch, api_url, only_new_calendars):  # type: ignore[no-untyped-def]
    """The flow reads the process's settings: turn push on for its run, back off afterwards."""
    monkeypatch.setenv("CALSYNC_PUBLIC_BASE_URL", api_url)
    reset_caches()
    yield
    monkeypatch.delenv("CALSYNC_PUBLIC_BASE_URL")
    reset_caches()


def by_id(google) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return {c["id"]: c for c in google.channels()}


def test_renewal_replaces_expiring_channels_stops_the_old_and_keeps_fresh_ones(
    google, push_settings, push_env
) -> None:
    expiring, fresh, disabled, missing = (new_calendar(google, events=0) for _ in range(4))
    for calendar in (expiring, fresh, disabled):
        assert open_channel(calendar.row_id, settings=push_settings)
    expiring.update(channel_expires_at=utcnow() + timedelta(hours=47))
    disabled.update(enabled=False)
    before = {c.row_id: c.row() for c in (expiring, fresh, disabled)}

    result = renew_calendar_channels()

    # Earlier tests' channels are on calendars the fixture disabled: those are closed too.
    assert (result["due"], result["renewed"]) == (2, 2) and result["closed"] >= 1
    channels = by_id(google)
    old, new = before[expiring.row_id], expiring.row()
    assert new.channel_id != old.channel_id and new.channel_token != old.channel_token
    assert channels[old.channel_id]["stopped"] and not channels[new.channel_id]["stopped"]
    assert new.channel_expires_at > utcnow() + timedelta(days=6)  # type: ignore[operator]
    assert fresh.row().channel_id == before[fresh.row_id].channel_id
    assert not channels[fresh.row().channel_id]["stopped"]  # type: ignore[index]
    assert disabled.row().channel_id is None
    assert channels[before[disabled.row_id].channel_id]["stopped"]
    assert not channels[missing.row().channel_id]["stopped"]  # type: ignore[index]


def test_two_renewals_racing_create_one_channel(google, push_settings) -> None:
    calendar = new_calendar(google, events=0)
    assert open_channel(calendar.row_id, settings=push_settings)
    old = calendar.row().channel_id
    calendar.update(channel_expires_at=utcnow() + timedelta(hours=1))
    renew_before = utcnow() + timedelta(hours=48)

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(
            pool.map(
                lambda _: renew_channel(
                    calendar.row_id, renew_before=renew_before, settings=push_settings
                ),
                range(4),
            )
        )

    channels = [c for c in google.channels() if c["calendar_id"] == calendar.calendar["id"]]
    live = [c for c in channels if not c["stopped"]]
    assert len(channels) == 2 and len(live) == 1, channels
    assert live[0]["id"] == calendar.row().channel_id != old
    assert any(outcomes)
