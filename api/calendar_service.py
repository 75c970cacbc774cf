"""Turn a calendar's sync on or off: the logic behind `PATCH /calendars/{id}`.

Enabling owes the calendar a full sync (recorded with the change) and opens its push channel;
disabling cancels its run in flight, closes its channel and drops its events. Only an actual
change counts against the user's limit, as only it costs (a full resync, channels).
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from starlette.concurrency import run_in_threadpool

from api.connection_views import calendar_out
from api.limits import CALENDAR_CHANGE, UserLimits
from api.orchestrator import Orchestrator
from api.schemas import CalendarOut
from api.sync_service import calendar_start_request, cancel_active, start_or_owe
from core.db import session_scope
from core.errors import NotOwned, RefusalCode
from core.models import ConnectionStatus, ExternalCalendar
from core.push_channels import close_channel, open_channel
from core.repositories.calendars import user_calendar
from core.repositories.google_connections import set_calendar_enabled
from core.sync_requests import RequestSource, request_sync, withdraw_request

CALENDAR_NOT_FOUND = "calendar not found"


def _owned_calendar(user_id: str, calendar_id: uuid.UUID) -> ExternalCalendar:
    with session_scope() as session:
        calendar = user_calendar(session, user_id, calendar_id)
    if calendar is None:
        raise NotOwned(CALENDAR_NOT_FOUND, RefusalCode.CALENDAR_NOT_FOUND)
    return calendar


def _set_enabled(user_id: str, calendar_id: uuid.UUID, enabled: bool) -> ExternalCalendar:
    """Enabling a usable calendar owes it a sync; disabling forgets any it owed."""
    with session_scope() as session:
        calendar = user_calendar(session, user_id, calendar_id)
        if calendar is None:
            raise NotOwned(CALENDAR_NOT_FOUND, RefusalCode.CALENDAR_NOT_FOUND)
        set_calendar_enabled(session, calendar, enabled)
        if not enabled:
            withdraw_request(session, ExternalCalendar, calendar.id)
        elif calendar.connection.status != ConnectionStatus.NEEDS_REAUTH:
            request_sync(session, ExternalCalendar, [calendar.id], RequestSource.ENABLE)
        return calendar


async def update_calendar(
    orchestrator: Orchestrator,
    limits: UserLimits,
    user_id: str,
    calendar_id: uuid.UUID,
    enabled: bool,
) -> CalendarOut:
    """Enable (sync now, open a push channel) or disable (close it, drop the events)."""
    calendar = await run_in_threadpool(_owned_calendar, user_id, calendar_id)
    if calendar.enabled == enabled:
        return calendar_out(calendar, {})
    limits.check(user_id, CALENDAR_CHANGE)
    if not enabled:
        await cancel_active(orchestrator, [calendar.latest_sync_flow_run_id])
        await run_in_threadpool(close_channel, calendar.id)
        calendar = await run_in_threadpool(_set_enabled, user_id, calendar_id, False)
        return calendar_out(calendar, {})
    calendar = await run_in_threadpool(_set_enabled, user_id, calendar_id, True)
    if calendar.connection.status == ConnectionStatus.NEEDS_REAUTH:
        return calendar_out(calendar, {})
    request = calendar_start_request(calendar)
    request = replace(request, requested_at=calendar.sync_requested_at)
    runs = await start_or_owe(orchestrator, [request], RequestSource.SYNC_NOW)
    await run_in_threadpool(open_channel, calendar.id)
    # As stored now: the start recorded its run on the row.
    calendar = await run_in_threadpool(_owned_calendar, user_id, calendar_id)
    return calendar_out(calendar, {run.id: run for run in runs.values()})
