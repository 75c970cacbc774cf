"""Calendar sync engine: Google event pages -> one upsert per page -> sync token at the end.

The pass's shape (page writer, totals, finishing step) is `core/sync/passes.py`'s; the client
comes signed in from `core/credentials.py`. Given the run's lease token, every write of a pass
is fenced by it (core/sync_lease.py).
Pure of orchestration: Prefect wraps it in `flows/calendar_sync.py`, benchmarks call it directly.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.credentials import GOOGLE, Credentials, ensure_connected
from core.db import db_now, session_factory, utcnow
from core.errors import CursorExpired
from core.models import CalendarConnection, Event, ExternalCalendar, UserSettings
from core.providers.google_calendar import EventPage, GoogleCalendarClient
from core.repositories.events import EventBatch, upsert_events
from core.settings import Settings, get_settings
from core.sync.event_rows import event_row
from core.sync.passes import (
    PageCounts,
    PassProgress,
    PassTotals,
    ProgressCallback,
    finish_pass,
    log_pass,
    pass_started_at,
    write_pages,
)
from core.sync.prefetch import prefetched
from core.sync.probe import ProbeResult
from core.sync_lease import LeaseToken, lease_free

logger = logging.getLogger(__name__)

# Pages written at once on PostgreSQL (each on its own connection): with two, the database loads
# one page while the other commits and Python prepares the next.
PAGE_WRITERS = 2


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
        # Rows are stamped as they are written, by the database (`upsert_events`).
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
    """Syncs one Google calendar: `load` its target, take a signed-in client, run a pass on the
    shared skeleton. `LinearSyncEngine` has the same shape."""

    def __init__(
        self,
        settings: Settings | None = None,
        sessions: sessionmaker[Session] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.sessions = sessions or session_factory()
        self.credentials = Credentials(self.settings, self.sessions)

    def sync(
        self,
        calendar_id: uuid.UUID,
        on_page: ProgressCallback | None = None,
        lease: LeaseToken | None = None,
    ) -> CalendarSyncCounts:
        """One pass (two if the sync token expired). With `lease`, each page, the final sweep
        and the cursor are written only while it holds; otherwise `LeaseLost` ends the pass."""
        target = self.load(calendar_id)
        if target is None:
            logger.info("calendar %s is disabled or gone; nothing to sync", calendar_id)
            return CalendarSyncCounts()
        with self.credentials.google_client(target.connection_id) as client:
            if target.sync_token:
                try:
                    return self._pass(target, client, full=False, on_page=on_page, lease=lease)
                except CursorExpired:
                    logger.info("sync token expired for calendar %s: full resync", calendar_id)
                    counts = self._pass(target, client, full=True, on_page=on_page, lease=lease)
                    return replace(counts, resynced_after_expiry=True)
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
        with self.credentials.google_client(target.connection_id) as client:
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
                .values(sync_token=page.next_sync_token, last_synced_at=db_now())
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        return ProbeResult.UNCHANGED if moved else ProbeResult.SKIPPED

    def load(self, calendar_id: uuid.UUID) -> CalendarTarget | None:
        """What syncing the calendar needs; None if it is disabled or gone.

        Raises `NeedsReauth` when the user must reconnect the account first.
        """
        with self.sessions() as session:
            row = session.execute(
                select(
                    ExternalCalendar,
                    CalendarConnection.status,
                    UserSettings.calendar_sync_from_months,
                )
                .join(CalendarConnection, ExternalCalendar.connection_id == CalendarConnection.id)
                .outerjoin(UserSettings, UserSettings.user_id == CalendarConnection.user_id)
                .where(ExternalCalendar.id == calendar_id)
            ).one_or_none()
        if row is None or not row[0].enabled:
            return None
        calendar, status, months = row
        ensure_connected(GOOGLE, status)
        return CalendarTarget(
            calendar_id=calendar.id,
            external_id=calendar.external_id,
            access_role=calendar.access_role,
            sync_token=calendar.sync_token,
            connection_id=calendar.connection_id,
            time_min=months_before(utcnow(), months or self.settings.calendar_sync_from_months),
        )

    def _pass(
        self,
        target: CalendarTarget,
        client: GoogleCalendarClient,
        *,
        full: bool,
        on_page: ProgressCallback | None,
        lease: LeaseToken | None,
    ) -> CalendarSyncCounts:
        """One complete listing; on a full pass, rows not written since it began are swept."""
        started = pass_started_at(self.sessions)
        postgres = self.sessions.kw["bind"].dialect.name == "postgresql"
        next_sync_token: str | None = None

        def prepared_pages() -> Iterator[PreparedPage]:
            pages = client.iter_event_pages(
                target.external_id,
                sync_token=None if full else target.sync_token,
                time_min=target.time_min if full else None,
                page_size=self.settings.google_events_page_size,
            )
            for page in pages:
                yield PreparedPage.of(page, target, for_copy=postgres)

        def written(page: PreparedPage, totals: PassTotals) -> None:
            nonlocal next_sync_token
            next_sync_token = page.next_sync_token or next_sync_token
            if on_page is not None:
                on_page(PassProgress(pages=totals.pages, items=totals.items, full_pass=full))

        # Fetching, parsing and building rows run in the prefetch thread, while the writers
        # load earlier pages; a page with cancellations is written alone.
        totals = write_pages(
            self.sessions,
            prefetched(prepared_pages, depth=1),
            lambda session, page: self._apply_page(session, target, page),
            lease=lease,
            written=written,
            writers=PAGE_WRITERS if postgres else 1,
            alone=lambda page: bool(page.cancelled),
        )
        sweep = None
        if full:
            sweep = delete(Event).where(
                Event.external_calendar_id == target.calendar_id, Event.synced_at < started
            )
        totals.deleted += finish_pass(
            self.sessions,
            ExternalCalendar,
            target.calendar_id,
            lease=lease,
            cursor={"sync_token": next_sync_token} if next_sync_token else {},
            sweep=sweep,
        )
        log_pass(f"calendar {target.calendar_id}", full, totals)
        return CalendarSyncCounts(
            created=totals.created,
            updated=totals.updated,
            deleted=totals.deleted,
            unchanged=totals.unchanged,
            pages=totals.pages,
            full_pass=full,
        )

    @staticmethod
    def _apply_page(session: Session, target: CalendarTarget, page: PreparedPage) -> PageCounts:
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
        return PageCounts(
            created=counts.created,
            updated=counts.updated,
            deleted=deleted,
            unchanged=counts.unchanged,
            items=page.items,
        )
