"""Linear sync engine: assigned-issue pages -> one upsert per page -> watermark at the end.

Keeps the viewer's open work only. A full pass (first run, then every `full_pass_every`) is mark
and sweep: rows it did not write are deleted at the end. In between, incremental passes read what
changed since the watermark (minus an overlap), including issues that left the viewer.
Given the run's lease token, every write of a pass is fenced by it (core/sync_lease.py).
Pure of orchestration: Prefect wraps it in `flows/linear_sync.py`, benchmarks call it directly.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import utcnow
from core.errors import NeedsReauth
from core.models import ConnectionStatus, TaskConnection, TaskItem
from core.providers.linear import (
    LINEAR_REAUTH_MESSAGE,
    MAX_PAGE_SIZE,
    AuthKind,
    IssuePage,
    LinearClient,
    LinearIssue,
    refresh_oauth_token,
)
from core.settings import get_settings
from core.sync.prefetch import prefetched
from core.sync.upsert import upsert_rows
from core.sync_lease import LeaseToken

logger = logging.getLogger(__name__)

FULL_PASS_EVERY = timedelta(hours=24)
# Linear stamps `updatedAt` before the change is visible to every reader; re-reading a short
# window behind the watermark catches changes that committed late.
WATERMARK_OVERLAP = timedelta(minutes=2)
TOKEN_REFRESH_MARGIN = timedelta(seconds=60)
ITEM_KEY = ("task_connection_id", "external_id")
OPEN_STATE_TYPES = frozenset({"triage", "backlog", "unstarted", "started"})

ClientFactory = Callable[[str, AuthKind], LinearClient]
PageCallback = Callable[[int, int], None]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class LinearSyncCounts:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    pages: int = 0
    requests: int = 0
    full_pass: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


@dataclass(frozen=True)
class _Target:
    connection_id: uuid.UUID
    auth_kind: AuthKind
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    watermark: datetime | None
    last_full_sync_at: datetime | None


def _default_client(access_token: str, auth_kind: AuthKind) -> LinearClient:
    return LinearClient(get_settings(), access_token=access_token, auth_kind=auth_kind)


def is_open_for(issue: LinearIssue, viewer_id: str) -> bool:
    return (
        issue["assignee_id"] == viewer_id
        and issue["state_type"] in OPEN_STATE_TYPES
        and issue["archived_at"] is None
        and issue["completed_at"] is None
        and issue["canceled_at"] is None
    )


def _database_now(session: Session) -> datetime:
    """The write stamp for `synced_at`. Postgres's clock (transaction start) is the one every
    worker shares, so a sweep never mistakes a concurrent writer's rows for stale ones; SQLite
    lives on this machine, whose clock is the same thing."""
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(select(func.now())).scalar_one()
    return utcnow()


def _external_id_in(ids: list[str]) -> ColumnElement[bool]:
    """`external_id IN (...)` with the ids rendered as constants: Postgres hashes a constant list,
    but compares bound parameters one by one against every row of the connection whenever its
    statistics (a fresh table) make it skip the second column of the unique index."""
    return TaskItem.external_id.in_(
        bindparam("external_ids", ids, expanding=True, literal_execute=True)
    )


def item_row(issue: LinearIssue, connection_id: uuid.UUID, synced_at: datetime) -> dict[str, Any]:
    return {
        "task_connection_id": connection_id,
        "external_id": issue["id"],
        "identifier": issue["identifier"][:64],
        "title": issue["title"],
        "url": issue["url"],
        "priority": issue["priority"],
        "due_date": issue["due_date"],
        "project_name": issue["project_name"][:255] if issue["project_name"] else None,
        "state_name": issue["state_name"][:255],
        "state_type": issue["state_type"],
        "updated_at": issue["updated_at"],
        "synced_at": synced_at,
    }


def sync_task_connection(
    session_factory: sessionmaker[Session],
    task_connection_id: uuid.UUID,
    *,
    client_factory: ClientFactory | None = None,
    now: Clock | None = None,
    on_page: PageCallback | None = None,
    full_pass_every: timedelta = FULL_PASS_EVERY,
    page_size: int = MAX_PAGE_SIZE,
    lease: LeaseToken | None = None,
) -> LinearSyncCounts:
    """Bring the connection's task items in line with the viewer's open Linear issues.

    `now` is the clock (default: UTC wall time); `on_page(pages_done, items_done)` reports
    progress. Raises NeedsReauth (after marking the connection, without deleting anything) when
    Linear rejects the credentials, and the other `core.errors` types as the client raises them.
    With `lease`, each page, the final sweep and the watermark are written only while it holds;
    otherwise `LeaseLost` ends the pass.
    """
    engine = _Engine(session_factory, client_factory or _default_client, now or utcnow, lease)
    return engine.sync(task_connection_id, on_page, full_pass_every, page_size)


class _Engine:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        client_factory: ClientFactory,
        clock: Clock,
        lease: LeaseToken | None,
    ) -> None:
        self.sessions = sessions
        self.client_factory = client_factory
        self.clock = clock
        self.lease = lease

    def sync(
        self,
        connection_id: uuid.UUID,
        on_page: PageCallback | None,
        full_pass_every: timedelta,
        page_size: int,
    ) -> LinearSyncCounts:
        target = self._load(connection_id)
        if target is None:
            logger.info("task connection %s is gone; nothing to sync", connection_id)
            return LinearSyncCounts()
        access_token = self._fresh_access_token(target)
        full = (
            target.watermark is None
            or target.last_full_sync_at is None
            or self.clock() - target.last_full_sync_at >= full_pass_every
        )
        requests = 0
        retried = False
        while True:
            client = self.client_factory(access_token, target.auth_kind)
            try:
                counts = self._pass(target, client, full, on_page, page_size)
                return replace(counts, requests=requests + counts.requests)
            except NeedsReauth:
                requests += client.request_count
                if retried or target.auth_kind != "oauth" or not target.refresh_token:
                    self._mark_needs_reauth(connection_id)
                    raise
            finally:
                client.close()
            # The access token died before its stated expiry (revoked session, clock skew): one
            # refresh tells a dead token from a dead grant.
            logger.info("Linear rejected the access token of %s: refreshing", connection_id)
            retried = True
            access_token = self._fresh_access_token(target, rejected=access_token)

    def _load(self, connection_id: uuid.UUID) -> _Target | None:
        with self.sessions() as session:
            connection = session.get(TaskConnection, connection_id)
            if connection is None:
                return None
            if connection.status == ConnectionStatus.NEEDS_REAUTH:
                raise NeedsReauth(
                    "connection needs re-authorization", user_message=LINEAR_REAUTH_MESSAGE
                )
            auth_kind: AuthKind = "oauth" if connection.auth_kind == "oauth" else "api_key"
            return _Target(
                connection_id=connection.id,
                auth_kind=auth_kind,
                access_token=connection.access_token,
                refresh_token=connection.refresh_token,
                expires_at=connection.access_token_expires_at,
                watermark=connection.issues_watermark,
                last_full_sync_at=connection.last_full_sync_at,
            )

    def _fresh_access_token(self, target: _Target, *, rejected: str | None = None) -> str:
        """An access token good for the next minute (and not `rejected` by Linear), refreshing
        and storing both OAuth tokens when needed.

        Linear rotates refresh tokens, so concurrent syncs must not both spend the same one: the
        row is locked while refreshing (Postgres), and a refresh that lost the race (SQLite, which
        has no row locks) takes the tokens the winner stored.
        """
        if target.auth_kind != "oauth" or not target.refresh_token:
            return target.access_token
        used_refresh_token: str | None = None
        try:
            with self.sessions.begin() as session:
                connection = session.execute(
                    select(TaskConnection)
                    .where(TaskConnection.id == target.connection_id)
                    .with_for_update()
                ).scalar_one()
                expires_at = connection.access_token_expires_at
                still_valid = (
                    expires_at is not None and expires_at - self.clock() > TOKEN_REFRESH_MARGIN
                )
                if still_valid and connection.access_token != rejected:
                    return connection.access_token
                used_refresh_token = connection.refresh_token
                if used_refresh_token is None:
                    raise NeedsReauth("no refresh token stored", user_message=LINEAR_REAUTH_MESSAGE)
                tokens = refresh_oauth_token(get_settings(), used_refresh_token)
                connection.access_token = tokens.access_token
                connection.refresh_token = tokens.refresh_token
                connection.access_token_expires_at = tokens.expires_at
                logger.info("refreshed the Linear OAuth tokens of %s", target.connection_id)
                return tokens.access_token
        except NeedsReauth:
            with self.sessions() as session:
                current = session.get(TaskConnection, target.connection_id)
                if current is not None and current.refresh_token not in (None, used_refresh_token):
                    return current.access_token
            self._mark_needs_reauth(target.connection_id)
            raise

    def _mark_needs_reauth(self, connection_id: uuid.UUID) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(TaskConnection)
                .where(TaskConnection.id == connection_id)
                .values(status=ConnectionStatus.NEEDS_REAUTH)
            )

    def _pass(
        self,
        target: _Target,
        client: LinearClient,
        full: bool,
        on_page: PageCallback | None,
        page_size: int,
    ) -> LinearSyncCounts:
        """One complete listing; on a full pass, rows not written since it began are swept."""
        started = self.clock()
        with self.sessions() as session:
            sweep_before = _database_now(session)
        since = None
        if not full and target.watermark is not None:
            since = target.watermark - WATERMARK_OVERLAP
        created = updated = deleted = pages = items = 0
        watermark = target.watermark
        for page in prefetched(
            lambda: client.iter_assigned_issue_pages(updated_after=since, page_size=page_size)
        ):
            with self.sessions.begin() as session:
                c, u, d = self._apply_page(session, target.connection_id, page)
                if self.lease is not None:
                    self.lease.check(session)
            created, updated, deleted = created + c, updated + u, deleted + d
            pages += 1
            items += len(page.issues)
            if page.max_updated_at is not None and (
                watermark is None or page.max_updated_at > watermark
            ):
                watermark = page.max_updated_at
            if on_page is not None:
                on_page(pages, items)
        with self.sessions.begin() as session:
            values: dict[str, object] = {
                "issues_watermark": watermark,
                "last_synced_at": self.clock(),
            }
            if full:
                values["last_full_sync_at"] = started
            # The watermark first: fenced, it also locks the row until the sweep below commits.
            if self.lease is not None:
                self.lease.update(session, **values)
            else:
                session.execute(
                    update(TaskConnection)
                    .where(TaskConnection.id == target.connection_id)
                    .values(**values)
                )
            if full:
                deleted += session.execute(
                    delete(TaskItem).where(
                        TaskItem.task_connection_id == target.connection_id,
                        TaskItem.synced_at < sweep_before,
                    )
                ).rowcount  # type: ignore[attr-defined]
        logger.info(
            "task connection %s %s pass: %d pages, %d created, %d updated, %d deleted",
            target.connection_id,
            "full" if full else "incremental",
            pages,
            created,
            updated,
            deleted,
        )
        return LinearSyncCounts(
            created=created,
            updated=updated,
            deleted=deleted,
            pages=pages,
            requests=client.request_count,
            full_pass=full,
        )

    def _apply_page(
        self, session: Session, connection_id: uuid.UUID, page: IssuePage
    ) -> tuple[int, int, int]:
        synced_at = _database_now(session)
        rows = sorted(
            (
                item_row(issue, connection_id, synced_at)
                for issue in page.issues
                if is_open_for(issue, page.viewer_id)
            ),
            # Concurrent syncs of a connection then lock its rows in the same order.
            key=lambda row: row["external_id"],
        )
        gone = [i["id"] for i in page.issues if not is_open_for(i, page.viewer_id)]
        gone.extend(page.unassigned_ids)
        counts = upsert_rows(
            session,
            TaskItem.__table__,  # type: ignore[arg-type]
            rows,
            ITEM_KEY,
            "updated_at",
        )
        deleted = 0
        if gone:
            deleted = session.execute(
                delete(TaskItem).where(
                    TaskItem.task_connection_id == connection_id,
                    _external_id_in(sorted(set(gone))),
                )
            ).rowcount  # type: ignore[attr-defined]
        return counts.created, counts.updated, deleted
