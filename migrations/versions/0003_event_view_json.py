"""event view JSON, calendars' longest event, view-order index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 05:00:00.000000

Stores each event's API rendering (`events.view_json`, core/event_view.py) and each calendar's
longest event (`external_calendars.max_event_seconds`), filling both for existing rows in
batches, and replaces the (calendar, start, end) index with (calendar, start, id): the order
calendar views read in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from core.event_view import render_view, span_seconds

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000

events = sa.table(
    "events",
    sa.column("id", sa.BigInteger),
    sa.column("external_calendar_id", sa.Uuid),
    sa.column("external_id", sa.String),
    sa.column("title", sa.Text),
    sa.column("description", sa.Text),
    sa.column("location", sa.Text),
    sa.column("start_at", sa.DateTime(timezone=True)),
    sa.column("end_at", sa.DateTime(timezone=True)),
    sa.column("all_day", sa.Boolean),
    sa.column("start_date", sa.Date),
    sa.column("end_date", sa.Date),
    sa.column("time_zone", sa.String),
    sa.column("recurring_event_id", sa.String),
    sa.column("busy", sa.Boolean),
    sa.column("visibility", sa.String),
    sa.column("status", sa.String),
    sa.column("is_editable", sa.Boolean),
    sa.column("organizer_email", sa.String),
    sa.column("view_json", sa.Text),
)
calendars = sa.table(
    "external_calendars",
    sa.column("id", sa.Uuid),
    sa.column("max_event_seconds", sa.Integer),
)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _backfill() -> None:
    bind = op.get_bind()
    columns = [column for column in events.c if column.key != "view_json"]
    longest: dict[Any, int] = {}
    last_id = 0
    while True:
        rows = bind.execute(
            sa.select(*columns).where(events.c.id > last_id).order_by(events.c.id).limit(BATCH)
        ).mappings()
        updates = []
        for raw in rows:
            row = {**raw, "start_at": _utc(raw["start_at"]), "end_at": _utc(raw["end_at"])}
            updates.append({"row_id": row["id"], "view": render_view(row)})
            calendar = row["external_calendar_id"]
            longest[calendar] = max(longest.get(calendar, 0), span_seconds(row))
        if not updates:
            break
        bind.execute(
            events.update()
            .where(events.c.id == sa.bindparam("row_id"))
            .values(view_json=sa.bindparam("view")),
            updates,
        )
        last_id = updates[-1]["row_id"]
    if longest:
        bind.execute(
            calendars.update()
            .where(calendars.c.id == sa.bindparam("calendar_id"))
            .values(max_event_seconds=sa.bindparam("seconds")),
            [{"calendar_id": key, "seconds": value} for key, value in longest.items()],
        )


def upgrade() -> None:
    with op.batch_alter_table("external_calendars", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_event_seconds", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("view_json", sa.Text(), nullable=True))
    _backfill()
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("view_json", existing_type=sa.Text(), nullable=False)
        batch_op.drop_index("ix_events_calendar_range")
        batch_op.create_index(
            "ix_events_calendar_start", ["external_calendar_id", "start_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_calendar_start")
        batch_op.create_index(
            "ix_events_calendar_range", ["external_calendar_id", "start_at", "end_at"], unique=False
        )
        batch_op.drop_column("view_json")
    with op.batch_alter_table("external_calendars", schema=None) as batch_op:
        batch_op.drop_column("max_event_seconds")
