"""events.list and calendarList.list through the real googleapiclient."""

from __future__ import annotations

from typing import Any

import pytest
from googleapiclient.errors import HttpError

from tests.emulator.conftest import Emulator
from tests.emulator.paging import list_all

CAL = "ada@example.com"


def _event(summary: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "start": {"dateTime": start}, "end": {"dateTime": end}, **extra}


def _add(emulator: Emulator, body: dict[str, Any], calendar_id: str = CAL) -> dict[str, Any]:
    return emulator.control("POST", f"/google/calendars/{calendar_id}/events", json=body)


def test_pages_carry_next_page_token_and_only_the_last_has_next_sync_token(
    emulator: Emulator, api: Any
) -> None:
    emulator.control("POST", f"/google/calendars/{CAL}/events/bulk", json={"count": 25})

    items, pages = list_all(api.events().list, calendarId="primary", maxResults=10)

    assert [len(p["items"]) for p in pages] == [10, 10, 5]
    assert all("nextPageToken" in p and "nextSyncToken" not in p for p in pages[:-1])
    assert "nextSyncToken" in pages[-1] and "nextPageToken" not in pages[-1]
    assert len({item["id"] for item in items}) == 25
    first = pages[0]
    assert first["kind"] == "calendar#events" and first["accessRole"] == "owner"
    assert first["timeZone"] == "UTC" and first["defaultReminders"] == []
    event = items[0]
    assert event["kind"] == "calendar#event" and event["status"] == "confirmed"
    assert event["etag"].startswith('"') and event["updated"].endswith("Z")
    assert event["organizer"] == {"email": CAL, "self": True}
    assert event["eventType"] == "default" and "transparency" not in event


def test_incremental_sync_returns_changes_and_cancelled_stubs(emulator: Emulator, api: Any) -> None:
    kept = _add(emulator, _event("kept", "2030-01-01T10:00:00Z", "2030-01-01T11:00:00Z"))
    moved = _add(emulator, _event("moved", "2030-01-02T10:00:00Z", "2030-01-02T11:00:00Z"))
    gone = _add(emulator, _event("gone", "2030-01-03T10:00:00Z", "2030-01-03T11:00:00Z"))
    _, pages = list_all(api.events().list, calendarId="primary", singleEvents=True)
    token = pages[-1]["nextSyncToken"]

    updated = emulator.control(
        "PATCH", f"/google/calendars/{CAL}/events/{moved['id']}", json={"summary": "moved!"}
    )
    emulator.http.delete(f"/_control/google/calendars/{CAL}/events/{gone['id']}")
    added = _add(emulator, _event("new", "2030-01-04T10:00:00Z", "2030-01-04T11:00:00Z"))

    changes, pages = list_all(api.events().list, calendarId="primary", syncToken=token)
    by_id = {item["id"]: item for item in changes}
    assert set(by_id) == {moved["id"], gone["id"], added["id"]}
    assert kept["id"] not in by_id
    assert by_id[moved["id"]]["summary"] == "moved!"
    assert by_id[moved["id"]]["etag"] == updated["etag"] != moved["etag"]
    assert by_id[gone["id"]] == {
        "kind": "calendar#event",
        "etag": by_id[gone["id"]]["etag"],
        "id": gone["id"],
        "status": "cancelled",
    }
    again, _ = list_all(
        api.events().list, calendarId="primary", syncToken=pages[-1]["nextSyncToken"]
    )
    assert again == []
    full, _ = list_all(api.events().list, calendarId="primary")
    assert gone["id"] not in {item["id"] for item in full}
    with_deleted, _ = list_all(api.events().list, calendarId="primary", showDeleted=True)
    assert gone["id"] in {item["id"] for item in with_deleted}


def test_invalidated_or_garbage_sync_token_is_410_full_sync_required(
    emulator: Emulator, api: Any
) -> None:
    _, pages = list_all(api.events().list, calendarId="primary")
    token = pages[-1]["nextSyncToken"]
    emulator.control("POST", f"/google/calendars/{CAL}/invalidate-sync-tokens")

    for bad in (token, "garbage"):
        with pytest.raises(HttpError) as caught:
            api.events().list(calendarId="primary", syncToken=bad).execute()
        assert caught.value.resp.status == 410
        assert caught.value.error_details[0]["reason"] == "fullSyncRequired"


@pytest.mark.parametrize(
    "extra",
    [
        {"timeMin": "2030-01-01T00:00:00Z"},
        {"timeMax": "2030-01-01T00:00:00Z"},
        {"updatedMin": "2030-01-01T00:00:00Z"},
        {"orderBy": "updated"},
        {"iCalUID": "x@google.com"},
        {"q": "x"},
    ],
)
def test_sync_token_with_a_filter_is_400(api: Any, extra: dict[str, str]) -> None:
    _, pages = list_all(api.events().list, calendarId="primary")
    with pytest.raises(HttpError) as caught:
        api.events().list(
            calendarId="primary", syncToken=pages[-1]["nextSyncToken"], **extra
        ).execute()
    assert caught.value.resp.status == 400
    assert caught.value.error_details[0]["reason"] == "invalid"


def test_order_by_start_time_needs_single_events(api: Any) -> None:
    with pytest.raises(HttpError) as caught:
        api.events().list(calendarId="primary", orderBy="startTime").execute()
    assert caught.value.resp.status == 400
    api.events().list(calendarId="primary", orderBy="startTime", singleEvents=True).execute()


def test_all_day_events_and_time_window_overlap(emulator: Emulator, api: Any) -> None:
    holiday = _add(
        emulator,
        {"summary": "holiday", "start": {"date": "2030-05-01"}, "end": {"date": "2030-05-03"}},
    )
    _add(emulator, _event("before", "2030-04-29T10:00:00Z", "2030-04-29T11:00:00Z"))
    _add(emulator, _event("spanning", "2030-04-30T23:00:00Z", "2030-05-01T01:00:00Z"))

    items, _ = list_all(
        api.events().list,
        calendarId="primary",
        timeMin="2030-05-01T00:00:00Z",
        timeMax="2030-05-02T00:00:00Z",
        singleEvents=True,
        orderBy="startTime",
    )

    assert [item["summary"] for item in items] == ["spanning", "holiday"]
    assert items[1]["start"] == {"date": "2030-05-01"} and items[1]["end"] == {"date": "2030-05-03"}
    assert items[1]["id"] == holiday["id"]


def test_recurring_master_expands_and_instances_can_be_changed_alone(
    emulator: Emulator, api: Any
) -> None:
    master = _add(
        emulator,
        {
            "summary": "standup",
            "start": {"dateTime": "2030-03-04T09:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2030-03-04T09:15:00+01:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=5"],
        },
    )
    masters, _ = list_all(api.events().list, calendarId="primary")
    assert [m["recurrence"] for m in masters] == [["RRULE:FREQ=DAILY;COUNT=5"]]

    instances, pages = list_all(api.events().list, calendarId="primary", singleEvents=True)
    assert [i["id"] for i in instances] == [
        f"{master['id']}_2030030{day}T080000Z" for day in range(4, 9)
    ]
    first = instances[0]
    assert first["recurringEventId"] == master["id"] and "recurrence" not in first
    assert first["originalStartTime"] == {
        "dateTime": "2030-03-04T09:00:00+01:00",
        "timeZone": "Europe/Berlin",
    }
    token = pages[-1]["nextSyncToken"]

    second, third = instances[1]["id"], instances[2]["id"]
    emulator.control("PATCH", f"/google/calendars/{CAL}/events/{second}", json={"summary": "moved"})
    emulator.http.delete(f"/_control/google/calendars/{CAL}/events/{third}").raise_for_status()

    changes, _ = list_all(api.events().list, calendarId="primary", syncToken=token)
    assert {c["id"]: c["status"] for c in changes} == {second: "confirmed", third: "cancelled"}
    stub = next(c for c in changes if c["id"] == third)
    assert stub["recurringEventId"] == master["id"] and "originalStartTime" in stub
    now_listed, _ = list_all(api.events().list, calendarId="primary", singleEvents=True)
    assert [i.get("summary") for i in now_listed] == ["standup", "moved", "standup", "standup"]
    truth = emulator.control("GET", f"/google/calendars/{CAL}/truth")["items"]
    assert truth == now_listed


def test_weekly_all_day_recurrence_with_until(emulator: Emulator, api: Any) -> None:
    master = _add(
        emulator,
        {
            "summary": "gym",
            "start": {"date": "2030-01-07"},
            "end": {"date": "2030-01-08"},
            "recurrence": ["RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;UNTIL=20300131"],
        },
    )
    items, _ = list_all(api.events().list, calendarId="primary", singleEvents=True)
    assert [i["id"] for i in items] == [
        f"{master['id']}_{day}" for day in ("20300107", "20300110", "20300121", "20300124")
    ]


def test_calendar_list_marks_only_the_primary(emulator: Emulator, api: Any) -> None:
    team = emulator.control(
        "POST",
        "/google/calendars",
        json={"email": CAL, "summary": "Team", "background_color": "#7bd148"},
    )
    emulator.account("other@example.com")

    items, pages = list_all(api.calendarList().list, maxResults=1)

    assert [c["id"] for c in items] == [CAL, team["id"]]
    assert items[0]["primary"] is True and "primary" not in items[1]
    assert items[1]["backgroundColor"] == "#7bd148" and items[1]["accessRole"] == "owner"
    assert "nextSyncToken" in pages[-1] and "nextSyncToken" not in pages[0]


def test_other_accounts_calendars_are_not_found(emulator: Emulator, api: Any) -> None:
    emulator.account("other@example.com")
    with pytest.raises(HttpError) as caught:
        api.events().list(calendarId="other@example.com").execute()
    assert caught.value.resp.status == 404


def test_shortening_or_cancelling_a_series_reports_the_lost_instances(
    emulator: Emulator, api: Any
) -> None:
    master = _add(
        emulator,
        _event(
            "series",
            "2030-06-03T10:00:00Z",
            "2030-06-03T11:00:00Z",
            recurrence=["RRULE:FREQ=DAILY;COUNT=5"],
        ),
    )
    _, pages = list_all(api.events().list, calendarId="primary", singleEvents=True)
    token = pages[-1]["nextSyncToken"]

    emulator.control(
        "PATCH",
        f"/google/calendars/{CAL}/events/{master['id']}",
        json={"recurrence": ["RRULE:FREQ=DAILY;COUNT=3"]},
    )
    changes, pages = list_all(api.events().list, calendarId="primary", syncToken=token)
    assert [c["status"] for c in changes] == ["confirmed"] * 3 + ["cancelled"] * 2

    emulator.http.delete(f"/_control/google/calendars/{CAL}/events/{master['id']}")
    changes, _ = list_all(
        api.events().list, calendarId="primary", syncToken=pages[-1]["nextSyncToken"]
    )
    assert len(changes) == 5 and {c["status"] for c in changes} == {"cancelled"}
    assert all(c["recurringEventId"] == master["id"] for c in changes)
    assert emulator.control("GET", f"/google/calendars/{CAL}/truth")["items"] == []
