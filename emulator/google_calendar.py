"""Google Calendar v3 endpoints under /calendar/v3, with the paths and JSON of the real API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from emulator.accounts import AccessGrant
from emulator.calendar_store import Calendar
from emulator.errors import JSON_UTF8, GoogleApiError, auth_error, invalid, not_found
from emulator.faults import FaultRule, emulated
from emulator.listing import calendar_list_page, parse_event_query
from emulator.push import DEFAULT_TTL_S, Channel, deliver_all, resource_id_for
from emulator.state import GoogleState, get_state
from emulator.timeutil import now

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"


def google_fault(rule: FaultRule) -> GoogleApiError:
    assert rule.status is not None
    if rule.status == 401 and rule.reason in (None, "authError"):
        return auth_error()
    return GoogleApiError(rule.status, rule.reason)


def _authenticate(request: Request) -> tuple[GoogleState, AccessGrant]:
    google = get_state(request).google
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    grant = google.auth.valid_access(token.strip()) if scheme.lower() == "bearer" else None
    if grant is None:
        raise auth_error()
    if not any(scope.startswith(CALENDAR_SCOPE) for scope in grant.scope.split()):
        raise GoogleApiError(
            403,
            "insufficientPermissions",
            "Insufficient Permission",
            top_message="Request had insufficient authentication scopes.",
        )
    return google, grant


def _calendar(google: GoogleState, grant: AccessGrant, request: Request) -> Calendar:
    calendar = google.calendar_for(grant.email, request.path_params["calendarId"])
    if calendar is None:
        raise not_found()
    return calendar


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise GoogleApiError(400, "parseError", "Parse Error") from None
    if not isinstance(body, dict):
        raise GoogleApiError(400, "parseError", "Parse Error")
    return body


@emulated("calendarList.list", google_fault)
async def calendar_list(request: Request) -> Response:
    google, grant = _authenticate(request)
    account = google.auth.accounts[grant.email]
    body = calendar_list_page(account.sub, google.calendars_of(grant.email), request.query_params)
    return Response(body, media_type=JSON_UTF8)


@emulated("events.list", google_fault)
async def events_list(request: Request) -> Response:
    google, grant = _authenticate(request)
    calendar = _calendar(google, grant, request)
    query = parse_event_query(request.query_params)
    return Response(google.listings.events_page(calendar, query), media_type=JSON_UTF8)


@emulated("events.watch", google_fault)
async def events_watch(request: Request) -> Response:
    google, grant = _authenticate(request)
    calendar = _calendar(google, grant, request)
    body = await _json_body(request)
    channel_id, address = body.get("id"), body.get("address")
    if not channel_id or not address:
        raise GoogleApiError(
            400, "required", "Required", location="id" if not channel_id else "address"
        )
    if body.get("type") not in ("web_hook", "webhook"):
        raise invalid(f"Invalid value for type: {body.get('type')}")
    if channel_id in google.push.channels:
        raise GoogleApiError(400, "channelIdNotUnique", "Channel id not unique")
    try:
        ttl = float((body.get("params") or {}).get("ttl", DEFAULT_TTL_S))
    except (TypeError, ValueError):
        raise invalid("Invalid value for params.ttl") from None
    channel = Channel(
        id=str(channel_id),
        resource_id=resource_id_for(grant.email, calendar.id),
        resource_uri=f"{request.base_url}calendar/v3/calendars/{quote(calendar.id)}/events?alt=json",
        calendar_id=calendar.id,
        account=grant.email,
        address=str(address),
        token=None if body.get("token") is None else str(body["token"]),
        expiration_ms=int((now() + ttl) * 1000),
    )
    google.push.channels[channel.id] = channel
    resource: dict[str, Any] = {
        "kind": "api#channel",
        "id": channel.id,
        "resourceId": channel.resource_id,
        "resourceUri": channel.resource_uri,
    }
    if channel.token is not None:
        resource["token"] = channel.token
    resource["expiration"] = str(channel.expiration_ms)
    # Google confirms a new channel with a "sync" message right after answering.
    task = BackgroundTask(deliver_all, [channel], "sync") if google.push.auto_notify else None
    return Response(orjson.dumps(resource), media_type=JSON_UTF8, background=task)


@emulated("channels.stop", google_fault)
async def channels_stop(request: Request) -> Response:
    google, grant = _authenticate(request)
    body = await _json_body(request)
    channel = google.push.channels.get(str(body.get("id")))
    if (
        channel is None
        or channel.stopped
        or channel.resource_id != body.get("resourceId")
        or channel.account != grant.email
    ):
        raise GoogleApiError(404, "notFound", f"Channel '{body.get('id')}' not found for project")
    channel.stopped = True
    return Response(status_code=204)


def routes() -> list[BaseRoute]:
    return [
        Mount(
            "/calendar/v3",
            routes=[
                Route("/users/me/calendarList", calendar_list, methods=["GET"]),
                Route("/calendars/{calendarId}/events", events_list, methods=["GET"]),
                Route("/calendars/{calendarId}/events/watch", events_watch, methods=["POST"]),
                Route("/channels/stop", channels_stop, methods=["POST"]),
            ],
        )
    ]
