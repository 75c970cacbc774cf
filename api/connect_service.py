"""Connect a Google account or a Linear workspace: the logic behind the connect routes.

The credential is proved at the provider (core/account_checks.py) before anything is stored; a
rejected one leaves the database untouched. Storing it records the first syncs' requests in the
same transaction (core/sync_requests.py), so they are owed durably: when Prefect is slow or
down the connect still succeeds, the rows show `pending`, and api/owed_starts.py starts them
within seconds of Prefect answering. The answer is built from the rows as stored after the
starts, by the same builders as the listings (api/connection_views.py). Provider calls and
database work run in the thread pool.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from api.connection_views import google_connection_out, linear_connection_out
from api.oauth_consent import GOOGLE, LINEAR, redeem_state
from api.orchestrator import Orchestrator
from api.schemas import GoogleConnectionOut, LinearConnectionOut
from api.sync_service import calendar_start_request, linear_start_request, start_or_owe
from core.account_checks import (
    GoogleAccount,
    google_account,
    linear_key_account,
    linear_oauth_account,
)
from core.db import session_scope
from core.models import CalendarConnection, ExternalCalendar, TaskConnection
from core.push_channels import open_channel
from core.repositories.google_connections import owned_google_connection, upsert_google_connection
from core.repositories.linear_connections import (
    LinearAccount,
    owned_task_connection,
    upsert_linear_connection,
)
from core.run_starts import StartRequest
from core.settings import get_settings
from core.sync_requests import RequestSource, request_sync

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _retrying_conflict(store: Callable[[], T]) -> T:
    """Two callbacks racing to insert the same account: the loser retries and updates instead."""
    try:
        return store()
    except IntegrityError:
        return store()


def _store_google(
    user_id: str, account: GoogleAccount
) -> tuple[CalendarConnection, list[StartRequest]]:
    """The stored connection, and the first syncs of its enabled calendars to start."""

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
            starts = [replace(calendar_start_request(c), requested_at=at) for c in enabled]
            return connection, starts

    return _retrying_conflict(store)


def _google_connection(user_id: str, connection_id: uuid.UUID) -> CalendarConnection | None:
    with session_scope() as session:
        return owned_google_connection(session, user_id, connection_id)


async def connect_google(
    orchestrator: Orchestrator, user_id: str, code: str, state: str
) -> GoogleConnectionOut:
    """Store the account and its calendars (the primary enabled), start their first syncs and
    open their push channels."""
    settings = get_settings()
    verified = await redeem_state(settings, state, user_id, GOOGLE)
    account = await run_in_threadpool(google_account, settings, code, verified.code_verifier)
    connection, starts = await run_in_threadpool(_store_google, user_id, account)
    runs = await start_or_owe(orchestrator, starts, RequestSource.CONNECT)
    for start in starts:
        await run_in_threadpool(open_channel, start.row_id)
    logger.info("user %s connected a Google account (%s)", user_id, connection.id)
    # As stored now: the starts recorded their runs on the rows (unless disconnected meanwhile).
    stored = await run_in_threadpool(_google_connection, user_id, connection.id)
    return google_connection_out(stored or connection, {run.id: run for run in runs.values()})


def _store_linear(user_id: str, account: LinearAccount) -> tuple[TaskConnection, StartRequest]:
    """The stored workspace, and the start of its first sync."""

    def store() -> tuple[TaskConnection, StartRequest]:
        with session_scope() as session:
            connection = upsert_linear_connection(session, user_id=user_id, account=account)
            at = request_sync(session, TaskConnection, [connection.id], RequestSource.CONNECT)
            return connection, replace(linear_start_request(connection), requested_at=at)

    return _retrying_conflict(store)


def _linear_connection(user_id: str, connection_id: uuid.UUID) -> TaskConnection | None:
    with session_scope() as session:
        return owned_task_connection(session, user_id, connection_id)


async def _connected_linear(
    orchestrator: Orchestrator, user_id: str, account: LinearAccount
) -> LinearConnectionOut:
    """Store the workspace (one connection per workspace) and start its first sync."""
    connection, start = await run_in_threadpool(_store_linear, user_id, account)
    logger.info("user %s connected a Linear workspace (%s)", user_id, connection.id)
    runs = await start_or_owe(orchestrator, [start], RequestSource.CONNECT)
    # As stored now: the start recorded its run on the row (unless disconnected meanwhile).
    stored = await run_in_threadpool(_linear_connection, user_id, connection.id)
    return linear_connection_out(stored or connection, {run.id: run for run in runs.values()})


async def connect_linear_api_key(
    orchestrator: Orchestrator, user_id: str, api_key: str
) -> LinearConnectionOut:
    """Connect with a personal API key; connecting the same workspace again replaces the key."""
    account = await run_in_threadpool(linear_key_account, get_settings(), api_key.strip())
    return await _connected_linear(orchestrator, user_id, account)


async def connect_linear_oauth(
    orchestrator: Orchestrator, user_id: str, code: str, state: str
) -> LinearConnectionOut:
    settings = get_settings()
    verified = await redeem_state(settings, state, user_id, LINEAR)
    account = await run_in_threadpool(linear_oauth_account, settings, code, verified.code_verifier)
    return await _connected_linear(orchestrator, user_id, account)
