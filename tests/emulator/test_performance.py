"""The 50,000-event listing the benchmark runs; prints timings instead of asserting on them."""

from __future__ import annotations

import time
from typing import Any

from emulator.listing import parse_event_query
from tests.emulator.conftest import Emulator
from tests.emulator.paging import list_all

CAL = "ada@example.com"
COUNT = 50_000


def test_fifty_thousand_events_list_completely(emulator: Emulator, api: Any) -> None:
    started = time.perf_counter()
    emulator.control(
        "POST",
        f"/google/calendars/{CAL}/events/bulk",
        json={"count": COUNT, "all_day_every": 10, "recurring_every": 25},
    )
    created_s = time.perf_counter() - started

    started = time.perf_counter()
    items, pages = list_all(api.events().list, calendarId="primary", maxResults=2500)
    listed_s = time.perf_counter() - started

    calendar = emulator.state.google.calendars[CAL]
    cpu = time.process_time()
    token: str | None = None
    while True:
        params = {"maxResults": "2500"} | ({"pageToken": token} if token else {})
        body = emulator.state.google.listings.events_page(calendar, parse_event_query(params))
        head = body[:400].decode(errors="replace")
        token = (
            head.split('"nextPageToken":"', 1)[1].split('"', 1)[0]
            if "nextPageToken" in head
            else None
        )
        if token is None:
            break
    emulator_cpu_s = time.process_time() - cpu

    assert len(items) == COUNT and len(pages) == COUNT // 2500
    assert len({item["id"] for item in items}) == COUNT
    print(
        f"\nbulk create {COUNT}: {created_s:.2f}s; listing via googleapiclient: {listed_s:.2f}s"
        f" ({len(pages)} pages); emulator share of a listing: {emulator_cpu_s:.3f}s CPU"
    )
