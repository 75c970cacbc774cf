"""sync requests, lease generations, push message numbers, single-use OAuth states

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sync_request_columns(batch_op: object) -> None:
    batch_op.add_column(  # type: ignore[attr-defined]
        sa.Column("sync_requested_at", sa.DateTime(timezone=True), nullable=True)
    )
    batch_op.add_column(  # type: ignore[attr-defined]
        sa.Column("sync_request_source", sa.String(length=32), nullable=True)
    )
    batch_op.add_column(  # type: ignore[attr-defined]
        sa.Column("sync_lease_generation", sa.BigInteger(), nullable=False, server_default="0")
    )


def upgrade() -> None:
    with op.batch_alter_table("external_calendars", schema=None) as batch_op:
        _sync_request_columns(batch_op)
        batch_op.add_column(sa.Column("channel_message_number", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("task_connections", schema=None) as batch_op:
        _sync_request_columns(batch_op)
        batch_op.add_column(sa.Column("sync_lease_owner", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("sync_lease_until", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "ix_external_calendars_sync_requested_at", "external_calendars", ["sync_requested_at"]
    )
    op.create_index(
        "ix_task_connections_sync_requested_at", "task_connections", ["sync_requested_at"]
    )
    op.create_table(
        "used_oauth_states",
        sa.Column("state_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_id", name=op.f("pk_used_oauth_states")),
    )
    op.create_index("ix_used_oauth_states_expires_at", "used_oauth_states", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_used_oauth_states_expires_at", table_name="used_oauth_states")
    op.drop_table("used_oauth_states")
    op.drop_index("ix_task_connections_sync_requested_at", table_name="task_connections")
    op.drop_index("ix_external_calendars_sync_requested_at", table_name="external_calendars")
    with op.batch_alter_table("task_connections", schema=None) as batch_op:
        for column in (
            "sync_lease_until",
            "sync_lease_owner",
            "sync_lease_generation",
            "sync_request_source",
            "sync_requested_at",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("external_calendars", schema=None) as batch_op:
        for column in (
            "channel_message_number",
            "sync_lease_generation",
            "sync_request_source",
            "sync_requested_at",
        ):
            batch_op.drop_column(column)
