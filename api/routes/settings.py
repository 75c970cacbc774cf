"""The current user's sync settings."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AUTH_ERRORS, UNREADABLE_BODY, CurrentUser, SessionDep
from api.schemas import UserSettingsIn, UserSettingsOut
from core.repositories.user_settings import (
    calendar_sync_from_months,
    set_calendar_sync_from_months,
)
from core.settings import get_settings
from core.sync_requests import request_full_resyncs

router = APIRouter(tags=["settings"], responses=AUTH_ERRORS)


@router.get("/me/settings", response_model=UserSettingsOut)
def my_settings(user: CurrentUser, session: SessionDep) -> UserSettingsOut:
    months = calendar_sync_from_months(session, user.id)
    return UserSettingsOut(
        calendar_sync_from_months=months or get_settings().calendar_sync_from_months
    )


@router.patch("/me/settings", response_model=UserSettingsOut, responses=UNREADABLE_BODY)
def update_my_settings(
    body: UserSettingsIn, user: CurrentUser, session: SessionDep
) -> UserSettingsOut:
    """A new range resyncs each enabled calendar in full (started within seconds, and recorded
    with the change, so it happens even if the orchestrator is down right now)."""
    before = calendar_sync_from_months(session, user.id) or get_settings().calendar_sync_from_months
    set_calendar_sync_from_months(session, user.id, body.calendar_sync_from_months)
    if body.calendar_sync_from_months != before:
        request_full_resyncs(session, user.id)
    session.commit()
    return UserSettingsOut(calendar_sync_from_months=body.calendar_sync_from_months)
