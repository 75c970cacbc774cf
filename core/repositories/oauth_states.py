"""Single use of OAuth states: a state is redeemed by inserting its ID, so a second redemption,
on any API replica, hits the primary key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import utcnow
from core.models import UsedOAuthState

# Rows are kept this long past their state's expiry, so a replica whose clock runs behind the
# purging one's still finds them while it would accept the state.
PURGE_MARGIN = timedelta(minutes=5)


def redeem(session: Session, state_id: str, expires: int) -> bool:
    """Mark the state used; False if it was used before. Expired rows are purged on the way, since
    verification refuses their states anyway."""
    try:
        with session.begin_nested():
            session.execute(
                insert(UsedOAuthState).values(
                    state_id=state_id, expires_at=datetime.fromtimestamp(expires, UTC)
                )
            )
    except IntegrityError:
        return False
    session.execute(
        delete(UsedOAuthState).where(UsedOAuthState.expires_at < utcnow() - PURGE_MARGIN)
    )
    return True
