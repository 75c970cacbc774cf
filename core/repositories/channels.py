"""Push channels as the webhook and the renewal flow see them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, selectinload

from core.models import CalendarConnection, ConnectionStatus, ExternalCalendar


def calendar_by_channel(session: Session, channel_id: str) -> ExternalCalendar | None:
    """The calendar whose current channel is `channel_id` (with its connection), if any."""
    return session.scalars(
        select(ExternalCalendar)
        .where(ExternalCalendar.channel_id == channel_id)
        .options(selectinload(ExternalCalendar.connection))
    ).one_or_none()


def accept_message_number(
    session: Session, calendar_id: uuid.UUID, channel_id: str, number: int
) -> bool:
    """Record `number` as the channel's highest message if it is higher than any before; False for
    a replayed, duplicated or overtaken message. One conditional UPDATE, so of two deliveries
    racing with the same number only one passes."""
    result = session.execute(
        update(ExternalCalendar)
        .where(
            ExternalCalendar.id == calendar_id,
            ExternalCalendar.channel_id == channel_id,
            or_(
                ExternalCalendar.channel_message_number.is_(None),
                ExternalCalendar.channel_message_number < number,
            ),
        )
        .values(channel_message_number=number)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def channels_due(session: Session, renew_before: datetime) -> list[uuid.UUID]:
    """Enabled calendars of usable connections whose channel is missing or expires (or, while
    unconfirmed, must be confirmed) before `renew_before`."""
    return list(
        session.scalars(
            select(ExternalCalendar.id)
            .join(CalendarConnection)
            .where(
                ExternalCalendar.enabled.is_(True),
                CalendarConnection.status == ConnectionStatus.ACTIVE,
                or_(
                    ExternalCalendar.channel_id.is_(None),
                    ExternalCalendar.channel_expires_at < renew_before,
                ),
            )
            .order_by(ExternalCalendar.id)
        )
    )


def calendar_names(session: Session, calendar_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Names for the renewal's task runs."""
    if not calendar_ids:
        return {}
    rows = session.execute(
        select(ExternalCalendar.id, ExternalCalendar.name).where(
            ExternalCalendar.id.in_(calendar_ids)
        )
    )
    return {row_id: name for row_id, name in rows}


def channels_of_disabled_calendars(session: Session) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(ExternalCalendar.id).where(
                ExternalCalendar.enabled.is_(False), ExternalCalendar.channel_id.is_not(None)
            )
        )
    )
