"""calendar sync lease

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("external_calendars", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sync_lease_owner", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("sync_lease_until", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("external_calendars", schema=None) as batch_op:
        batch_op.drop_column("sync_lease_until")
        batch_op.drop_column("sync_lease_owner")
