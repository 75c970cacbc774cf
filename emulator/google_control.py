"""Control API for the Google part (/_control/google): accounts, calendars, events, channels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import AwareDatetime, Field
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from emulator.accounts import DEFAULT_SCOPE
from emulator.calendar_store import Calendar
from emulator.control import OK, ControlBody, json_body, parse_body
from emulator.errors import ControlError
from emulator.event_edits import EditError, bulk_create, cancel_event, create_event, patch_event
from emulator.listing import EventQuery, full_listing, render_items
from emulator.push import deliver, deliver_all, new_client
from emulator.state import GoogleState, get_state
from emulator.timeutil import now, parse_rfc3339, zone

MAX_BULK = 1_000_000


class AccountIn(ControlBody):
    email: str
    refresh_token: str | None = None
    access_token: str | None = None


class SettingsIn(ControlBody):
    access_token_lifetime_s: int | None = Field(default=None, ge=1)
    client_id: str | None = None
    client_secret: str | None = None
    auto_notify: bool | None = None
    current_user: str | None = None


class AuthCodeIn(ControlBody):
    email: str
    redirect_uri: str
    client_id: str | None = None
    scope: str = DEFAULT_SCOPE
    offline: bool = True


class CalendarIn(ControlBody):
    email: str
    summary: str
    id: str | None = None
    description: str | None = None
    background_color: str | None = None
    time_zone: str = "UTC"
    primary: bool = False


class BulkIn(ControlBody):
    count: int = Field(ge=1, le=MAX_BULK)
    start: AwareDatetime | None = None
    spacing_minutes: float = Field(default=60.0, gt=0)
    all_day_every: int | None = Field(default=None, ge=1)
    recurring_every: int | None = Field(default=None, ge=1)
    prefix: str = "Event"


class NotifyIn(ControlBody):
    channel_id: str
    state: str = "exists"
    headers: dict[str, str | None] = Field(default_factory=dict)
    times: int = Field(default=1, ge=1)


def _google(request: Request) -> GoogleState:
    return get_state(request).google


def _calendar(request: Request) -> Calendar:
    calendar = _google(request).calendars.get(request.path_params["calendar_id"])
    if calendar is None:
        raise ControlError(404, f"no calendar {request.path_params['calendar_id']!r}")
    return calendar


def _notify_watchers(google: GoogleState, calendar: Calendar) -> BackgroundTask | None:
    """Control changes stand for a user editing in the UI, so watchers hear about them."""
    if not google.push.auto_notify:
        return None
    channels = google.push.live_channels(calendar.id)
    return BackgroundTask(deliver_all, channels, "exists") if channels else None


def _json(body: Any, status: int = 200, background: BackgroundTask | None = None) -> Response:
    return Response(
        orjson.dumps(body), status, media_type="application/json", background=background
    )


async def add_account(request: Request) -> Response:
    body = await parse_body(request, AccountIn)
    try:
        _, refresh, access = _google(request).add_account(
            body.email, body.refresh_token, body.access_token
        )
    except ValueError as exc:
        raise ControlError(409, str(exc)) from None
    return _json(
        {"email": body.email, "refresh_token": refresh.token, "access_token": access.token}
    )


async def revoke_account(request: Request) -> Response:
    google = _google(request)
    email = request.path_params["email"]
    if email not in google.auth.accounts:
        raise ControlError(404, f"no account {email!r}")
    google.auth.revoke_account(email)
    return _json(OK)


async def expire_access_tokens(request: Request) -> Response:
    _google(request).auth.expire_access_tokens()
    return _json(OK)


async def update_settings(request: Request) -> Response:
    body = await parse_body(request, SettingsIn)
    google = _google(request)
    # Only the fields sent change; an explicit null client_id/secret goes back to "accept any".
    changes = body.model_dump(exclude_unset=True)
    if changes.get("auto_notify") is not None:
        google.push.auto_notify = changes.pop("auto_notify")
    if changes.get("access_token_lifetime_s") is None:
        changes.pop("access_token_lifetime_s", None)
    changes.pop("auto_notify", None)
    for name, value in changes.items():
        setattr(google.auth, name, value)
    return _json(google.auth.settings() | {"auto_notify": google.push.auto_notify})


async def add_auth_code(request: Request) -> Response:
    body = await parse_body(request, AuthCodeIn)
    google = _google(request)
    google.ensure_account(body.email)
    code = google.auth.issue_code(
        body.email,
        body.redirect_uri,
        client_id=body.client_id,
        scope=body.scope,
        offline=body.offline,
    )
    return _json({"code": code.code})


async def add_calendar(request: Request) -> Response:
    body = await parse_body(request, CalendarIn)
    google = _google(request)
    if body.email not in google.auth.accounts:
        raise ControlError(404, f"no account {body.email!r}")
    try:
        zone(body.time_zone)
        calendar = google.add_calendar(
            body.email,
            summary=body.summary,
            calendar_id=body.id,
            time_zone=body.time_zone,
            background_color=body.background_color,
            description=body.description,
            primary=body.primary,
        )
    except ValueError as exc:
        raise ControlError(409 if "exists" in str(exc) else 400, str(exc)) from None
    return _json(calendar.list_entry())


async def bulk_events(request: Request) -> Response:
    body = await parse_body(request, BulkIn)
    calendar = _calendar(request)
    when = now()
    start = body.start or datetime.fromtimestamp(when, UTC).replace(microsecond=0) - timedelta(
        days=7
    )
    created = bulk_create(
        calendar,
        count=body.count,
        start=start,
        spacing_minutes=body.spacing_minutes,
        all_day_every=body.all_day_every,
        recurring_every=body.recurring_every,
        prefix=body.prefix,
        when=when,
    )
    return _json({"created": len(created)}, background=_notify_watchers(_google(request), calendar))


async def add_event(request: Request) -> Response:
    calendar = _calendar(request)
    try:
        event = create_event(calendar, await json_body(request), now())
    except EditError as exc:
        raise ControlError(exc.status, exc.message) from None
    return _json(event.resource(), background=_notify_watchers(_google(request), calendar))


async def get_event(request: Request) -> Response:
    item = _calendar(request).find(request.path_params["event_id"])
    if item is None:
        raise ControlError(404, "no such event")
    return _json(item.resource())


async def update_event(request: Request) -> Response:
    calendar = _calendar(request)
    try:
        item = patch_event(
            calendar, request.path_params["event_id"], await json_body(request), now()
        )
    except EditError as exc:
        raise ControlError(exc.status, exc.message) from None
    return _json(item.resource(), background=_notify_watchers(_google(request), calendar))


async def delete_event(request: Request) -> Response:
    calendar = _calendar(request)
    try:
        cancel_event(calendar, request.path_params["event_id"], now())
    except EditError as exc:
        raise ControlError(exc.status, exc.message) from None
    return Response(status_code=204, background=_notify_watchers(_google(request), calendar))


async def invalidate_sync_tokens(request: Request) -> Response:
    _calendar(request).generation += 1
    return Response(status_code=204)


async def truth(request: Request) -> Response:
    """What a complete full sync (singleEvents=true, no deleted) returns: the DB should match."""
    calendar = _calendar(request)
    raw_min = request.query_params.get("time_min")
    try:
        time_min = parse_rfc3339(raw_min).timestamp() if raw_min else None
    except ValueError:
        raise ControlError(400, f"invalid time_min {raw_min!r}") from None
    query = EventQuery(
        single_events=True,
        show_deleted=False,
        time_min=time_min,
        time_max=None,
        order_by="startTime",
        updated_min=None,
        ical_uid=None,
        q=None,
        max_results=0,
        page_token=None,
        sync_token=None,
    )
    return Response(render_items(full_listing(calendar, query)), media_type="application/json")


async def channels(request: Request) -> Response:
    return _json([channel.public() for channel in _google(request).push.channels.values()])


async def notify(request: Request) -> Response:
    """Deliver now and report the receiver's answers; stopped channels too, to test rejection."""
    body = await parse_body(request, NotifyIn)
    channel = _google(request).push.channels.get(body.channel_id)
    if channel is None:
        raise ControlError(404, f"no channel {body.channel_id!r}")
    statuses: list[int | None] = []
    async with new_client() as client:
        for _ in range(body.times):
            statuses.append(await deliver(client, channel, body.state, body.headers))
    return _json(
        {"delivered": sum(status is not None for status in statuses), "statuses": statuses}
    )


def routes() -> list[BaseRoute]:
    prefix = "/_control/google"
    calendar = f"{prefix}/calendars/{{calendar_id}}"
    return [
        Route(f"{prefix}/accounts", add_account, methods=["POST"]),
        Route(f"{prefix}/accounts/{{email}}/revoke", revoke_account, methods=["POST"]),
        Route(f"{prefix}/access-tokens/expire", expire_access_tokens, methods=["POST"]),
        Route(f"{prefix}/settings", update_settings, methods=["POST"]),
        Route(f"{prefix}/auth-codes", add_auth_code, methods=["POST"]),
        Route(f"{prefix}/calendars", add_calendar, methods=["POST"]),
        Route(f"{calendar}/events/bulk", bulk_events, methods=["POST"]),
        Route(f"{calendar}/events", add_event, methods=["POST"]),
        Route(f"{calendar}/events/{{event_id}}", get_event, methods=["GET"]),
        Route(f"{calendar}/events/{{event_id}}", update_event, methods=["PATCH"]),
        Route(f"{calendar}/events/{{event_id}}", delete_event, methods=["DELETE"]),
        Route(f"{calendar}/invalidate-sync-tokens", invalidate_sync_tokens, methods=["POST"]),
        Route(f"{calendar}/truth", truth, methods=["GET"]),
        Route(f"{prefix}/channels", channels, methods=["GET"]),
        Route(f"{prefix}/notify", notify, methods=["POST"]),
    ]
