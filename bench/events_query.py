"""A month view of 10,000 events: `GET /me/events` over HTTP, beside the textbook implementation.

`python -m bench.events_query --json` prints one JSON line for a user whose three calendars hold
50,000 events (two years of history, a month of 10,000 including long events that began
before it, a year ahead), in a table that also holds another user's 50,000, all written by the
sync engine's own path (`event_row` + `upsert_events`):

- month_view_p50_ms: the whole month through the API (uvicorn in its own process, real HTTP,
  JWT check, every page at the largest page size), request sent to last byte received by a
  keep-alive `http.client`; the client's JSON parsing is the browser's work and is left out.
- page_p50_ms: the default page (1,000 events) of the same month.
- baseline_p50_ms: the textbook way in this process, measured in the same run: ORM rows for the
  same query (calendars IN subquery, ORDER BY start, id) validated by pydantic and dumped to
  JSON, without HTTP.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from cryptography.fernet import Fernet
from sqlalchemy import text

TARGET_MS = 50
IN_MONTH = 10_000
PER_USER = 50_000
MONTH = datetime(2027, 3, 1, tzinfo=UTC)
MONTH_END = MONTH + timedelta(days=31)


def _item(n: int, start: datetime, minutes: int) -> dict[str, Any]:
    return {
        "id": f"e{n}",
        "status": "confirmed",
        "summary": f"Event {n}",
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(minutes=minutes)).isoformat()},
        "updated": "2027-01-01T00:00:00Z",
        "etag": f'"{n}"',
        "organizer": {"email": "someone@example.com"},
    }


def _items(calendar_index: int, calendars: int) -> Iterator[dict[str, Any]]:
    """This calendar's share of the user's events: history, the month, the year ahead."""
    month_minutes = 31 * 24 * 60
    for n in range(calendar_index, PER_USER, calendars):
        if n < IN_MONTH:
            if n < 30:  # long events that began up to three weeks before the month
                yield _item(n, MONTH - timedelta(days=1 + n % 21), minutes=(30 + n) * 24 * 60)
            else:
                yield _item(n, MONTH + timedelta(minutes=(n * 37) % (month_minutes - 60)), 60)
        elif n < IN_MONTH + 20_000:
            yield _item(n, MONTH - timedelta(days=730) + timedelta(minutes=n * 37 % 1_000_000), 45)
        else:
            yield _item(n, MONTH_END + timedelta(minutes=n * 29 % 500_000), 30)


def _seed(user: str) -> None:
    from core.db import session_scope, utcnow
    from core.models import CalendarConnection, ExternalCalendar
    from core.repositories.events import upsert_events
    from core.sync.event_rows import event_row

    with session_scope() as session:
        connection = CalendarConnection(
            user_id=user, account_email=f"{user}@x.test", refresh_token="r"
        )
        session.add(connection)
        session.flush()
        calendars = [
            ExternalCalendar(connection_id=connection.id, external_id=f"{user}-c{i}", name=f"C{i}")
            for i in range(3)
        ]
        session.add_all(calendars)
        session.flush()
        now = utcnow()
        for index, calendar in enumerate(calendars):
            rows = [
                event_row(
                    item,
                    calendar_id=calendar.id,
                    calendar_external_id=calendar.external_id,
                    access_role="owner",
                    synced_at=now,
                )
                for item in _items(index, len(calendars))
            ]
            for start in range(0, len(rows), 2500):  # the engine's page size
                upsert_events(session, calendar.id, rows[start : start + 2500])


def _baseline_ms(user: str, samples: int) -> tuple[list[float], int]:
    """ORM objects -> pydantic models -> JSON, the way a first version of the route would."""
    from pydantic import TypeAdapter
    from sqlalchemy import select

    from api.schemas import EventOut
    from core.db import session_scope
    from core.models import CalendarConnection, Event, ExternalCalendar

    adapter = TypeAdapter(list[EventOut])
    calendars = (
        select(ExternalCalendar.id)
        .join(CalendarConnection)
        .where(CalendarConnection.user_id == user, ExternalCalendar.enabled.is_(True))
    )
    stmt = (
        select(Event)
        .where(
            Event.external_calendar_id.in_(calendars),
            Event.start_at < MONTH_END,
            Event.end_at > MONTH,
        )
        .order_by(Event.start_at, Event.id)
    )
    times, count = [], 0
    for _ in range(samples):
        started = time.perf_counter()
        with session_scope() as session:
            events = [
                EventOut(calendar_id=e.external_calendar_id, **_view_columns(e))
                for e in session.scalars(stmt)
            ]
            body = adapter.dump_json(events)
        times.append((time.perf_counter() - started) * 1000)
        count = len(events)
    assert body
    return times, count


def _view_columns(event: Any) -> dict[str, Any]:
    from api.schemas import EventOut

    return {name: getattr(event, name) for name in EventOut.model_fields if name != "calendar_id"}


def _api() -> AbstractContextManager[str]:
    """The API in its own process (no lifespan: this route needs no Prefect)."""
    from bench.support import http_process

    args = ["uvicorn", "api.main:create_app", "--factory", "--lifespan", "off"]
    return http_process("the API", [*args, "--log-level", "warning", "--no-access-log"], "/healthz")


def _view_ms(url: str, token: str, limit: int, samples: int, walk: bool) -> tuple[list[float], int]:
    """Per sample: the time to receive every page (or the first), parsing left out.

    The client is the standard library's keep-alive `http.client`: a heavier client (httpx
    spends ~8 ms reading 4 MB here) would measure itself more than the API.
    """
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    times, count = [], 0
    for sample in range(samples + 2):  # two warm-up rounds
        params: dict[str, Any] = {
            "start": MONTH.isoformat(),
            "end": MONTH_END.isoformat(),
            "limit": limit,
        }
        elapsed, count = 0.0, 0
        while True:
            started = time.perf_counter()
            connection.request("GET", f"/me/events?{urlencode(params)}", headers=headers)
            response = connection.getresponse()
            body = response.read()
            elapsed += time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"GET /me/events answered {response.status}: {body[:200]!r}")
            page = json.loads(body)
            count += len(page["items"])
            if not (walk and page["next_cursor"]):
                break
            params["cursor"] = page["next_cursor"]
        if sample >= 2:
            times.append(elapsed * 1000)
    connection.close()
    return times, count


def run(samples: int) -> dict[str, Any]:
    from bench.support import throwaway_database

    with throwaway_database() as (url, kind):
        secret = "bench-events-secret-0123456789abcdef"
        os.environ.update(
            CALSYNC_DATABASE_URL=url,
            CALSYNC_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            CALSYNC_JWT_SECRET=secret,
        )
        from api.auth import issue_dev_token
        from api.routes.events import MAX_PAGE
        from core.db import session_scope
        from core.migrate import upgrade

        upgrade(url)
        user = "month-view"
        started = time.perf_counter()
        _seed(user)
        _seed(f"neighbour-{uuid.uuid4().hex[:6]}")
        seed_s = time.perf_counter() - started
        if kind == "postgresql":
            with session_scope() as session:
                session.execute(text("ANALYZE events"))
        baseline, baseline_count = _baseline_ms(user, samples)
        token = issue_dev_token(secret, user)
        with _api() as api_url:
            month, month_count = _view_ms(api_url, token, MAX_PAGE, samples, walk=True)
            page, _ = _view_ms(api_url, token, 1000, samples, walk=False)
    assert month_count == baseline_count, (month_count, baseline_count)
    month_p50 = statistics.median(month)
    baseline_p50 = statistics.median(baseline)
    return {
        "benchmark": "events_query",
        "database": kind,
        "events_in_month": month_count,
        "events_per_user": PER_USER,
        "month_view_p50_ms": round(month_p50, 1),
        "page_p50_ms": round(statistics.median(page), 1),
        "baseline_p50_ms": round(baseline_p50, 1),
        "speedup_vs_baseline": round(baseline_p50 / month_p50, 1),
        "seed_s": round(seed_s, 1),
        "targets": {"month_view_p50_ms": TARGET_MS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--samples", type=int, default=9)
    args = parser.parse_args()
    result = run(args.samples)
    print(
        json.dumps(result) if args.json else "\n".join(f"{k:>20}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
