"""Google connections and calendars of the current user; starting calendar syncs."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from starlette.concurrency import run_in_threadpool

from api.deps import AUTH_ERRORS, CurrentUser, OrchestratorDep
from api.errors import ApiError, ErrorCode
from api.limits import SYNC_START, TOO_MANY_REQUESTS, LimitsDep
from api.orchestrator import Orchestrator, RunStatus
from api.schemas import (
    CalendarOut,
    ErrorBody,
    GoogleConnectionOut,
    RunStatusOut,
    SyncAllStarted,
    SyncStarted,
)
from api.sync_service import (
    Started,
    calendar_start_request,
    request_and_start,
    with_row_error,
)
from core.db import session_scope
from core.models import CalendarConnection, ConnectionStatus, ExternalCalendar
from core.repositories.calendars import user_calendar, user_calendars, user_google_connections
from core.sync_requests import RequestSource

router = APIRouter(tags=["calendars"], responses=AUTH_ERRORS)

NOT_FOUND = {404: {"model": ErrorBody, "description": "No such calendar for this user."}}
UNAVAILABLE = {503: {"model": ErrorBody, "description": "The orchestrator is unreachable."}}


def _connections(user_id: str) -> list[CalendarConnection]:
    with session_scope() as session:
        return user_google_connections(session, user_id)


@router.get(
    "/me/google-connection", response_model=list[GoogleConnectionOut], responses=UNAVAILABLE
)
async def my_google_connections(
    user: CurrentUser, orchestrator: OrchestratorDep
) -> list[GoogleConnectionOut]:
    connections = await run_in_threadpool(_connections, user.id)
    run_ids = [c.latest_sync_flow_run_id for conn in connections for c in conn.calendars]
    runs = await orchestrator.read_runs([run_id for run_id in run_ids if run_id])
    out = []
    for connection in connections:
        calendars = []
        for calendar in connection.calendars:
            item = CalendarOut.model_validate(calendar)
            info = (
                runs.get(calendar.latest_sync_flow_run_id)
                if calendar.latest_sync_flow_run_id
                else None
            )
            if info is not None:
                info = with_row_error(info, calendar.last_sync_error_message)
            item.run = RunStatusOut.for_row(info, owed=calendar.sync_requested_at is not None)
            calendars.append(item)
        out.append(
            GoogleConnectionOut(
                id=connection.id,
                account_email=connection.account_email,
                status=connection.status,
                calendars=calendars,
            )
        )
    return out


def _startable(calendar: ExternalCalendar | None) -> ExternalCalendar:
    if calendar is None:
        raise ApiError(
            status.HTTP_404_NOT_FOUND, "calendar not found", ErrorCode.CALENDAR_NOT_FOUND
        )
    if calendar.connection.status == ConnectionStatus.NEEDS_REAUTH:
        raise ApiError(
            status.HTTP_409_CONFLICT,
            "Google access was revoked: reconnect your Google account.",
            ErrorCode.REAUTH_REQUIRED,
        )
    if not calendar.enabled:
        raise ApiError(
            status.HTTP_409_CONFLICT,
            "this calendar is disabled; enable it to sync",
            ErrorCode.CALENDAR_DISABLED,
        )
    return calendar


def _user_calendar(user_id: str, calendar_id: uuid.UUID) -> ExternalCalendar | None:
    with session_scope() as session:
        return user_calendar(session, user_id, calendar_id)


@router.post(
    "/calendars/{calendar_id}/sync",
    response_model=SyncStarted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**NOT_FOUND, **UNAVAILABLE, 409: {"model": ErrorBody}, **TOO_MANY_REQUESTS},
)
async def sync_calendar(
    calendar_id: uuid.UUID, user: CurrentUser, orchestrator: OrchestratorDep, limits: LimitsDep
) -> SyncStarted:
    """Starts (or joins) the calendar's sync. The request is recorded first, so it is never
    lost: when Prefect is slow the answer is still 202 with status pending and no run ID yet;
    when Prefect is down it is 503, and the recorded sync starts once Prefect is back."""
    calendar = _startable(await run_in_threadpool(_user_calendar, user.id, calendar_id))
    limits.check(user.id, SYNC_START)
    return _sync_started(calendar, await _sync_now(orchestrator, calendar))


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
    responses={**UNAVAILABLE, **TOO_MANY_REQUESTS},
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
