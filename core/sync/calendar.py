"""Calendar sync engine: Google event pages -> one upsert per page -> sync token at the end.

Given the run's lease token, every write of a pass is fenced by it (core/sync_lease.py).
Pure of orchestration: Prefect wraps it in `flows/calendar_sync.py`, benchmarks call it directly.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_factory as default_session_factory
from core.db import utcnow
from core.errors import CursorExpired, NeedsReauth
from core.models import CalendarConnection, ConnectionStatus, Event, ExternalCalendar, UserSettings
from core.providers.google_calendar import EventPage, GoogleCalendarClient
from core.providers.google_oauth import GOOGLE_REAUTH_MESSAGE, refresh_access_token
from core.repositories.events import EventBatch, upsert_events
from core.settings import Settings, get_settings
from core.sync.event_rows import event_row
from core.sync.prefetch import prefetched
from core.sync.probe import ProbeResult
from core.sync_lease import LeaseToken, lease_free

logger = logging.getLogger(__name__)

TOKEN_REFRESH_MARGIN = timedelta(seconds=60)
# Pages written at once on PostgreSQL (each on its own connection): with two, the database loads
# one page while the other commits and Python prepares the next.
PAGE_WRITERS = 2

PageCallback = Callable[["PassProgress"], None]


@dataclass(frozen=True)
class PassProgress:
    pages: int
    items: int
    full_pass: bool


@dataclass(frozen=True)
class CalendarSyncCounts:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    pages: int = 0
    full_pass: bool = False
    resynced_after_expiry: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


@dataclass(frozen=True)
class CalendarTarget:
    calendar_id: uuid.UUID
    external_id: str
    access_role: str
    sync_token: str | None
    connection_id: uuid.UUID
    access_token: str | None
    refresh_token: str
    expires_at: datetime | None
    time_min: datetime


@dataclass(frozen=True)
class PreparedPage:
    """A page of Google events turned into `events` rows (live ones) and IDs (cancelled ones)."""

    events: EventBatch
    cancelled: list[str]
    items: int
    next_sync_token: str | None

    @classmethod
    def of(cls, page: EventPage, target: CalendarTarget, *, for_copy: bool) -> PreparedPage:
        # Stamped when built, after the pass began: the sweep keeps every row of this pass.
        now = utcnow()
        rows = []
        cancelled = []
        for item in page.items:
            if item.get("status") == "cancelled":
                cancelled.append(item["id"])
                continue
            rows.append(
                event_row(
                    item,
                    calendar_id=target.calendar_id,
                    calendar_external_id=target.external_id,
                    access_role=target.access_role,
                    synced_at=now,
                )
            )
        events = EventBatch.of(rows, for_copy=for_copy)
        return cls(events, cancelled, len(page.items), page.next_sync_token)


def months_before(moment: datetime, months: int) -> datetime:
    month_index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(month_index, 12)
    # Clamp the day so Mar 31 - 1 month is Feb 28/29, not an error.
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month + 1, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


class CalendarSyncEngine:
    def __init__(
        self,
        settings: Settings | None = None,
        sessions: sessionmaker[Session] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.sessions = sessions or default_session_factory()

    def sync(
        self,
        calendar_id: uuid.UUID,
        on_page: PageCallback | None = None,
        lease: LeaseToken | None = None,
    ) -> CalendarSyncCounts:
        """One pass (two if the sync token expired). With `lease`, each page, the final sweep
        and the cursor are written only while it holds; otherwise `LeaseLost` ends the pass."""
        target = self.load(calendar_id)
        if target is None:
            logger.info("calendar %s is disabled or gone; nothing to sync", calendar_id)
            return CalendarSyncCounts()
        with self.client(target) as client:
            if target.sync_token:
                try:
                    return self._pass(target, client, full=False, on_page=on_page, lease=lease)
                except CursorExpired:
                    logger.info("sync token expired for calendar %s: full resync", calendar_id)
                    counts = self._pass(target, client, full=True, on_page=on_page, lease=lease)
                    return CalendarSyncCounts(**{**counts.as_dict(), "resynced_after_expiry": True})
            return self._pass(target, client, full=True, on_page=on_page, lease=lease)

    def probe(self, calendar_id: uuid.UUID) -> ProbeResult:
        """Ask Google for the smallest page of changes since the cursor, without syncing.

        No items and no next page means nothing changed: the cursor then moves exactly as an
        incremental sync would move it, and `last_synced_at` is stamped, but only if no sync
        took the lease or moved the cursor in the meantime (a sync's result always wins).
        """
        target = self.load(calendar_id)
        if target is None:
            return ProbeResult.SKIPPED
        if not target.sync_token:
            return ProbeResult.CHANGED
        with self.client(target) as client:
            pages = client.iter_event_pages(
                target.external_id, sync_token=target.sync_token, page_size=1
            )
            try:
                page = next(pages)
            except CursorExpired:
                return ProbeResult.CHANGED
            finally:
                pages.close()
        if page.items or page.next_sync_token is None:
            return ProbeResult.CHANGED
        with self.sessions.begin() as session:
            moved = session.execute(
                update(ExternalCalendar)
                .where(
                    ExternalCalendar.id == calendar_id,
                    ExternalCalendar.sync_token == target.sync_token,
                    lease_free(),
                )
                .values(sync_token=page.next_sync_token, last_synced_at=utcnow())
            ).rowcount  # type: ignore[attr-defined]
        return ProbeResult.UNCHANGED if moved else ProbeResult.SKIPPED

    @contextmanager
    def client(self, target: CalendarTarget) -> Iterator[GoogleCalendarClient]:
        """A Google client with a fresh token for the target's connection (for one thread).

        A rejected refresh token marks the connection `needs_reauth`; a token the library
        refreshed along the way is stored when the block ends.
        """
        access_token, expires_at = self._fresh_token(target)
        client = GoogleCalendarClient(
            self.settings,
            access_token=access_token,
            refresh_token=target.refresh_token,
            expires_at=expires_at,
        )
        try:
            yield client
        except NeedsReauth:
            self._mark_needs_reauth(target.connection_id)
            raise
        finally:
            self._store_refreshed_token(target, client)

    def load(self, calendar_id: uuid.UUID, *, enabled_only: bool = True) -> CalendarTarget | None:
        """What syncing the calendar needs; None if it is gone (or disabled, by default).

        Raises `NeedsReauth` when the user must reconnect the account first.
        """
        with self.sessions() as session:
            row = session.execute(
                select(ExternalCalendar, CalendarConnection, UserSettings.calendar_sync_from_months)
                .join(CalendarConnection, ExternalCalendar.connection_id == CalendarConnection.id)
                .outerjoin(UserSettings, UserSettings.user_id == CalendarConnection.user_id)
                .where(ExternalCalendar.id == calendar_id)
            ).one_or_none()
        if row is None or (enabled_only and not row[0].enabled):
            return None
        calendar, connection, months = row
        if connection.status == ConnectionStatus.NEEDS_REAUTH:
            raise NeedsReauth(
                "connection needs re-authorization", user_message=GOOGLE_REAUTH_MESSAGE
            )
        return CalendarTarget(
            calendar_id=calendar.id,
            external_id=calendar.external_id,
            access_role=calendar.access_role,
            sync_token=calendar.sync_token,
            connection_id=connection.id,
            access_token=connection.access_token,
            refresh_token=connection.refresh_token,
            expires_at=connection.access_token_expires_at,
            time_min=months_before(utcnow(), months or self.settings.calendar_sync_from_months),
        )

    def _fresh_token(self, target: CalendarTarget) -> tuple[str, datetime | None]:
        expires_at = target.expires_at
        if target.access_token and expires_at and expires_at - utcnow() > TOKEN_REFRESH_MARGIN:
            return target.access_token, expires_at
        try:
            grant = refresh_access_token(self.settings, target.refresh_token)
        except NeedsReauth:
            self._mark_needs_reauth(target.connection_id)
            raise
        self._save_token(
            target.connection_id, grant.access_token, grant.expires_at, grant.refresh_token
        )
        return grant.access_token, grant.expires_at

    def _store_refreshed_token(self, target: CalendarTarget, client: GoogleCalendarClient) -> None:
        current = client.access_token
        if current.refreshed:
            self._save_token(target.connection_id, current.token, current.expires_at, None)

    def _save_token(
        self,
        connection_id: uuid.UUID,
        access_token: str,
        expires_at: datetime | None,
        refresh_token: str | None,
    ) -> None:
        values: dict[str, object] = {
            "access_token": access_token,
            "access_token_expires_at": expires_at,
        }
        if refresh_token:
            values["refresh_token"] = refresh_token
        with self.sessions.begin() as session:
            session.execute(
                update(CalendarConnection)
                .where(CalendarConnection.id == connection_id)
                .values(**values)
            )

    def _mark_needs_reauth(self, connection_id: uuid.UUID) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(CalendarConnection)
                .where(CalendarConnection.id == connection_id)
                .values(status=ConnectionStatus.NEEDS_REAUTH)
            )

    def _pass(
        self,
        target: CalendarTarget,
        client: GoogleCalendarClient,
        *,
        full: bool,
        on_page: PageCallback | None,
        lease: LeaseToken | None,
    ) -> CalendarSyncCounts:
        """One complete listing; on a full pass, rows not written since it began are swept."""
        started = utcnow()
        created = updated = deleted = unchanged = pages = items = 0
        next_sync_token: str | None = None
        postgres = self.sessions.kw["bind"].dialect.name == "postgresql"

        def prepared_pages() -> Iterator[PreparedPage]:
            pages = client.iter_event_pages(
                target.external_id,
                sync_token=None if full else target.sync_token,
                time_min=target.time_min if full else None,
                page_size=self.settings.google_events_page_size,
            )
            for page in pages:
                yield PreparedPage.of(page, target, for_copy=postgres)

        def write(page: PreparedPage) -> tuple[int, int, int, int]:
            with self.sessions.begin() as session:
                counts = self._apply_page(session, target, page)
                if lease is not None:
                    lease.check(session)
                return counts

        # Fetching, parsing and building rows run in the prefetch thread; on PostgreSQL two
        # writers (each its own connection and transaction) load pages side by side, so the
        # database works while Python prepares. Pages hold disjoint events, but a page with
        # cancellations is written alone, after the pages before it and before those after it,
        # so a deletion is never overtaken. Results are taken in page order.
        writers = PAGE_WRITERS if postgres else 1
        in_flight: deque[tuple[Future[tuple[int, int, int, int]], PreparedPage]] = deque()

        def settle(keep: int) -> None:
            nonlocal created, updated, deleted, unchanged, pages, items, next_sync_token
            while len(in_flight) > keep:
                future, page = in_flight.popleft()
                c, u, d, n = future.result()
                created, updated, deleted, unchanged = (
                    created + c,
                    updated + u,
                    deleted + d,
                    unchanged + n,
                )
                pages += 1
                items += page.items
                next_sync_token = page.next_sync_token or next_sync_token
                if on_page is not None:
                    on_page(PassProgress(pages=pages, items=items, full_pass=full))

        with ThreadPoolExecutor(writers, thread_name_prefix="page-writer") as pool:
            for page in prefetched(prepared_pages, depth=1):
                settle(0 if page.cancelled else writers - 1)
                in_flight.append((pool.submit(write, page), page))
                if page.cancelled:
                    settle(0)
            settle(0)
        with self.sessions.begin() as session:
            values: dict[str, object] = {"last_synced_at": utcnow()}
            if next_sync_token:
                values["sync_token"] = next_sync_token
            # The cursor first: fenced, it also locks the row until the sweep below commits.
            if lease is not None:
                lease.update(session, **values)
            else:
                session.execute(
                    update(ExternalCalendar)
                    .where(ExternalCalendar.id == target.calendar_id)
                    .values(**values)
                )
            if full:
                deleted += session.execute(
                    delete(Event).where(
                        Event.external_calendar_id == target.calendar_id, Event.synced_at < started
                    )
                ).rowcount  # type: ignore[attr-defined]
        logger.info(
            "calendar %s %s pass: %d pages, %d created, %d updated, %d deleted",
            target.calendar_id,
            "full" if full else "incremental",
            pages,
            created,
            updated,
            deleted,
        )
        return CalendarSyncCounts(
            created=created,
            updated=updated,
            deleted=deleted,
            unchanged=unchanged,
            pages=pages,
            full_pass=full,
        )

    @staticmethod
    def _apply_page(
        session: Session, target: CalendarTarget, page: PreparedPage
    ) -> tuple[int, int, int, int]:
        counts = upsert_events(session, target.calendar_id, page.events)
        deleted = 0
        if page.cancelled:
            # A cancelled recurring master takes its expanded instances with it.
            deleted = session.execute(
                delete(Event).where(
                    Event.external_calendar_id == target.calendar_id,
                    or_(
                        Event.external_id.in_(page.cancelled),
                        Event.recurring_event_id.in_(page.cancelled),
                    ),
                )
            ).rowcount  # type: ignore[attr-defined]
        return counts.created, counts.updated, deleted, counts.unchanged
