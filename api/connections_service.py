"""Connect and disconnect Google and Linear accounts, choose calendars: the logic behind the
connection routes.

A credential is proved at the provider (code exchange, userinfo, calendarList or `viewer`)
before anything is stored, and a rejected one is a 400 that leaves the database untouched.
Provider calls and database work run in the thread pool; Prefect work goes through the
orchestrator. A change that needs a sync (connect, enable) records the sync request in its own
transaction (core/sync_requests.py), so the first sync is owed durably: when Prefect is slow or
down the answer still succeeds, the row shows `pending`, and api/owed_starts.py starts it
within seconds of Prefect answering. What else follows a committed change (push channels,
cancelling runs, revoking tokens) is best effort: it is logged, never undoes the change.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from fastapi import status
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from api.errors import ApiError, ErrorCode
from api.limits import CALENDAR_CHANGE, UserLimits
from api.orchestrator import Orchestrator, OrchestratorUnavailable, RunInfo
from api.routes.calendars import calendar_start_request
from api.routes.linear import linear_start_request
from api.schemas import CalendarOut, GoogleConnectionOut, LinearConnectionOut, RunStatusOut
from api.sync_service import StartRequest, forget_ownership, start_sync
from core.accounts import (
    LinearAccount,
    delete_google_connection,
    delete_task_connection,
    owned_google_connection,
    owned_task_connection,
    set_calendar_enabled,
    upsert_linear_connection,
)
from core.connections import upsert_google_connection
from core.db import session_scope
from core.errors import AuthError, NeedsReauth, SyncError
from core.models import CalendarConnection, ConnectionStatus, ExternalCalendar, TaskConnection
from core.oauth_state import InvalidState, OAuthState, issue_state, verify_state
from core.providers import google_oauth, linear_oauth
from core.providers.google_calendar import GoogleCalendarClient
from core.providers.google_oauth import TokenGrant
from core.providers.linear import AuthKind, LinearClient, Viewer
from core.push_channels import close_channel, open_channel
from core.repositories.calendars import user_calendar
from core.repositories.oauth_states import redeem
from core.settings import Settings, get_settings
from core.sync_requests import RequestSource, request_sync, withdraw_request

logger = logging.getLogger(__name__)

T = TypeVar("T")

GOOGLE = "google"
LINEAR = "linear"
# A connect request waits this long at most for Linear to lift a rate limit.
CONNECT_RATE_LIMIT_WAIT_S = 5.0

STATE_REJECTED = "The connection request is invalid or has expired. Start connecting again."
STATE_USED = "This connection request was already used. Start connecting again."
GOOGLE_CODE_REJECTED = (
    "Google did not accept the authorization code (it expired or was already used). "
    "Start connecting again."
)
GOOGLE_NO_REFRESH_TOKEN = (
    "Google did not grant offline access to your calendars. Start connecting again."
)
LINEAR_CODE_REJECTED = (
    "Linear did not accept the authorization code (it expired or was already used). "
    "Start connecting again."
)
LINEAR_KEY_REJECTED = "Linear did not accept this API key. Check the key and try again."


def _not_configured(provider: str) -> ApiError:
    return ApiError(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"Connecting {provider} accounts is not configured on this server.",
        ErrorCode.PROVIDER_NOT_CONFIGURED,
    )


def _state_secret(settings: Settings, provider: str) -> str:
    if not settings.oauth_state_secret:
        raise _not_configured(provider)
    return settings.oauth_state_secret


def _redeem(state: OAuthState) -> bool:
    with session_scope() as session:
        return redeem(session, state.state_id, state.expires)


async def _redeem_state(settings: Settings, state: str, user_id: str, provider: str) -> OAuthState:
    """Verify the state (no database work for a forged one), then use it up, before any code is
    exchanged: a state and its PKCE verifier work once, whatever happens next."""
    try:
        verified = verify_state(
            _state_secret(settings, provider.capitalize()), state, user_id, provider
        )
    except InvalidState as exc:
        logger.info("rejected a %s callback: %s", provider, exc.reason)
        raise ApiError(
            status.HTTP_400_BAD_REQUEST, STATE_REJECTED, ErrorCode.OAUTH_STATE_INVALID
        ) from None
    if not await run_in_threadpool(_redeem, verified):
        logger.info("rejected a %s callback: state already used", provider)
        raise ApiError(status.HTTP_400_BAD_REQUEST, STATE_USED, ErrorCode.OAUTH_STATE_USED)
    return verified


def _retrying_conflict(store: Callable[[], T]) -> T:
    """Two callbacks racing to insert the same account: the loser retries and updates instead."""
    try:
        return store()
    except IntegrityError:
        return store()


def calendar_out(calendar: ExternalCalendar, run: RunInfo | None) -> CalendarOut:
    item = CalendarOut.model_validate(calendar)
    item.run = RunStatusOut.for_row(
        run, owed=run is None and calendar.sync_requested_at is not None
    )
    return item


def _owed(request: StartRequest, requested_at: datetime | None) -> StartRequest:
    return replace(request, requested_at=requested_at)


async def _start_syncs(
    orchestrator: Orchestrator, requests: Iterable[StartRequest], source: str = "api"
) -> dict[uuid.UUID, RunInfo]:
    """Start (or join) each requested sync; when Prefect is slow or down the change stays made
    and the request stays owed (the rows show `pending` until api/owed_starts.py starts it)."""
    runs: dict[uuid.UUID, RunInfo] = {}
    for request in requests:
        try:
            started = await start_sync(orchestrator, replace(request, source=source))
            runs[request.row_id] = started.run
        except OrchestratorUnavailable as exc:
            logger.warning(
                "the sync of %s is owed, Prefect did not answer: %s", request.row_id, exc
            )
    return runs


async def _cancel_active(orchestrator: Orchestrator, run_ids: Iterable[uuid.UUID | None]) -> None:
    """Cancel the runs still pending or running, so they stop writing rows about to go away."""
    try:
        runs = await orchestrator.read_runs([run_id for run_id in run_ids if run_id])
        for info in runs.values():
            if info.status.is_active:
                await orchestrator.cancel_run(info.id)
    except OrchestratorUnavailable as exc:
        logger.warning("could not cancel in-flight runs: %s", exc)


# -- Google -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GoogleAccount:
    email: str
    grant: TokenGrant
    refresh_token: str
    calendars: list[dict[str, Any]]


def google_authorize_url(user_id: str, login_hint: str | None) -> str:
    settings = get_settings()
    if not (settings.google_client_id and settings.google_oauth_redirect_uri):
        raise _not_configured("Google")
    state = issue_state(_state_secret(settings, "Google"), user_id, GOOGLE)
    return google_oauth.authorization_url(
        settings, state.value, state.code_challenge, login_hint=login_hint
    )


def _read_google_account(settings: Settings, code: str, state: OAuthState) -> _GoogleAccount:
    try:
        grant = google_oauth.exchange_code(settings, code, state.code_verifier)
    except NeedsReauth:
        raise ApiError(
            status.HTTP_400_BAD_REQUEST, GOOGLE_CODE_REJECTED, ErrorCode.OAUTH_CODE_REJECTED
        ) from None
    if grant.refresh_token is None:
        raise ApiError(
            status.HTTP_400_BAD_REQUEST, GOOGLE_NO_REFRESH_TOKEN, ErrorCode.GOOGLE_NO_REFRESH_TOKEN
        )
    email = google_oauth.fetch_account_email(settings, grant.access_token)
    client = GoogleCalendarClient(
        settings,
        access_token=grant.access_token,
        refresh_token=grant.refresh_token,
        expires_at=grant.expires_at,
    )
    return _GoogleAccount(email, grant, grant.refresh_token, client.list_calendars())


def _store_google(
    user_id: str, account: _GoogleAccount
) -> tuple[CalendarConnection, list[StartRequest]]:
    """The stored connection with its calendars, and the first syncs to start."""

    def store() -> tuple[CalendarConnection, list[StartRequest]]:
        with session_scope() as session:
            connection = upsert_google_connection(
                session,
                user_id=user_id,
                account_email=account.email,
                refresh_token=account.refresh_token,
                access_token=account.grant.access_token,
                expires_at=account.grant.expires_at,
                calendars=account.calendars,
            )
            session.refresh(connection, ["calendars"])
            enabled = [c for c in connection.calendars if c.enabled]
            at = request_sync(
                session, ExternalCalendar, [c.id for c in enabled], RequestSource.CONNECT
            )
            starts = [_owed(calendar_start_request(c), at) for c in enabled]
            return connection, starts

    return _retrying_conflict(store)


def google_connection_out(
    connection: CalendarConnection, runs: dict[uuid.UUID, RunInfo]
) -> GoogleConnectionOut:
    return GoogleConnectionOut(
        id=connection.id,
        account_email=connection.account_email,
        status=connection.status,
        calendars=[calendar_out(c, runs.get(c.id)) for c in connection.calendars],
    )


async def connect_google(
    orchestrator: Orchestrator, user_id: str, code: str, state: str
) -> GoogleConnectionOut:
    settings = get_settings()
    verified = await _redeem_state(settings, state, user_id, GOOGLE)
    account = await run_in_threadpool(_read_google_account, settings, code, verified)
    connection, starts = await run_in_threadpool(_store_google, user_id, account)
    runs = await _start_syncs(orchestrator, starts, source="connect")
    for start in starts:
        await run_in_threadpool(open_channel, start.row_id)
    logger.info("user %s connected a Google account (%s)", user_id, connection.id)
    return google_connection_out(connection, runs)


# -- calendars --------------------------------------------------------------------------------


def _owned_calendar(user_id: str, calendar_id: uuid.UUID) -> ExternalCalendar | None:
    with session_scope() as session:
        return user_calendar(session, user_id, calendar_id)


def _set_enabled(user_id: str, calendar_id: uuid.UUID, enabled: bool) -> ExternalCalendar:
    """Enabling a usable calendar owes it a sync; disabling forgets any it owed."""
    with session_scope() as session:
        calendar = user_calendar(session, user_id, calendar_id)
        if calendar is None:
            raise ApiError(
                status.HTTP_404_NOT_FOUND, "calendar not found", ErrorCode.CALENDAR_NOT_FOUND
            )
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
) -> CalendarOut | None:
    """Enable (sync now, open a push channel) or disable (close it, drop the events); only an
    actual change counts against the user's limit, as only it costs (a full resync, channels)."""
    calendar = await run_in_threadpool(_owned_calendar, user_id, calendar_id)
    if calendar is None:
        return None
    if calendar.enabled == enabled:
        return calendar_out(calendar, None)
    limits.check(user_id, CALENDAR_CHANGE)
    if not enabled:
        await _cancel_active(orchestrator, [calendar.latest_sync_flow_run_id])
        await run_in_threadpool(close_channel, calendar.id)
        calendar = await run_in_threadpool(_set_enabled, user_id, calendar_id, False)
        return calendar_out(calendar, None)
    calendar = await run_in_threadpool(_set_enabled, user_id, calendar_id, True)
    if calendar.connection.status == ConnectionStatus.NEEDS_REAUTH:
        return calendar_out(calendar, None)
    request = _owed(calendar_start_request(calendar), calendar.sync_requested_at)
    runs = await _start_syncs(orchestrator, [request])
    await run_in_threadpool(open_channel, calendar.id)
    return calendar_out(calendar, runs.get(calendar.id))


# -- Linear -----------------------------------------------------------------------------------


def linear_authorize_url(user_id: str) -> str:
    settings = get_settings()
    if not (settings.linear_client_id and settings.linear_oauth_redirect_uri):
        raise _not_configured("Linear")
    state = issue_state(_state_secret(settings, "Linear"), user_id, LINEAR)
    return linear_oauth.authorization_url(settings, state.value, state.code_challenge)


def _read_viewer(settings: Settings, token: str, auth_kind: AuthKind, rejected: str) -> Viewer:
    client = LinearClient(
        settings,
        access_token=token,
        auth_kind=auth_kind,
        max_rate_limit_wait_s=CONNECT_RATE_LIMIT_WAIT_S,
    )
    with client:
        try:
            return client.fetch_viewer()
        except AuthError:
            code = (
                ErrorCode.LINEAR_KEY_REJECTED
                if auth_kind == "api_key"
                else ErrorCode.OAUTH_CODE_REJECTED
            )
            raise ApiError(status.HTTP_400_BAD_REQUEST, rejected, code) from None


def _linear_key_account(settings: Settings, api_key: str) -> LinearAccount:
    viewer = _read_viewer(settings, api_key, "api_key", LINEAR_KEY_REJECTED)
    return LinearAccount(
        organization_id=viewer.organization_id,
        organization_name=viewer.organization_name,
        url_key=viewer.url_key,
        auth_kind="api_key",
        access_token=api_key,
    )


def _linear_oauth_account(settings: Settings, code: str, state: OAuthState) -> LinearAccount:
    try:
        tokens = linear_oauth.exchange_authorization_code(
            settings, code, settings.linear_oauth_redirect_uri, state.code_verifier
        )
    except NeedsReauth:
        raise ApiError(
            status.HTTP_400_BAD_REQUEST, LINEAR_CODE_REJECTED, ErrorCode.OAUTH_CODE_REJECTED
        ) from None
    viewer = _read_viewer(settings, tokens.access_token, "oauth", LINEAR_CODE_REJECTED)
    return LinearAccount(
        organization_id=viewer.organization_id,
        organization_name=viewer.organization_name,
        url_key=viewer.url_key,
        auth_kind="oauth",
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at,
    )


def _store_linear(user_id: str, account: LinearAccount) -> TaskConnection:
    def store() -> TaskConnection:
        with session_scope() as session:
            connection = upsert_linear_connection(session, user_id=user_id, account=account)
            request_sync(session, TaskConnection, [connection.id], RequestSource.CONNECT)
            return connection

    return _retrying_conflict(store)


async def _connected_linear(
    orchestrator: Orchestrator, user_id: str, account: LinearAccount
) -> LinearConnectionOut:
    """Store the workspace and start its first sync."""
    connection = await run_in_threadpool(_store_linear, user_id, account)
    logger.info("user %s connected a Linear workspace (%s)", user_id, connection.id)
    request = _owed(linear_start_request(connection), connection.sync_requested_at)
    run = (await _start_syncs(orchestrator, [request], source="connect")).get(connection.id)
    out = LinearConnectionOut.model_validate(connection)
    if run is not None:
        out.latest_sync_flow_run_id = run.id
    out.run = RunStatusOut.for_row(run, owed=run is None)
    return out


async def connect_linear_api_key(
    orchestrator: Orchestrator, user_id: str, api_key: str
) -> LinearConnectionOut:
    account = await run_in_threadpool(_linear_key_account, get_settings(), api_key.strip())
    return await _connected_linear(orchestrator, user_id, account)


async def connect_linear_oauth(
    orchestrator: Orchestrator, user_id: str, code: str, state: str
) -> LinearConnectionOut:
    settings = get_settings()
    verified = await _redeem_state(settings, state, user_id, LINEAR)
    account = await run_in_threadpool(_linear_oauth_account, settings, code, verified)
    return await _connected_linear(orchestrator, user_id, account)


# -- disconnect -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disconnected:
    """A connection about to be deleted: what to stop first, and the revocation to run after
    the response (None when there is nothing of ours to revoke)."""

    provider: str
    run_ids: list[uuid.UUID | None]
    calendar_ids: list[uuid.UUID]
    revoke: Callable[[], None] | None


def _google_revoker(refresh_token: str, connection_id: uuid.UUID) -> Callable[[], None]:
    def revoke() -> None:
        _best_effort_revoke(
            lambda: google_oauth.revoke_token(get_settings(), refresh_token), GOOGLE, connection_id
        )

    return revoke


def _linear_revoker(connection: TaskConnection) -> Callable[[], None] | None:
    # A personal API key is the user's own, possibly used elsewhere: we only forget our copy.
    if connection.auth_kind != "oauth":
        return None
    token, hint = connection.access_token, "access_token"
    if connection.refresh_token:
        token, hint = connection.refresh_token, "refresh_token"
    connection_id = connection.id

    def revoke() -> None:
        _best_effort_revoke(
            lambda: linear_oauth.revoke_token(get_settings(), token, hint=hint),
            LINEAR,
            connection_id,
        )

    return revoke


def _best_effort_revoke(call: Callable[[], bool], provider: str, connection_id: uuid.UUID) -> None:
    try:
        revoked = call()
    except SyncError as exc:
        logger.warning("revoking the %s token of %s failed: %s", provider, connection_id, exc)
        return
    except Exception:
        logger.exception("revoking the %s token of %s failed", provider, connection_id)
        return
    logger.info(
        "%s token of connection %s %s",
        provider,
        connection_id,
        "revoked" if revoked else "was already invalid",
    )


def _to_disconnect(user_id: str, connection_id: uuid.UUID) -> Disconnected | None:
    with session_scope() as session:
        google = owned_google_connection(session, user_id, connection_id)
        if google is not None:
            return Disconnected(
                provider=GOOGLE,
                run_ids=[c.latest_sync_flow_run_id for c in google.calendars],
                calendar_ids=[c.id for c in google.calendars if c.channel_id],
                revoke=_google_revoker(google.refresh_token, google.id),
            )
        task = owned_task_connection(session, user_id, connection_id)
        if task is not None:
            return Disconnected(
                provider=LINEAR,
                run_ids=[task.latest_sync_flow_run_id],
                calendar_ids=[],
                revoke=_linear_revoker(task),
            )
    return None


def _delete(provider: str, connection_id: uuid.UUID) -> None:
    with session_scope() as session:
        if provider == GOOGLE:
            delete_google_connection(session, connection_id)
        else:
            delete_task_connection(session, connection_id)


async def disconnect(
    orchestrator: Orchestrator, user_id: str, connection_id: uuid.UUID
) -> Disconnected | None:
    """Cancel its runs, close its channels, delete it with everything it synced (one
    transaction); None when the user has no such connection (a 404)."""
    target = await run_in_threadpool(_to_disconnect, user_id, connection_id)
    if target is None:
        return None
    await _cancel_active(orchestrator, target.run_ids)
    for calendar_id in target.calendar_ids:
        await run_in_threadpool(close_channel, calendar_id)
    await run_in_threadpool(_delete, target.provider, connection_id)
    forget_ownership(user_id)
    logger.info("user %s disconnected %s connection %s", user_id, target.provider, connection_id)
    return target
