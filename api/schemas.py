"""Request and response models of the HTTP API (what the OpenAPI schema documents)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.errors import DESCRIPTIONS, ErrorCode
from api.orchestrator import RunInfo, RunStatus
from core.sync.progress import SyncProgress


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong, safe to show to the user.")
    code: ErrorCode = Field(
        description="Stable machine-readable code; the text of `detail` may change, this does "
        "not.\n\n" + "\n".join(f"- `{code.value}`: {text}" for code, text in DESCRIPTIONS.items())
    )


class ProgressOut(BaseModel):
    """How far a running (or finished) sync has come."""

    items: int = Field(description="Items (events or issues) processed so far.")
    pages: int = Field(description="Provider pages processed so far.")
    fraction: float | None = Field(
        description="Estimated fraction done, 0 to 1; null when there is nothing to estimate "
        "from (a calendar's first or an incremental sync, Linear). 1 once the pass completed."
    )


class RunStatusOut(BaseModel):
    """The state of one sync run, in the frontend's vocabulary."""

    flow_run_id: uuid.UUID | None = Field(
        description="Null while a requested sync waits for the orchestrator to create its run "
        "(status pending): it is started within seconds of the orchestrator answering again."
    )
    status: RunStatus = Field(description="pending, running, completed, failed or canceled.")
    error: str | None = Field(
        None,
        description="A user-safe message when failed or canceled, or why a pending run waits "
        "(a provider's rate limit: 'Google is rate-limiting requests; retrying at 14:05 UTC.').",
    )
    started_at: datetime | None = None
    ended_at: datetime | None = None
    progress: ProgressOut | None = Field(
        None, description="Set by the status route and the live streams once the run reports it."
    )

    @classmethod
    def from_info(cls, info: RunInfo, progress: SyncProgress | None = None) -> RunStatusOut:
        return cls(
            flow_run_id=info.id,
            status=info.status,
            error=info.error,
            started_at=info.started_at,
            ended_at=info.ended_at,
            progress=ProgressOut(**progress.as_dict()) if progress is not None else None,
        )

    @classmethod
    def for_row(cls, info: RunInfo | None, *, owed: bool) -> RunStatusOut | None:
        """What a row shows: `pending` (no run ID yet) while a requested sync is owed and no
        run of the row is in flight, else its latest run's status."""
        if owed and (info is None or info.status.is_final):
            return cls(flow_run_id=None, status=RunStatus.PENDING)
        return cls.from_info(info) if info is not None else None


class LiveRunOut(RunStatusOut):
    """A run in the user's live stream, with the calendar or Linear connection it syncs."""

    calendar_id: uuid.UUID | None = None
    task_connection_id: uuid.UUID | None = None


class SyncStreamSnapshot(BaseModel):
    """The first message of the user's stream: the latest run of each calendar and connection."""

    runs: list[LiveRunOut]


class CalendarOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    external_id: str
    name: str
    color: str | None
    is_primary: bool
    enabled: bool
    latest_sync_flow_run_id: uuid.UUID | None
    last_sync_error_message: str | None
    last_synced_at: datetime | None
    run: RunStatusOut | None = Field(None, description="Current status of the latest run.")


class GoogleConnectionOut(BaseModel):
    id: uuid.UUID
    account_email: str
    status: str = Field(description="active, or needs_reauth when the user must reconnect.")
    calendars: list[CalendarOut]


def _owed_run_id() -> Any:
    return Field(
        description="Null when the orchestrator was slow to answer: the sync is accepted "
        "(status pending) and its run is created within seconds; the listing shows it then."
    )


class SyncStarted(BaseModel):
    calendar_id: uuid.UUID
    flow_run_id: uuid.UUID | None = _owed_run_id()
    status: RunStatus
    already_running: bool = Field(description="True when an in-flight run was returned instead.")


class SyncAllStarted(BaseModel):
    runs: list[SyncStarted]


class EventOut(BaseModel):
    """An event as calendar views receive it: identified by its calendar and its Google ID.

    Served from the JSON stored with each event (core/event_view.py); a test keeps the two equal.
    """

    calendar_id: uuid.UUID
    external_id: str = Field(description="Google's event ID, unique within the calendar.")
    title: str
    description: str | None
    location: str | None
    start_at: datetime
    end_at: datetime
    all_day: bool
    start_date: date | None = Field(description="For all-day events: the first day.")
    end_date: date | None = Field(description="For all-day events: the day after the last.")
    time_zone: str | None
    recurring_event_id: str | None
    busy: bool
    visibility: str
    status: str
    is_editable: bool
    organizer_email: str | None


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class Health(BaseModel):
    status: str = Field(
        description="ok; degraded when the database answers but Prefect does not (reads work, "
        "starting syncs and live status do not); unavailable when the database does not."
    )
    database: bool | None = None
    prefect: bool | None = None


class AuthorizeUrl(BaseModel):
    url: str = Field(description="Send the browser here; the provider redirects back with code.")


class OAuthCallback(BaseModel):
    code: str = Field(min_length=1, max_length=4096, description="`code` from the redirect.")
    state: str = Field(min_length=1, max_length=512, description="`state` from the redirect.")


class LinearApiKey(BaseModel):
    # It travels in an HTTP header to Linear: anything but printable ASCII could never be a key.
    api_key: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^\s*[!-~]+\s*$",
        description="A Linear personal API key (printable ASCII; surrounding blanks are ignored).",
    )


class LinearConnectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: str
    organization_name: str
    url_key: str
    auth_kind: str = Field(description="api_key or oauth.")
    status: str = Field(description="active, or needs_reauth when the user must reconnect.")
    latest_sync_flow_run_id: uuid.UUID | None
    last_sync_error_message: str | None
    last_synced_at: datetime | None
    run: RunStatusOut | None = Field(None, description="Current status of the latest run.")


class CalendarPatch(BaseModel):
    enabled: bool = Field(description="Whether the calendar syncs; disabling drops its events.")


class UserSettingsIn(BaseModel):
    calendar_sync_from_months: int = Field(
        ge=1, le=24, description="How many months back a full calendar sync reaches."
    )


class UserSettingsOut(BaseModel):
    calendar_sync_from_months: int = Field(description="The user's choice, or the default.")


class LinearSyncStarted(BaseModel):
    task_connection_id: uuid.UUID
    flow_run_id: uuid.UUID | None = _owed_run_id()
    status: RunStatus
    already_running: bool


class LinearSyncAllStarted(BaseModel):
    runs: list[LinearSyncStarted]


class TaskItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    task_connection_id: uuid.UUID
    external_id: str
    identifier: str
    title: str
    url: str
    priority: int = Field(description="0 none, 1 urgent, 2 high, 3 medium, 4 low.")
    due_date: date | None
    project_name: str | None
    state_name: str
    state_type: str = Field(description="triage, backlog, unstarted or started.")
    updated_at: datetime


class TaskList(BaseModel):
    items: list[TaskItemOut]


class StreamTicket(BaseModel):
    ticket: str = Field(description="Pass as `?ticket=` to one SSE route; single-use.")
    expires_at: datetime
    expires_in_s: int = Field(description="Seconds the ticket stays valid if unused.")
