"""Google connections and calendars of the current user; starting calendar syncs."""

from __future__ import annotations

import uuid
from dataclasses import replace

from fastapi import APIRouter, status
from starlette.concurrency import run_in_threadpool

from api.connection_views import LISTING_UNAVAILABLE, google_connection_out, latest_runs
from api.deps import AUTH_ERRORS, START_UNAVAILABLE, CurrentUser, OrchestratorDep
from api.limits import SYNC_START, TOO_MANY_REQUESTS, LimitsDep, UserLimits
from api.orchestrator import Orchestrator, RunStatus
from api.schemas import (
    ErrorBody,
    GoogleConnectionOut,
    SyncAllStarted,
    SyncStarted,
)
from api.sync_service import (
    Started,
    calendar_start_request,
    record_request_in,
    request_and_start,
    start_requested,
)
from core.db import session_scope
from core.errors import ConflictingState, NotOwned, RefusalCode
from core.models import CalendarConnection, ConnectionStatus, ExternalCalendar
from core.repositories.calendars import user_calendar, user_calendars, user_google_connections
from core.run_starts import StartRequest
from core.sync_requests import RequestSource

router = APIRouter(tags=["calendars"], responses=AUTH_ERRORS)

NOT_FOUND = {404: {"model": ErrorBody, "description": "No such calendar for this user."}}


def _connections(user_id: str) -> list[CalendarConnection]:
    with session_scope() as session:
        return user_google_connections(session, user_id)


@router.get(
    "/me/google-connection", response_model=list[GoogleConnectionOut], responses=LISTING_UNAVAILABLE
)
async def my_google_connections(
    user: CurrentUser, orchestrator: OrchestratorDep
) -> list[GoogleConnectionOut]:
    connections = await run_in_threadpool(_connections, user.id)
    runs = await latest_runs(orchestrator, [c for conn in connections for c in conn.calendars])
    return [google_connection_out(connection, runs) for connection in connections]


def _startable(calendar: ExternalCalendar | None) -> ExternalCalendar:
    if calendar is None:
        raise NotOwned("calendar not found", RefusalCode.CALENDAR_NOT_FOUND)
    if calendar.connection.status == ConnectionStatus.NEEDS_REAUTH:
        raise ConflictingState(
            "Google access was revoked: reconnect your Google account.",
            RefusalCode.REAUTH_REQUIRED,
        )
    if not calendar.enabled:
        raise ConflictingState(
            "this calendar is disabled; enable it to sync", RefusalCode.CALENDAR_DISABLED
        )
    return calendar


def _request_calendar_sync(
    user_id: str, calendar_id: uuid.UUID, limits: UserLimits
) -> tuple[ExternalCalendar, StartRequest]:
    """One transaction: the user's calendar, refused unless startable and within the user's
    budget, with its sync request recorded."""
    with session_scope() as session:
        calendar = _startable(user_calendar(session, user_id, calendar_id))
        limits.check(user_id, SYNC_START)
        request = replace(calendar_start_request(calendar), source=RequestSource.SYNC_NOW)
        return calendar, record_request_in(session, request)


@router.post(
    "/calendars/{calendar_id}/sync",
    response_model=SyncStarted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**NOT_FOUND, **START_UNAVAILABLE, 409: {"model": ErrorBody}, **TOO_MANY_REQUESTS},
)
async def sync_calendar(
    calendar_id: uuid.UUID, user: CurrentUser, orchestrator: OrchestratorDep, limits: LimitsDep
) -> SyncStarted:
    """Starts (or joins) the calendar's sync. The request is recorded first, so it is never
    lost: when Prefect is slow the answer is still 202 with status pending and no run ID yet;
    when Prefect is down it is 503, and the recorded sync starts once Prefect is back."""
    calendar, owed = await run_in_threadpool(_request_calendar_sync, user.id, calendar_id, limits)
    return _sync_started(calendar, await start_requested(orchestrator, owed))


async def _sync_now(orchestrator: Orchestrator, calendar: ExternalCalendar) -> Started | None:
    return await request_and_start(
        orchestrator, calendar_start_request(calendar), RequestSource.SYNC_NOW
    )


def _sync_started(calendar: ExternalCalendar, started: Started | None) -> SyncStarted:
    if started is None:
        return SyncStarted(
            calendar_id=calendar.id,
            flow_run_id=None,
            status=RunStatus.PENDING,
            already_running=False,
        )
    return SyncStarted(
        calendar_id=calendar.id,
        flow_run_id=started.run.id,
        status=started.run.status,
        already_running=started.already_running,
    )


def _enabled_calendars(user_id: str) -> list[ExternalCalendar]:
    with session_scope() as session:
        return [
            c
            for c in user_calendars(session, user_id, enabled_only=True)
            if c.connection.status != ConnectionStatus.NEEDS_REAUTH
        ]


@router.post(
    "/calendars/sync",
    response_model=SyncAllStarted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**START_UNAVAILABLE, **TOO_MANY_REQUESTS},
)
async def sync_all_calendars(
    user: CurrentUser, orchestrator: OrchestratorDep, limits: LimitsDep
) -> SyncAllStarted:
    """Sync now for each enabled calendar; answers as `POST /calendars/{id}/sync` does."""
    limits.check(user.id, SYNC_START)
    runs = []
    for calendar in await run_in_threadpool(_enabled_calendars, user.id):
        runs.append(_sync_started(calendar, await _sync_now(orchestrator, calendar)))
    return SyncAllStarted(runs=runs)
