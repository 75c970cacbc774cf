"""Disconnect a Google account or a Linear workspace: the logic behind
`DELETE /connections/{id}`.

Its runs in flight are cancelled and its push channels closed first (best effort: logged,
never undoing the disconnect), then the connection goes with everything it synced, in one
transaction. The provider's token is revoked after the response (core/token_revocation.py).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from api.oauth_consent import GOOGLE, LINEAR
from api.orchestrator import Orchestrator
from api.run_ownership import RunOwnership
from api.sync_service import cancel_active
from core.db import session_scope
from core.errors import NotOwned, RefusalCode
from core.push_channels import close_channel
from core.repositories.google_connections import (
    delete_google_connection,
    owned_google_connection,
)
from core.repositories.linear_connections import delete_task_connection, owned_task_connection
from core.token_revocation import google_revoker, linear_revoker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Disconnected:
    """A connection about to be deleted: what to stop first, and the revocation to run after
    the response (None when there is nothing of ours to revoke)."""

    provider: str
    run_ids: list[uuid.UUID | None]
    calendar_ids: list[uuid.UUID]
    revoke: Callable[[], None] | None


def _to_disconnect(user_id: str, connection_id: uuid.UUID) -> Disconnected:
    with session_scope() as session:
        google = owned_google_connection(session, user_id, connection_id)
        if google is not None:
            return Disconnected(
                provider=GOOGLE,
                run_ids=[c.latest_sync_flow_run_id for c in google.calendars],
                calendar_ids=[c.id for c in google.calendars if c.channel_id],
                revoke=google_revoker(google.refresh_token, google.id),
            )
        task = owned_task_connection(session, user_id, connection_id)
        if task is not None:
            return Disconnected(
                provider=LINEAR,
                run_ids=[task.latest_sync_flow_run_id],
                calendar_ids=[],
                revoke=linear_revoker(task),
            )
    raise NotOwned("connection not found", RefusalCode.CONNECTION_NOT_FOUND)


def _delete(provider: str, connection_id: uuid.UUID) -> None:
    with session_scope() as session:
        if provider == GOOGLE:
            delete_google_connection(session, connection_id)
        else:
            delete_task_connection(session, connection_id)


async def disconnect(
    orchestrator: Orchestrator,
    ownership: RunOwnership,
    user_id: str,
    connection_id: uuid.UUID,
) -> Disconnected:
    """Cancel its runs, close its channels, delete it with everything it synced (one
    transaction); `NotOwned` when the user has no such connection."""
    target = await run_in_threadpool(_to_disconnect, user_id, connection_id)
    await cancel_active(orchestrator, target.run_ids)
    for calendar_id in target.calendar_ids:
        await run_in_threadpool(close_channel, calendar_id)
    await run_in_threadpool(_delete, target.provider, connection_id)
    ownership.forget(user_id)
    logger.info("user %s disconnected %s connection %s", user_id, target.provider, connection_id)
    return target
