"""Linear connections and synced task items as seen by their owner."""

from __future__ import annotations

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from core.models import TaskConnection, TaskItem


def user_task_connections(session: Session, user_id: str) -> list[TaskConnection]:
    return list(
        session.scalars(
            select(TaskConnection)
            .where(TaskConnection.user_id == user_id)
            .order_by(TaskConnection.created_at, TaskConnection.id)
        )
    )


def user_task_items(session: Session, user_id: str, *, limit: int) -> list[TaskItem]:
    """Most urgent first (Linear's 1 urgent .. 4 low, 0 = none goes last), then by due date."""
    no_priority_last = case((TaskItem.priority == 0, 5), else_=TaskItem.priority)
    return list(
        session.scalars(
            select(TaskItem)
            .join(TaskConnection)
            .where(TaskConnection.user_id == user_id)
            .order_by(no_priority_last, TaskItem.due_date.is_(None), TaskItem.due_date, TaskItem.id)
            .limit(limit)
        )
    )
