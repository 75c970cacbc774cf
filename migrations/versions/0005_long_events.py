"""long events: flagged and indexed on their own, outside calendars' scan bounds

Revision ID: 0005_long_events
Revises: 0004
Create Date: 2026-12-03 07:00:00.000000

Marks events longer than LONG_EVENT_SECONDS (`events.is_long`, with the partial index
`ix_events_long` range reads use to find them) and caps each calendar's `max_event_seconds` at
LONG_EVENT_SECONDS, the longest an event counted in it can now be.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from core.event_view import LONG_EVENT_SECONDS, is_long, span_seconds

revision: str = "0005_long_events"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000

events = sa.table(
    "events",
    sa.column("id", sa.BigInteger),
    sa.column("external_calendar_id", sa.Uuid),
    sa.column("start_at", sa.DateTime(timezone=True)),
    sa.column("end_at", sa.DateTime(timezone=True)),
    sa.column("is_long", sa.Boolean),
)
calendars = sa.table(
    "external_calendars",
    sa.column("id", sa.Uuid),
    sa.column("max_event_seconds", sa.Integer),
)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _span(row: Any) -> int:
    return span_seconds({"start_at": _utc(row.start_at), "end_at": _utc(row.end_at)})


def _flag_long_events() -> None:
    """In batches by id; spans are computed here, as SQLite and PostgreSQL subtract dates
    differently."""
    bind = op.get_bind()
    last_id = 0
    while True:
        rows = bind.execute(
            sa.select(events.c.id, events.c.start_at, events.c.end_at)
            .where(events.c.id > last_id)
            .order_by(events.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        long_ids = [row.id for row in rows if is_long(_span(row))]
        if long_ids:
            bind.execute(events.update().where(events.c.id.in_(long_ids)).values(is_long=True))
        last_id = rows[-1].id


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_long", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    _flag_long_events()
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_long",
            ["external_calendar_id", "start_at"],
            unique=False,
            postgresql_where=sa.text("is_long"),
            sqlite_where=sa.text("is_long = 1"),
        )
    op.execute(
        calendars.update()
        .where(calendars.c.max_event_seconds > LONG_EVENT_SECONDS)
        .values(max_event_seconds=LONG_EVENT_SECONDS)
    )


def downgrade() -> None:
    # Before this revision the bound covered every event: widen it again for the long ones.
    bind = op.get_bind()
    longest: dict[Any, int] = {}
    for row in bind.execute(
        sa.select(events.c.external_calendar_id, events.c.start_at, events.c.end_at).where(
            events.c.is_long.is_(True)
        )
    ):
        calendar = row.external_calendar_id
        longest[calendar] = max(longest.get(calendar, 0), _span(row))
    if longest:
        bind.execute(
            calendars.update()
            .where(calendars.c.id == sa.bindparam("calendar_id"))
            .values(max_event_seconds=sa.bindparam("seconds")),
            [{"calendar_id": key, "seconds": value} for key, value in longest.items()],
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_long")
        batch_op.drop_column("is_long")
