"""A month view of 10,000 events: `GET /me/events` for one month, beside the bare SQL query.

`python -m bench.events_query --json` prints one JSON line: month_view_p50_ms (all pages of the
route, in-process ASGI, JSON included) and sql_p50_ms (the repository query alone, the baseline),
for a user with 10,000 events in the month among 50,000 across three calendars.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import text

TARGET_MS = 50


def _seed(month_start: datetime) -> str:
    from core.db import session_scope
    from core.models import CalendarConnection, Event, ExternalCalendar
    from core.sync.upsert import upsert_rows

    user = "month-view"
    with session_scope() as session:
        connection = CalendarConnection(user_id=user, account_email="m@x.test", refresh_token="r")
        session.add(connection)
        session.flush()
        calendars = [
            ExternalCalendar(connection_id=connection.id, external_id=f"c{i}", name=f"C{i}")
            for i in range(3)
        ]
        session.add_all(calendars)
        session.flush()
        now = datetime.now(UTC)
        for index, calendar in enumerate(calendars):
            rows = []
            for n in range(50_000 // 3):
                # A fifth of the events (10,000 of 50,000) fall in the viewed month.
                offset = (
                    timedelta(minutes=(n * 7) % (30 * 24 * 60))
                    if n % 5 == 0
                    else timedelta(days=40 + n % 300)
                )
                start = month_start + offset
                rows.append(
                    {
                        "external_calendar_id": calendar.id,
                        "external_id": f"e{index}-{n}",
                        "title": f"Event {n}",
                        "start_at": start,
                        "end_at": start + timedelta(hours=1),
                        "all_day": False,
                        "is_editable": True,
                        "busy": True,
                        "visibility": "default",
                        "status": "confirmed",
                        "synced_at": now,
                    }
                )
            upsert_rows(session, Event.__table__, rows, ("external_calendar_id", "external_id"))  # type: ignore[arg-type]
    return user


def run(samples: int) -> dict[str, Any]:
    from bench.support import throwaway_database

    with throwaway_database() as (url, kind):
        os.environ.update(
            CALSYNC_DATABASE_URL=url,
            CALSYNC_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            CALSYNC_JWT_SECRET="bench-events-secret-0123456789abcdef",
        )
        from core.db import session_scope
        from core.migrate import upgrade
        from core.repositories.events import events_in_range

        upgrade(url)
        month = datetime(2027, 3, 1, tzinfo=UTC)
        user = _seed(month)
        end = month + timedelta(days=31)
        if kind == "postgresql":
            with session_scope() as session:
                session.execute(text("ANALYZE events"))
        sql_ms = []
        for _ in range(samples):
            started = time.perf_counter()
            with session_scope() as session:
                in_month = len(events_in_range(session, user, month, end, limit=20_000))
            sql_ms.append((time.perf_counter() - started) * 1000)
        route_ms = asyncio.run(_route_times(user, month, end, samples))
    return {
        "benchmark": "events_query",
        "database": kind,
        "events_in_month": in_month,
        "month_view_p50_ms": round(statistics.median(route_ms), 1),
        "sql_p50_ms": round(statistics.median(sql_ms), 1),
        "targets": {"month_view_p50_ms": TARGET_MS},
    }


async def _route_times(user: str, start: datetime, end: datetime, samples: int) -> list[float]:
    import httpx

    from api.auth import issue_dev_token
    from api.main import create_app

    app = create_app()
    token = issue_dev_token(os.environ["CALSYNC_JWT_SECRET"], user)
    times = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(samples):
            started = time.perf_counter()
            params: dict[str, str] = {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "limit": "5000",
            }
            while True:
                page = (await client.get("/me/events", params=params, headers=headers)).json()
                if not page.get("next_cursor"):
                    break
                params["cursor"] = page["next_cursor"]
            times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--samples", type=int, default=7)
    args = parser.parse_args()
    result = run(args.samples)
    print(
        json.dumps(result) if args.json else "\n".join(f"{k:>20}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
