"""Probe many calendars at once for the fallback sweep, with what one probe costs cut down.

The same question as `CalendarSyncEngine.probe` (an unchanged calendar's cursor moves exactly
as an incremental sync would move it, only if no sync took the lease or moved the cursor
meanwhile), asked of a batch: one query loads every calendar's cursor and token, one shared
HTTP connection pool asks Google (a few requests at once), one transaction stamps the unchanged
ones. Only the plain case takes this path: a calendar whose token needs a refresh, or any answer
but 200 or 410, is probed by the engine itself, which refreshes tokens, marks revoked access
and raises the typed errors.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.credentials import token_is_fresh
from core.db import db_now, utcnow
from core.models import CalendarConnection, ConnectionStatus, ExternalCalendar
from core.settings import Settings
from core.sync.probe import ProbeResult
from core.sync_lease import lease_free

# An outcome the batch cannot tell: the engine's own probe decides (or raises).
ASK_ENGINE = None


@dataclass(frozen=True)
class _Target:
    id: uuid.UUID
    external_id: str
    sync_token: str
    access_token: str


def _plain_targets(
    session: Session, row_ids: list[uuid.UUID]
) -> tuple[dict[uuid.UUID, ProbeResult | str], list[_Target]]:
    """(outcomes known without asking Google, calendars to ask with the token they have)."""
    now = utcnow()
    known: dict[uuid.UUID, ProbeResult | str] = {row_id: ProbeResult.SKIPPED for row_id in row_ids}
    targets: list[_Target] = []
    rows = session.execute(
        select(
            ExternalCalendar.id,
            ExternalCalendar.external_id,
            ExternalCalendar.enabled,
            ExternalCalendar.sync_token,
            CalendarConnection.status,
            CalendarConnection.access_token,
            CalendarConnection.access_token_expires_at,
        )
        .join(CalendarConnection, ExternalCalendar.connection_id == CalendarConnection.id)
        .where(ExternalCalendar.id.in_(row_ids))
    )
    for row_id, external_id, enabled, sync_token, status, token, expires_at in rows:
        if not enabled:
            continue
        if status == ConnectionStatus.NEEDS_REAUTH or not sync_token:
            # The engine answers these at once: needs re-authorization, or CHANGED.
            del known[row_id]
        elif token and token_is_fresh(expires_at, now):
            del known[row_id]
            targets.append(_Target(row_id, external_id, sync_token, token))
        else:
            del known[row_id]
    return known, targets


def _ask(http: httpx.Client, base: str, target: _Target) -> ProbeResult | str | None:
    """CHANGED, the next sync token (nothing changed), or None (the engine must probe)."""
    try:
        response = http.get(
            f"{base}calendars/{quote(target.external_id, safe='')}/events",
            params={"syncToken": target.sync_token, "maxResults": 1, "singleEvents": "true"},
            headers={"Authorization": f"Bearer {target.access_token}"},
        )
    except httpx.HTTPError:
        return ASK_ENGINE
    if response.status_code == 410:
        return ProbeResult.CHANGED
    if response.status_code != 200:
        return ASK_ENGINE
    try:
        page = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ASK_ENGINE
    if page.get("kind") != "calendar#events" or "items" not in page:
        return ASK_ENGINE
    if page["items"] or page.get("nextPageToken") or not page.get("nextSyncToken"):
        return ProbeResult.CHANGED
    return str(page["nextSyncToken"])


def _stamp(
    sessions: sessionmaker[Session], unchanged: list[tuple[_Target, str]]
) -> dict[uuid.UUID, ProbeResult]:
    """Move each unchanged calendar's cursor and stamp it, in one transaction; a calendar a sync
    took (lease) or moved (cursor) meanwhile is SKIPPED: a sync's result always wins."""
    outcomes: dict[uuid.UUID, ProbeResult] = {}
    with sessions.begin() as session:
        for target, next_token in unchanged:
            moved = session.execute(
                update(ExternalCalendar)
                .where(
                    ExternalCalendar.id == target.id,
                    ExternalCalendar.sync_token == target.sync_token,
                    lease_free(),
                )
                .values(sync_token=next_token, last_synced_at=db_now())
            ).rowcount  # type: ignore[attr-defined]
            outcomes[target.id] = ProbeResult.UNCHANGED if moved else ProbeResult.SKIPPED
    return outcomes


def probe_calendars(
    settings: Settings,
    sessions: sessionmaker[Session],
    row_ids: list[uuid.UUID],
    *,
    threads: int,
    one: Callable[[uuid.UUID], str],
) -> list[str]:
    """Each calendar's outcome, in order: a `ProbeResult` value, or what `one` (the engine's
    probe with its errors mapped, used where the batch cannot tell) returned."""
    with sessions() as session:
        known, targets = _plain_targets(session, row_ids)
    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    with (
        httpx.Client(timeout=settings.google_request_timeout_s, limits=limits) as http,
        ThreadPoolExecutor(threads, thread_name_prefix="probe") as pool,
    ):
        base = settings.google_calendar_endpoint
        answers = list(pool.map(lambda target: _ask(http, base, target), targets))
        unchanged = []
        for target, answer in zip(targets, answers, strict=True):
            if isinstance(answer, ProbeResult):
                known[target.id] = answer
            elif isinstance(answer, str):
                unchanged.append((target, answer))
        known |= _stamp(sessions, unchanged)
        rest = [row_id for row_id in row_ids if row_id not in known]
        known |= dict(zip(rest, pool.map(one, rest), strict=True))
    return [
        outcome.value if isinstance(outcome, ProbeResult) else outcome
        for outcome in (known[row_id] for row_id in row_ids)
    ]
