"""Full sync of a 50,000-event calendar into the app database, beside a naive per-row ORM baseline.

The measured sync holds the calendar's lease and fences its writes with it, as a flow run does.

`python -m bench.calendar_sync --json` prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
import uuid
from typing import Any

import httpx
from cryptography.fernet import Fernet

TARGETS = {
    "events_per_s": 15_000,
    "ratio_vs_naive": 7.0,
    "rss_growth_mb": 64,
    "incremental_list_calls": 1,
}


def _configure(db_url: str, emulator: str) -> None:
    os.environ.update(
        CALSYNC_DATABASE_URL=db_url,
        GOOGLE_API_BASE_URL=emulator,
        GOOGLE_OAUTH_TOKEN_URL=f"{emulator}/token",
        GOOGLE_CLIENT_ID="bench",
        GOOGLE_CLIENT_SECRET="bench",
        CALSYNC_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        CALSYNC_CALENDAR_SYNC_FROM_MONTHS="24",
    )


def _calendar(emulator: str, count: int) -> tuple[uuid.UUID, str]:
    """An emulator account + calendar with `count` events, and our connection rows for it."""
    from core.db import session_scope
    from core.repositories.google_connections import upsert_google_connection

    control = f"{emulator}/_control/google"
    account = httpx.post(
        f"{control}/accounts", json={"email": f"b{uuid.uuid4().hex[:6]}@x.test"}
    ).json()
    calendar = httpx.post(
        f"{control}/calendars", json={"email": account["email"], "summary": "Bench"}
    ).json()
    httpx.post(
        f"{control}/calendars/{calendar['id']}/events/bulk",
        json={"count": count, "start": "2026-01-01T00:00:00Z", "spacing_minutes": 15},
        timeout=120,
    ).raise_for_status()
    with session_scope() as session:
        connection = upsert_google_connection(
            session,
            user_id="bench",
            account_email=account["email"],
            refresh_token=account["refresh_token"],
            access_token=None,
            expires_at=None,
            calendars=[{**calendar, "primary": True, "accessRole": "owner"}],
        )
        return connection.calendars[0].id, calendar["id"]


def _naive_sync(calendar_row: uuid.UUID, emulator_calendar: str) -> int:
    """The obvious implementation: for each event, look the row up and add or update it."""
    from sqlalchemy import select

    from core.db import session_scope, utcnow
    from core.models import CalendarConnection, Event, ExternalCalendar
    from core.providers.google_calendar import GoogleCalendarClient
    from core.providers.google_oauth import refresh_access_token
    from core.settings import get_settings
    from core.sync.calendar import months_before
    from core.sync.event_rows import event_row

    settings = get_settings()
    with session_scope() as session:
        cal = session.get(ExternalCalendar, calendar_row)
        connection = session.get(CalendarConnection, cal.connection_id)  # type: ignore[union-attr]
        refresh = connection.refresh_token  # type: ignore[union-attr]
    grant = refresh_access_token(settings, refresh)
    client = GoogleCalendarClient(settings, access_token=grant.access_token, refresh_token=refresh)
    count = 0
    for page in client.iter_event_pages(emulator_calendar, time_min=months_before(utcnow(), 24)):
        with session_scope() as session:
            for item in page.items:
                row = event_row(
                    item,
                    calendar_id=calendar_row,
                    calendar_external_id=emulator_calendar,
                    access_role="owner",
                    synced_at=utcnow(),
                )
                existing = session.scalars(
                    select(Event).where(
                        Event.external_calendar_id == calendar_row, Event.external_id == item["id"]
                    )
                ).one_or_none()
                if existing is None:
                    session.add(Event(**row))
                else:
                    for key, value in row.items():
                        setattr(existing, key, value)
                count += 1
    return count


def run(events: int, naive_events: int) -> dict[str, Any]:
    from bench.support import emulator_process, peak_rss_growth, throwaway_database

    with emulator_process() as emulator, throwaway_database() as (db_url, db_kind):
        _configure(db_url, emulator)
        from core.db import session_factory
        from core.migrate import upgrade
        from core.sync.calendar import CalendarSyncEngine
        from core.sync_lease import SyncLease

        upgrade(db_url)
        engine = CalendarSyncEngine()

        small_row, _ = _calendar(emulator, 10_000)
        big_row, _ = _calendar(emulator, events)
        naive_row, naive_cal = _calendar(emulator, naive_events)

        gc.collect()
        with peak_rss_growth() as small_rss:
            engine.sync(small_row)
        gc.collect()
        with peak_rss_growth() as big_rss:
            started = time.perf_counter()
            with SyncLease(big_row, uuid.uuid4(), sessions=session_factory()) as lease:
                counts = engine.sync(big_row, lease=lease.token)
            elapsed = time.perf_counter() - started
        assert counts.created == events, counts

        httpx.post(f"{emulator}/_control/calls/reset")
        engine.sync(big_row)
        incremental_calls = httpx.get(f"{emulator}/_control/calls").json().get("events.list", 0)

        started = time.perf_counter()
        naive_count = _naive_sync(naive_row, naive_cal)
        naive_elapsed = time.perf_counter() - started

    events_per_s = events / elapsed
    naive_per_s = naive_count / naive_elapsed
    return {
        "benchmark": "calendar_sync",
        "database": db_kind,
        "events": events,
        "events_per_s": round(events_per_s),
        "naive_events": naive_count,
        "naive_events_per_s": round(naive_per_s),
        "ratio_vs_naive": round(events_per_s / naive_per_s, 2),
        "rss_growth_mb": big_rss["growth_mb"],
        "rss_growth_mb_at_10k": small_rss["growth_mb"],
        "incremental_list_calls": incremental_calls,
        "targets": TARGETS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--naive-events", type=int, default=10_000)
    args = parser.parse_args()
    result = run(args.events, args.naive_events)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
