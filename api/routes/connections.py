"""Connect Google and Linear accounts, choose which calendars sync, disconnect."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Response, status

from api import calendar_service, connect_service, disconnect_service, oauth_consent
from api.deps import AUTH_ERRORS, UNREADABLE_BODY, CurrentUser, OrchestratorDep, OwnershipDep
from api.limits import TOO_MANY_REQUESTS, LimitsDep
from api.schemas import (
    AuthorizeUrl,
    CalendarOut,
    CalendarPatch,
    ErrorBody,
    GoogleConnectionOut,
    LinearApiKey,
    LinearConnectionOut,
    OAuthCallback,
)

router = APIRouter(tags=["connections"], responses=AUTH_ERRORS)

REJECTED = {400: {"model": ErrorBody, "description": "The state, code or key was rejected."}}
PROVIDER_DOWN = {502: {"model": ErrorBody, "description": "The provider failed; try again."}}
NOT_CONFIGURED = {503: {"model": ErrorBody, "description": "This provider is not configured."}}


@router.get(
    "/connections/google/authorize-url", response_model=AuthorizeUrl, responses=NOT_CONFIGURED
)
async def google_authorize_url(
    user: CurrentUser,
    login_hint: Annotated[
        str | None, Query(max_length=320, description="Email of the account to preselect.")
    ] = None,
) -> AuthorizeUrl:
    return AuthorizeUrl(url=oauth_consent.google_authorize_url(user.id, login_hint))


@router.post(
    "/connections/google/callback",
    response_model=GoogleConnectionOut,
    responses={**REJECTED, **PROVIDER_DOWN, **NOT_CONFIGURED},
)
async def google_callback(
    body: OAuthCallback, user: CurrentUser, orchestrator: OrchestratorDep
) -> GoogleConnectionOut:
    """Store the account and its calendars (the primary enabled) and start their first syncs."""
    return await connect_service.connect_google(orchestrator, user.id, body.code, body.state)


@router.patch(
    "/calendars/{calendar_id}",
    response_model=CalendarOut,
    tags=["calendars"],
    responses={
        404: {"model": ErrorBody, "description": "No such calendar for this user."},
        **UNREADABLE_BODY,
        **TOO_MANY_REQUESTS,
    },
)
async def update_calendar(
    calendar_id: uuid.UUID,
    body: CalendarPatch,
    user: CurrentUser,
    orchestrator: OrchestratorDep,
    limits: LimitsDep,
) -> CalendarOut:
    """Enabling starts a sync (and a push channel); disabling stops both and drops its events."""
    return await calendar_service.update_calendar(
        orchestrator, limits, user.id, calendar_id, body.enabled
    )


@router.get(
    "/connections/linear/authorize-url", response_model=AuthorizeUrl, responses=NOT_CONFIGURED
)
async def linear_authorize_url(user: CurrentUser) -> AuthorizeUrl:
    return AuthorizeUrl(url=oauth_consent.linear_authorize_url(user.id))


@router.post(
    "/connections/linear/callback",
    response_model=LinearConnectionOut,
    responses={**REJECTED, **PROVIDER_DOWN, **NOT_CONFIGURED},
)
async def linear_callback(
    body: OAuthCallback, user: CurrentUser, orchestrator: OrchestratorDep
) -> LinearConnectionOut:
    """Store the workspace (one connection per workspace) and start its first sync."""
    return await connect_service.connect_linear_oauth(orchestrator, user.id, body.code, body.state)


@router.post(
    "/connections/linear",
    response_model=LinearConnectionOut,
    responses={**REJECTED, **PROVIDER_DOWN},
)
async def connect_linear_api_key(
    body: LinearApiKey, user: CurrentUser, orchestrator: OrchestratorDep
) -> LinearConnectionOut:
    """Connect with a personal API key; connecting the same workspace again replaces the key."""
    return await connect_service.connect_linear_api_key(orchestrator, user.id, body.api_key)


@router.delete(
    "/connections/{connection_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: {"model": ErrorBody, "description": "No such connection for this user."}},
)
async def disconnect(
    connection_id: uuid.UUID,
    user: CurrentUser,
    orchestrator: OrchestratorDep,
    ownership: OwnershipDep,
    background: BackgroundTasks,
) -> Response:
    """Remove a Google or Linear connection with everything it synced; the provider's token is
    revoked after the response, best effort."""
    done = await disconnect_service.disconnect(orchestrator, ownership, user.id, connection_id)
    if done.revoke is not None:
        background.add_task(done.revoke)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
