"""SQLAlchemy models: connections, the calendars and task sources they hold, and synced items."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from core import crypto
from core.db import Base, UTCDateTime, utcnow

# SQLite only autoincrements an INTEGER PRIMARY KEY; Postgres wants a BIGINT identity.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class EncryptedString(TypeDecorator[str]):
    """A secret stored as Fernet ciphertext; plaintext never reaches the database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else crypto.encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else crypto.decrypt(value)


class ConnectionStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SyncStateMixin:
    """What the frontend needs to show a synced source: its latest run and last error, plus a
    durable request for a sync not yet handed to Prefect and the fencing generation of the
    row's sync lease."""

    latest_sync_flow_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    last_sync_error_message: Mapped[str | None] = mapped_column(Text)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set in the same transaction as whatever made a sync necessary; cleared once a run for it
    # is recorded on the row. Non-null means "a start is owed".
    sync_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    sync_request_source: Mapped[str | None] = mapped_column(String(32))
    # Incremented each time a run takes the lease: (owner, generation) is the fencing token.
    sync_lease_generation: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class CalendarConnection(TimestampMixin, Base):
    __tablename__ = "calendar_connections"
    __table_args__ = (UniqueConstraint("user_id", "provider", "account_email"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    provider: Mapped[str] = mapped_column(String(32), default="google")
    account_email: Mapped[str] = mapped_column(String(320))
    access_token: Mapped[str | None] = mapped_column(EncryptedString)
    refresh_token: Mapped[str] = mapped_column(EncryptedString)
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(32), default=ConnectionStatus.ACTIVE)

    calendars: Mapped[list[ExternalCalendar]] = relationship(
        back_populates="connection", cascade="all, delete-orphan", passive_deletes=True
    )


class ExternalCalendar(TimestampMixin, SyncStateMixin, Base):
    __tablename__ = "external_calendars"
    __table_args__ = (UniqueConstraint("connection_id", "external_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("calendar_connections.id", ondelete="CASCADE"), index=True
    )
    external_id: Mapped[str] = mapped_column(String(1024))
    name: Mapped[str] = mapped_column(String(1024), default="")
    color: Mapped[str | None] = mapped_column(String(16))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    access_role: Mapped[str] = mapped_column(String(32), default="owner")
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    sync_token: Mapped[str | None] = mapped_column(Text)
    channel_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    channel_token: Mapped[str | None] = mapped_column(String(128))
    channel_resource_id: Mapped[str | None] = mapped_column(String(255))
    channel_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The one sync allowed to read Google for this calendar right now (core/sync_lease.py); the
    # owner stays after release, so it also names the run that last began listing.
    sync_lease_owner: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    sync_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The longest event ever stored for this calendar, in seconds, long events aside (it only
    # grows, up to LONG_EVENT_SECONDS): an overlapping event that is not long starts after
    # start - this, which bounds range scans from below.
    max_event_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Highest X-Goog-Message-Number accepted on the current channel (replays are refused).
    channel_message_number: Mapped[int | None] = mapped_column(BigInteger)

    connection: Mapped[CalendarConnection] = relationship(back_populates="calendars")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("external_calendar_id", "external_id"),
        # Each calendar's events in view order, so a user's calendars merge without a sort.
        Index("ix_events_calendar_start", "external_calendar_id", "start_at", "id"),
        # The few long events (core/event_view.py), which range reads look up on their own.
        Index(
            "ix_events_long",
            "external_calendar_id",
            "start_at",
            postgresql_where=text("is_long"),
            sqlite_where=text("is_long = 1"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    external_calendar_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("external_calendars.id", ondelete="CASCADE")
    )
    external_id: Mapped[str] = mapped_column(String(1024))
    title: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    time_zone: Mapped[str | None] = mapped_column(String(64))
    recurring_event_id: Mapped[str | None] = mapped_column(String(1024))
    original_start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    creator_email: Mapped[str | None] = mapped_column(String(320))
    organizer_email: Mapped[str | None] = mapped_column(String(320))
    is_editable: Mapped[bool] = mapped_column(Boolean, default=False)
    busy: Mapped[bool] = mapped_column(Boolean, default=True)
    visibility: Mapped[str] = mapped_column(String(16), default="default")
    status: Mapped[str] = mapped_column(String(16), default="confirmed")
    google_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    etag: Mapped[str | None] = mapped_column(String(64))
    # Written on every upsert; a full pass deletes rows it did not touch (mark and sweep).
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The event as the API serves it (core/event_view.py), written with the row.
    view_json: Mapped[str] = mapped_column(Text)
    # Longer than LONG_EVENT_SECONDS: outside its calendar's scan bound, in ix_events_long.
    is_long: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class UserSettings(Base):
    __tablename__ = "user_settings"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    calendar_sync_from_months: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TaskConnection(TimestampMixin, SyncStateMixin, Base):
    __tablename__ = "task_connections"
    __table_args__ = (UniqueConstraint("user_id", "provider", "organization_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    provider: Mapped[str] = mapped_column(String(32), default="linear")
    auth_kind: Mapped[str] = mapped_column(String(16), default="api_key")
    access_token: Mapped[str] = mapped_column(EncryptedString)
    refresh_token: Mapped[str | None] = mapped_column(EncryptedString)
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    organization_id: Mapped[str] = mapped_column(String(255))
    organization_name: Mapped[str] = mapped_column(String(255), default="")
    url_key: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(32), default=ConnectionStatus.ACTIVE)
    # Highest `updatedAt` seen in a completed pass: the next incremental pass starts here.
    issues_watermark: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_full_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # One active sync per connection, as for calendars (core/sync_lease.py).
    sync_lease_owner: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    sync_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    items: Mapped[list[TaskItem]] = relationship(
        back_populates="connection", cascade="all, delete-orphan", passive_deletes=True
    )


class TaskItem(Base):
    __tablename__ = "task_items"
    __table_args__ = (UniqueConstraint("task_connection_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    task_connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("task_connections.id", ondelete="CASCADE")
    )
    external_id: Mapped[str] = mapped_column(String(255))
    identifier: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    due_date: Mapped[date | None] = mapped_column(Date)
    project_name: Mapped[str | None] = mapped_column(String(255))
    state_name: Mapped[str] = mapped_column(String(255), default="")
    state_type: Mapped[str] = mapped_column(String(32), default="unstarted")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime)

    connection: Mapped[TaskConnection] = relationship(back_populates="items")


class UsedOAuthState(Base):
    """An OAuth `state` already redeemed: each state is single-use until it expires."""

    __tablename__ = "used_oauth_states"

    state_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
