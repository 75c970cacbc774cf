"""How far a running sync has come: counts, an honest fraction estimate, and their text form.

The flows publish progress as a Prefect progress artifact whose description ends with the counts
as one line of JSON (`describe`); the API reads them back with `parse_description`.

The fraction is an estimate only where there is something to estimate from. Google gives no
total for a listing, so a full calendar pass is measured against the number of events the
calendar had stored before the pass (`stored_event_count`): a full pass lists the same window
again, so that count is the best guess of its size. It is capped below 1 until the pass has
really finished, and it is None for a calendar's first sync (nothing stored), for incremental
passes (their size is the number of changes, unknown up front) and for Linear (no total).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Event

# An estimate never claims the pass is done: the last pages may hold more than expected.
MAX_ESTIMATE = 0.99


@dataclass(frozen=True)
class SyncProgress:
    items: int
    pages: int
    fraction: float | None = None

    def as_dict(self) -> dict[str, int | float | None]:
        return asdict(self)


def estimate_fraction(items: int, expected_items: int | None) -> float | None:
    """`items / expected_items`, capped at `MAX_ESTIMATE`; None when nothing is expected."""
    if not expected_items or expected_items <= 0:
        return None
    return round(min(items / expected_items, MAX_ESTIMATE), 3)


def stored_event_count(session: Session, calendar_id: uuid.UUID) -> int:
    return session.execute(
        select(func.count()).select_from(Event).where(Event.external_calendar_id == calendar_id)
    ).scalar_one()


def describe(progress: SyncProgress, what: str) -> str:
    """A sentence for the Prefect UI, then the counts as JSON on the last line."""
    sentence = f"{what}: {progress.items} items in {progress.pages} pages"
    if progress.fraction is not None:
        sentence += f", about {progress.fraction:.0%} done"
    return f"{sentence}.\n\n`{json.dumps(progress.as_dict(), separators=(',', ':'))}`"


def parse_description(text: str | None) -> SyncProgress | None:
    """The counts `describe` wrote, or None for any other text."""
    if not text:
        return None
    last = text.strip().rsplit("\n", 1)[-1].strip().strip("`")
    try:
        data = json.loads(last)
        fraction = data.get("fraction")
        return SyncProgress(
            items=int(data["items"]),
            pages=int(data["pages"]),
            fraction=None if fraction is None else float(fraction),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
