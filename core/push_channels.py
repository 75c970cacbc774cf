"""Google push channels (`events.watch`) on enabled calendars: open, renew before expiry, close.

The channel is persisted before Google is called, so the confirming "sync" message and the
first notifications find it; until Google confirms it (no resource ID yet), only that "sync"
message is accepted for it. Channels are claimed with conditional UPDATEs on the calendar row,
so two renewals racing create one channel, and a channel Google confirms after it was replaced
or closed is stopped again. A new channel starts with no accepted message number (the webhook
accepts only increasing `X-Goog-Message-Number`s per channel; Google's "sync" is number 1).
Each channel gets a fresh random secret, stored only as a hash.
Everything here is best effort: provider failures are logged, never raised, and the fallback
sweep keeps calendars fresh meanwhile.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.credentials import Credentials
from core.db import session_factory, utcnow
from core.errors import NotFound, SyncError
from core.models import ExternalCalendar
from core.providers.google_calendar import GoogleCalendarClient
from core.settings import Settings, get_settings

logger = logging.getLogger(__name__)

GOOGLE_WEBHOOK_PATH = "/webhooks/google-calendar"
# A claimed channel Google has not confirmed (no resource ID yet) carries this deadline as its
# expiry: before it, other processes leave it alone; after it, it was abandoned and is replaced.
OPENING_DEADLINE = timedelta(minutes=10)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(stored_hash: str | None, presented: str | None) -> bool:
    """Constant-time check of a notification's token against the channel's stored hash."""
    if not stored_hash or not presented:
        return False
    return hmac.compare_digest(secret_hash(presented), stored_hash)


@dataclass(frozen=True)
class _Channel:
    """A calendar's channel columns as read before changing them."""

    enabled: bool
    id: str | None
    token_hash: str | None
    resource_id: str | None
    expires_at: datetime | None
    message_number: int | None


def _read(session: Session, calendar_id: uuid.UUID) -> _Channel | None:
    row = session.execute(
        select(
            ExternalCalendar.enabled,
            ExternalCalendar.channel_id,
            ExternalCalendar.channel_token,
            ExternalCalendar.channel_resource_id,
            ExternalCalendar.channel_expires_at,
            ExternalCalendar.channel_message_number,
        ).where(ExternalCalendar.id == calendar_id)
    ).one_or_none()
    return _Channel(*row) if row is not None else None


def _swap(
    session: Session,
    calendar_id: uuid.UUID,
    expected_id: str | None,
    *,
    channel_id: str | None,
    token_hash: str | None,
    resource_id: str | None = None,
    expires_at: datetime | None = None,
    message_number: int | None = None,
) -> bool:
    """Replace the channel columns only if the channel is still `expected_id` (compare-and-set).

    Message numbers count per channel: another channel starts from `message_number` (none yet
    for a new one), the same channel keeps the numbers it has accepted.
    """
    current = (
        ExternalCalendar.channel_id.is_(None)
        if expected_id is None
        else ExternalCalendar.channel_id == expected_id
    )
    values: dict[str, object] = {
        "channel_id": channel_id,
        "channel_token": token_hash,
        "channel_resource_id": resource_id,
        "channel_expires_at": expires_at,
    }
    if channel_id != expected_id:
        values["channel_message_number"] = message_number
    result = session.execute(
        update(ExternalCalendar).where(ExternalCalendar.id == calendar_id, current).values(values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _WatchedCalendar:
    enabled: bool
    external_id: str
    connection_id: uuid.UUID


def _watched_calendar(
    sessions: sessionmaker[Session], calendar_id: uuid.UUID
) -> _WatchedCalendar | None:
    with sessions() as session:
        row = session.execute(
            select(
                ExternalCalendar.enabled,
                ExternalCalendar.external_id,
                ExternalCalendar.connection_id,
            ).where(ExternalCalendar.id == calendar_id)
        ).one_or_none()
    return _WatchedCalendar(*row) if row is not None else None


def _stop(client: GoogleCalendarClient, channel_id: str, resource_id: str) -> None:
    try:
        client.stop_channel(channel_id, resource_id)
    except NotFound:
        logger.info("channel %s was already gone at Google", channel_id)


def open_channel(
    calendar_id: uuid.UUID,
    *,
    settings: Settings | None = None,
    sessions: sessionmaker[Session] | None = None,
) -> bool:
    """Give an enabled calendar a push channel unless it has one; True if it has one after.

    A no-op (False) when push is off (no CALSYNC_PUBLIC_BASE_URL).
    """
    return _replace_channel(calendar_id, None, settings, sessions)


def renew_channel(
    calendar_id: uuid.UUID,
    *,
    renew_before: datetime,
    settings: Settings | None = None,
    sessions: sessionmaker[Session] | None = None,
) -> bool:
    """Replace the calendar's channel if it expires before `renew_before` (or is missing or was
    never confirmed), then stop the old one. True if a channel is live afterwards."""
    return _replace_channel(calendar_id, renew_before, settings, sessions)


def _replace_channel(
    calendar_id: uuid.UUID,
    renew_before: datetime | None,
    settings: Settings | None,
    sessions: sessionmaker[Session] | None,
) -> bool:
    settings = settings or get_settings()
    if not settings.push_enabled:
        return False
    sessions = sessions or session_factory()
    with sessions() as session:
        old = _read(session, calendar_id)
    if old is None or not old.enabled:
        return False
    now = utcnow()
    if old.id is not None and old.expires_at is not None:
        if old.resource_id is None and old.expires_at > now:
            logger.info("calendar %s: its channel is being opened right now", calendar_id)
            return False
        if old.resource_id is not None and (renew_before is None or old.expires_at > renew_before):
            return True
    new_id = str(uuid.uuid4())
    secret = secrets.token_urlsafe(32)
    with sessions.begin() as session:
        claimed = _swap(
            session,
            calendar_id,
            old.id,
            channel_id=new_id,
            token_hash=secret_hash(secret),
            expires_at=now + OPENING_DEADLINE,
        )
        if not claimed:
            logger.info("calendar %s: another process is replacing its channel", calendar_id)
            return False
    try:
        calendar = _watched_calendar(sessions, calendar_id)
        if calendar is None or not calendar.enabled:
            raise NotFound("calendar disabled while its channel was being opened")
        with Credentials(settings, sessions).google_client(calendar.connection_id) as client:
            watched = client.watch_events(
                calendar.external_id,
                channel_id=new_id,
                token=secret,
                address=f"{settings.public_base_url}{GOOGLE_WEBHOOK_PATH}",
                ttl_s=settings.push_channel_ttl_s,
            )
            with sessions.begin() as session:
                confirmed = _swap(
                    session,
                    calendar_id,
                    new_id,
                    channel_id=new_id,
                    token_hash=secret_hash(secret),
                    resource_id=watched.resource_id,
                    expires_at=watched.expires_at,
                )
            if not confirmed:
                # Closed or replaced while Google was answering: nobody will renew this one.
                _stop(client, new_id, watched.resource_id)
                return False
            if old.id is not None and old.resource_id is not None:
                _stop(client, old.id, old.resource_id)
    except SyncError as exc:
        logger.warning(
            "calendar %s: could not open a push channel: %s: %s",
            calendar_id,
            type(exc).__name__,
            exc,
        )
        with sessions.begin() as session:
            # Put the old channel back (it still works until it expires), or clear the claim.
            _swap(
                session,
                calendar_id,
                new_id,
                channel_id=old.id,
                token_hash=old.token_hash,
                resource_id=old.resource_id,
                expires_at=old.expires_at,
                message_number=old.message_number,
            )
        return False
    logger.info(
        "calendar %s: push channel %s open until %s", calendar_id, new_id, watched.expires_at
    )
    return True


def close_channel(
    calendar_id: uuid.UUID,
    *,
    settings: Settings | None = None,
    sessions: sessionmaker[Session] | None = None,
) -> bool:
    """Forget the calendar's channel, then stop it at Google; True if there was one.

    Works whether or not push is on now, so channels opened earlier are still stopped.
    """
    settings = settings or get_settings()
    sessions = sessions or session_factory()
    with sessions.begin() as session:
        old = _read(session, calendar_id)
        if old is None or old.id is None:
            return False
        if not _swap(session, calendar_id, old.id, channel_id=None, token_hash=None):
            return False
    if old.resource_id is None:
        # Not confirmed yet: the open in progress finds its row cleared and stops it itself.
        return True
    try:
        calendar = _watched_calendar(sessions, calendar_id)
        if calendar is not None:
            with Credentials(settings, sessions).google_client(calendar.connection_id) as client:
                _stop(client, old.id, old.resource_id)
    except SyncError as exc:
        logger.warning(
            "calendar %s: could not stop channel %s (it expires on its own): %s",
            calendar_id,
            old.id,
            type(exc).__name__,
        )
    return True
