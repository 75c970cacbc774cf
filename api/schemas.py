"""Request and response models of the HTTP API (what the OpenAPI schema documents)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from api.orchestrator import RunStatus


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong, safe to show to the user.")


class RunStatusOut(BaseModel):
    """The state of one sync run, in the frontend's vocabulary."""

    flow_run_id: uuid.UUID
    status: RunStatus = Field(description="pending, running, completed, failed or canceled.")
    error: str | None = Field(None, description="A user-safe message when failed or canceled.")
    started_at: datetime | None = None
    ended_at: datetime | None = None


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


class SyncStarted(BaseModel):
    calendar_id: uuid.UUID
    flow_run_id: uuid.UUID
    status: RunStatus
    already_running: bool = Field(description="True when an in-flight run was returned instead.")


class SyncAllStarted(BaseModel):
    runs: list[SyncStarted]


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    calendar_id: uuid.UUID = Field(validation_alias="external_calendar_id")
    external_id: str
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
    status: str
    database: bool | None = None
    prefect: bool | None = None
