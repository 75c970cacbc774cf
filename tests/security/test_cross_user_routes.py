"""Another user's IDs get 404 on every route that takes one, and the `/me` routes show nothing
of anyone else's; the routes are enumerated from the app, so a new one cannot slip by."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from sqlalchemy import select

from api.main import create_app
from api.schemas import CalendarPatch
from core.db import session_scope
from core.models import (
    CalendarConnection,
    ConnectionStatus,
    Event,
    ExternalCalendar,
    TaskConnection,
    TaskItem,
)
from tests.accounts.flows import Api, rows_of_user
from tests.security.owners import Owner, add_idle_connections

pytestmark = pytest.mark.integration

# What each ID path parameter names, as the victim's rows of that kind (every one is tried).
VICTIM_IDS: dict[str, Callable[[Owner], list[str]]] = {
    "calendar_id": lambda victim: [victim.calendar_id, victim.spare_calendar_id],
    "connection_id": lambda victim: [victim.google_connection_id, victim.linear_connection_id],
    "flow_run_id": lambda victim: [victim.calendar_run_id(), victim.linear_run_id()],
}
# Path parameters that name no user's resource.
NOT_RESOURCE_IDS = {
    ("GET", "/static/{name}"): "the demo page's own CSS and JS files, the same for everyone",
}
# A valid body for each body a route with an ID takes: invalid ones would stop at 422 before
# the ownership check. Each is the harmful one, so a leak would also show in the victim's rows.
BODIES: dict[type[BaseModel], dict[str, Any]] = {CalendarPatch: {"enabled": False}}
_NOW = datetime.now(UTC)
# Query parameters a `/me` listing needs; this range holds all the victim's events.
ME_QUERIES = {
    "/me/events": {
        "start": (_NOW - timedelta(days=30)).isoformat(),
        "end": (_NOW + timedelta(days=60)).isoformat(),
    }
}
VICTIM_MONTHS = 17


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    params: tuple[str, ...]
    body: Any  # the body's type, None without one

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(app: FastAPI) -> Iterator[Endpoint]:
    """Every method and path the app serves, hidden ones included (HEAD is GET without body)."""
    for route in iter_route_contexts(app.routes):
        original = route.original_route
        body = None
        if isinstance(original, APIRoute) and original.body_field is not None:
            body = original.body_field.field_info.annotation
        for method in sorted(route.methods or {"WEBSOCKET"}):
            if method != "HEAD":
                yield Endpoint(method, route.path, tuple(route.param_convertors), body)


def unmapped(app: FastAPI) -> list[str]:
    """Why each route with a path parameter cannot be tried with the victim's IDs."""
    problems = []
    for endpoint in endpoints(app):
        if not endpoint.params or (endpoint.method, endpoint.path) in NOT_RESOURCE_IDS:
            continue
        unknown = [name for name in endpoint.params if name not in VICTIM_IDS]
        if unknown:
            problems.append(
                f"{endpoint.label}: path parameter {unknown} names no victim row here; map it in "
                "VICTIM_IDS (or list the route in NOT_RESOURCE_IDS if it is no user's resource)"
            )
        if endpoint.body is not None and endpoint.body not in BODIES:
            name = getattr(endpoint.body, "__name__", repr(endpoint.body))
            problems.append(f"{endpoint.label}: add a valid {name} body to BODIES")
        if endpoint.method not in {"GET", "POST", "PATCH", "PUT", "DELETE"}:
            problems.append(f"{endpoint.label}: not an HTTP method this test knows how to call")
    return problems


def test_every_route_with_an_id_is_mapped_to_the_victims_rows() -> None:
    assert unmapped(create_app()) == []


def test_a_new_route_with_an_unmapped_id_is_reported() -> None:
    app = create_app()
    extra = APIRouter()

    @extra.get("/widgets/{widget_id}")
    async def widget(widget_id: uuid.UUID) -> None: ...

    @extra.put("/calendars/{calendar_id}/colour")
    async def colour(calendar_id: uuid.UUID, body: dict[str, str]) -> None: ...

    app.include_router(extra)

    problems = unmapped(app)

    assert len(problems) == 2, problems
    assert problems[0].startswith("GET /widgets/{widget_id}: path parameter ['widget_id']")
    assert problems[1].startswith("PUT /calendars/{calendar_id}/colour: add a valid")


@pytest.fixture(scope="module")
def victim(owner: Owner) -> Owner:
    """The owner, with a setting of their own besides their rows."""
    months = {"calendar_sync_from_months": VICTIM_MONTHS}
    assert owner.api.http.patch("/me/settings", json=months).status_code == 200
    return owner


@pytest.fixture(scope="module")
def intruder(api_url: str, emulator_url: str) -> Iterator[Api]:
    """A user with rows of their own (nothing to sync: a disabled calendar, a Linear connection
    awaiting reauth), so their 404s are about ownership, not an empty account."""
    api = Api.for_user(api_url)
    add_idle_connections(
        emulator_url, api.user_id, "Intruder's", linear_status=ConnectionStatus.NEEDS_REAUTH
    )
    yield api
    api.http.close()


@dataclass(frozen=True)
class VictimState:
    rows: dict[str, int]
    enabled: dict[uuid.UUID, bool]
    latest_runs: dict[uuid.UUID, uuid.UUID | None]
    months: int


def victim_state(victim: Owner) -> VictimState:
    months = victim.api.http.get("/me/settings").json()["calendar_sync_from_months"]
    rows = rows_of_user(victim.user_id)
    # A SQLite session here holds the write lock: nothing else may touch the database inside it.
    with session_scope() as session:
        calendars = session.scalars(
            select(ExternalCalendar)
            .join(CalendarConnection)
            .where(CalendarConnection.user_id == victim.user_id)
        ).all()
        tasks = session.scalars(
            select(TaskConnection).where(TaskConnection.user_id == victim.user_id)
        ).all()
        synced: list[ExternalCalendar | TaskConnection] = [*calendars, *tasks]
        return VictimState(
            rows=rows,
            enabled={c.id: c.enabled for c in calendars},
            latest_runs={row.id: row.latest_sync_flow_run_id for row in synced},
            months=months,
        )


def victim_markers(victim: Owner) -> set[str]:
    """Strings that only appear in a response carrying the victim's data."""
    with session_scope() as session:
        calendars = select(ExternalCalendar.id).join(CalendarConnection)
        calendars = calendars.where(CalendarConnection.user_id == victim.user_id)
        tasks = select(TaskConnection.id).where(TaskConnection.user_id == victim.user_id)
        values = itertools.chain(
            session.execute(
                select(CalendarConnection.id, CalendarConnection.account_email).where(
                    CalendarConnection.user_id == victim.user_id
                )
            ).all(),
            session.execute(
                select(
                    ExternalCalendar.id,
                    ExternalCalendar.external_id,
                    ExternalCalendar.latest_sync_flow_run_id,
                ).where(ExternalCalendar.id.in_(calendars))
            ).all(),
            session.execute(
                select(
                    TaskConnection.id,
                    TaskConnection.organization_id,
                    TaskConnection.latest_sync_flow_run_id,
                ).where(TaskConnection.id.in_(tasks))
            ).all(),
            session.execute(
                select(Event.external_id).where(Event.external_calendar_id.in_(calendars))
            ).all(),
            session.execute(
                select(TaskItem.external_id).where(TaskItem.task_connection_id.in_(tasks))
            ).all(),
        )
        return {str(value) for row in values for value in row if value is not None}


def read(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The response, with an event stream cut after its first event (it may never end)."""
    with client.stream(method, path, **kwargs) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            first = b""
            for chunk in response.iter_bytes():
                first += chunk
                if b"\n\n" in first:
                    break
            return httpx.Response(response.status_code, headers=response.headers, content=first)
        response.read()
        return response


def test_every_route_answers_404_to_another_users_ids_and_changes_nothing(
    victim: Owner, intruder: Api
) -> None:
    before = victim_state(victim)
    assert before.enabled == {
        uuid.UUID(victim.calendar_id): True,
        uuid.UUID(victim.spare_calendar_id): False,
    }
    app = create_app()
    assert unmapped(app) == []
    tried = []

    for endpoint in endpoints(app):
        if not endpoint.params or (endpoint.method, endpoint.path) in NOT_RESOURCE_IDS:
            continue
        choices = [VICTIM_IDS[name](victim) for name in endpoint.params]
        for ids in itertools.product(*choices):
            path = endpoint.path.format(**dict(zip(endpoint.params, ids, strict=True)))
            body = BODIES[endpoint.body] if endpoint.body else None
            response = read(intruder.http, endpoint.method, path, json=body)
            where = f"{endpoint.method} {path} as another user"
            assert response.status_code == 404, f"{where}: {response.status_code} {response.text}"
            assert response.headers["content-type"] == "application/json", where
            assert response.json()["detail"], where
            if endpoint.method == "GET":
                # The same request as the owner finds the row: the 404 was about ownership.
                mine = read(victim.api.http, "GET", path)
                assert mine.status_code == 200, f"{endpoint.method} {path}: {mine.text}"
            tried.append(endpoint.label)

    assert set(tried) >= {
        "POST /calendars/{calendar_id}/sync",
        "PATCH /calendars/{calendar_id}",
        "DELETE /connections/{connection_id}",
        "GET /sync-runs/{flow_run_id}",
        "GET /sync-runs/{flow_run_id}/stream",
    }
    assert victim_state(victim) == before


def test_the_me_routes_and_sync_all_show_and_start_nothing_of_another_user(
    victim: Owner, intruder: Api
) -> None:
    markers = victim_markers(victim)
    assert victim.calendar_id in markers and len(markers) > 40  # events and issues included
    before = victim_state(victim)
    listings = [
        endpoint
        for endpoint in endpoints(create_app())
        if endpoint.method == "GET" and endpoint.path.startswith("/me/")
    ]
    assert len(listings) >= 6, listings

    for endpoint in listings:
        query = ME_QUERIES.get(endpoint.path, {})
        mine = read(victim.api.http, "GET", endpoint.path, params=query)
        theirs = read(intruder.http, "GET", endpoint.path, params=query)
        assert mine.status_code == theirs.status_code == 200, (endpoint.path, theirs.text)
        leaked = sorted(marker for marker in markers if marker in theirs.text)
        assert not leaked, f"{endpoint.path} shows another user's {leaked[:5]}"
        # The victim's own listing does carry them (settings aside): the check can see a leak.
        if endpoint.path != "/me/settings":
            assert any(marker in mine.text for marker in markers), endpoint.path
    assert before.months == VICTIM_MONTHS
    assert intruder.http.get("/me/settings").json()["calendar_sync_from_months"] != VICTIM_MONTHS

    for path in ("/calendars/sync", "/linear/sync"):
        started = intruder.http.post(path)
        assert started.status_code == 202 and started.json() == {"runs": []}, started.text
    assert victim_state(victim) == before
