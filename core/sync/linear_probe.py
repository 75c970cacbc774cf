"""A cheap check whether an incremental Linear sync would change anything, for the fallback sweep.

One request: the changes since the watermark (with the engine's overlap), first page only,
compared with the stored items. If the sync would write no item, `last_synced_at` moves and the
watermark moves exactly as that sync would move it; anything else needs a real run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.credentials import token_is_fresh
from core.db import utcnow
from core.models import ConnectionStatus, TaskConnection, TaskItem
from core.providers.linear import AuthKind, IssuePage, LinearClient
from core.settings import get_settings
from core.sync.linear import FULL_PASS_EVERY, WATERMARK_OVERLAP, full_pass_due, is_open_for
from core.sync.probe import ProbeResult
from core.sync_lease import lease_free

# Small enough to stay one cheap request; a full page means "more than a probe should judge".
PROBE_PAGE_SIZE = 25

ClientFactory = Callable[[str, AuthKind], LinearClient]


def _client(access_token: str, auth_kind: AuthKind) -> LinearClient:
    return LinearClient(get_settings(), access_token=access_token, auth_kind=auth_kind)


def _first_page(client: LinearClient, since: datetime) -> IssuePage:
    pages = client.iter_assigned_issue_pages(updated_after=since, page_size=PROBE_PAGE_SIZE)
    try:
        return next(pages)
    finally:
        pages.close()


def _already_applied(session: Session, connection_id: uuid.UUID, page: IssuePage) -> bool:
    """True if applying the page would write nothing: open issues stored as they are, the rest
    already gone."""
    stored = dict(
        session.execute(
            select(TaskItem.external_id, TaskItem.updated_at).where(
                TaskItem.task_connection_id == connection_id,
                TaskItem.external_id.in_(
                    [i["id"] for i in page.issues] + list(page.unassigned_ids)
                ),
            )
        )
        .tuples()
        .all()
    )
    for issue in page.issues:
        if is_open_for(issue, page.viewer_id):
            if stored.get(issue["id"]) != issue["updated_at"]:
                return False
        elif issue["id"] in stored:
            return False
    return not any(issue_id in stored for issue_id in page.unassigned_ids)


def probe_linear_connection(
    sessions: sessionmaker[Session],
    connection_id: uuid.UUID,
    *,
    client_factory: ClientFactory | None = None,
    full_pass_every: timedelta = FULL_PASS_EVERY,
) -> ProbeResult:
    """UNCHANGED (only `last_synced_at` moved), CHANGED (a real run is needed) or SKIPPED.

    Raises the client's `core.errors` types; a due full pass or an access token that needs a
    refresh counts as CHANGED, so token rotation stays the sync's business.
    """
    now = utcnow()
    with sessions() as session:
        connection = session.get(TaskConnection, connection_id)
        if connection is None or connection.status == ConnectionStatus.NEEDS_REAUTH:
            return ProbeResult.SKIPPED
        watermark = connection.issues_watermark
        full_due = full_pass_due(watermark, connection.last_full_sync_at, now, full_pass_every)
        token_stale = connection.auth_kind == "oauth" and not token_is_fresh(
            connection.access_token_expires_at, now
        )
        auth_kind: AuthKind = "oauth" if connection.auth_kind == "oauth" else "api_key"
        access_token = connection.access_token
    if full_due or token_stale or watermark is None:
        return ProbeResult.CHANGED
    with (client_factory or _client)(access_token, auth_kind) as client:
        page = _first_page(client, watermark - WATERMARK_OVERLAP)
    if len(page.issues) >= PROBE_PAGE_SIZE or len(page.unassigned_ids) >= PROBE_PAGE_SIZE:
        return ProbeResult.CHANGED
    with sessions.begin() as session:
        if not _already_applied(session, connection_id, page):
            return ProbeResult.CHANGED
        # A sync would also move the watermark past issues it had nothing to write for.
        seen = page.max_updated_at
        moved = session.execute(
            update(TaskConnection)
            .where(
                TaskConnection.id == connection_id,
                TaskConnection.issues_watermark == watermark,
                # A sync's result always wins over a probe's.
                lease_free(TaskConnection),
            )
            .values(
                last_synced_at=now,
                issues_watermark=seen if seen is not None and seen > watermark else watermark,
            )
        ).rowcount  # type: ignore[attr-defined]
    return ProbeResult.UNCHANGED if moved else ProbeResult.SKIPPED
