"""events.watch / channels.stop and the webhook POSTs Google sends."""

from __future__ import annotations

from typing import Any

import pytest
from googleapiclient.errors import HttpError

from tests.emulator.conftest import Emulator, Receiver

CAL = "ada@example.com"


def _watch(api: Any, receiver: Receiver, channel_id: str = "chan-1") -> dict[str, Any]:
    return (
        api.events()
        .watch(
            calendarId="primary",
            body={"id": channel_id, "type": "web_hook", "address": receiver.url, "token": "secret"},
        )
        .execute()
    )


def test_watch_confirms_with_sync_then_reports_changes(
    emulator: Emulator, api: Any, receiver: Receiver
) -> None:
    channel = _watch(api, receiver)
    assert channel["kind"] == "api#channel" and channel["id"] == "chan-1"
    assert channel["token"] == "secret" and int(channel["expiration"]) > 0

    emulator.control(
        "POST",
        f"/google/calendars/{CAL}/events",
        json={"summary": "x", "start": {"date": "2030-01-01"}, "end": {"date": "2030-01-02"}},
    )

    # Google numbers a channel's messages but does not promise their arrival order.
    sync, exists = sorted(receiver.wait_for(2), key=lambda h: int(h["x-goog-message-number"]))
    assert sync["x-goog-resource-state"] == "sync" and sync["x-goog-message-number"] == "1"
    assert exists["x-goog-resource-state"] == "exists" and exists["x-goog-message-number"] == "2"
    assert exists["x-goog-channel-id"] == "chan-1"
    assert exists["x-goog-channel-token"] == "secret"
    assert exists["x-goog-resource-id"] == channel["resourceId"]
    assert exists["x-goog-resource-uri"] == channel["resourceUri"]
    assert exists["x-goog-channel-expiration"].endswith("GMT")


def test_resource_id_is_stable_and_duplicate_channel_ids_are_rejected(
    api: Any, receiver: Receiver
) -> None:
    first = _watch(api, receiver, "a")
    second = _watch(api, receiver, "b")
    assert first["resourceId"] == second["resourceId"]
    with pytest.raises(HttpError) as caught:
        _watch(api, receiver, "a")
    assert caught.value.resp.status == 400


def test_stopped_channels_get_nothing_and_cannot_be_stopped_twice(
    emulator: Emulator, api: Any, receiver: Receiver
) -> None:
    channel = _watch(api, receiver)
    receiver.wait_for(1)
    api.channels().stop(body={"id": channel["id"], "resourceId": channel["resourceId"]}).execute()

    emulator.control(
        "POST",
        f"/google/calendars/{CAL}/events",
        json={"summary": "x", "start": {"date": "2030-01-01"}, "end": {"date": "2030-01-02"}},
    )

    with pytest.raises(HttpError) as caught:
        api.channels().stop(
            body={"id": channel["id"], "resourceId": channel["resourceId"]}
        ).execute()
    assert caught.value.resp.status == 404
    assert emulator.control("GET", "/google/channels")[0]["stopped"] is True
    assert len(receiver.wait_for(2, timeout=0.3)) == 1


def test_notify_delivers_forged_and_duplicate_notifications_synchronously(
    emulator: Emulator, api: Any, receiver: Receiver
) -> None:
    emulator.control("POST", "/google/settings", json={"auto_notify": False})
    _watch(api, receiver)
    receiver.status = 403

    result = emulator.control(
        "POST",
        "/google/notify",
        json={
            "channel_id": "chan-1",
            "times": 2,
            "headers": {"X-Goog-Channel-Token": "forged", "X-Goog-Message-Number": "1"},
        },
    )

    assert result == {"delivered": 2, "statuses": [403, 403]}
    received = receiver.received
    assert [r["x-goog-channel-token"] for r in received] == ["forged", "forged"]
    assert [r["x-goog-message-number"] for r in received] == ["1", "1"]
    assert all(r["x-goog-resource-state"] == "exists" for r in received)
