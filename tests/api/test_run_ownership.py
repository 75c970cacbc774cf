"""The status routes' ownership check (api/run_ownership.py) on the real app database: pollers
asking together cost one query, an aging answer is given at once and re-read behind them, and a
run that left the user's row turns 404 once that re-read lands."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import event

from api import run_ownership as ownership_module
from api.run_ownership import OWNERSHIP_GRACE_S, OWNERSHIP_TTL_S, RunOwnership
from core.db import get_engine, session_scope
from core.models import ExternalCalendar
from core.sync_state import record_run_started
from tests.support.google import seed_calendar


def _calendar(user_id: str) -> uuid.UUID:
    account = {"email": f"{user_id}@own.test", "refresh_token": "r", "access_token": "a"}
    calendar = {"id": f"{uuid.uuid4().hex}@group.calendar.google.com", "summary": "Own"}
    return seed_calendar(account, calendar, user_id=user_id)


def _point(row_id: uuid.UUID, run_id: uuid.UUID) -> None:
    with session_scope() as session:
        assert record_run_started(session, ExternalCalendar, row_id, run_id)


class Queries:
    """Ownership queries the app database answers (what the cache and the batching save); other
    queries of this process (an API another test left running) do not match."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _conn, _cursor, statement: str, *_args) -> None:  # type: ignore[no-untyped-def]
        if (
            statement.lstrip().upper().startswith("SELECT")
            and "latest_sync_flow_run_id" in statement
        ):
            self.count += 1


def test_pollers_asking_together_cost_one_query_and_an_aging_answer_is_reread_behind(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [0.0]
    monkeypatch.setattr(ownership_module, "_monotonic", lambda: clock[0])
    users = [f"own-{uuid.uuid4().hex[:8]}" for _ in range(20)]
    rows = {user: _calendar(user) for user in users}
    runs = {user: uuid.uuid4() for user in users}
    for user in users:
        _point(rows[user], runs[user])
    queries = Queries()
    event.listen(get_engine(), "before_cursor_execute", queries)
    try:

        async def scenario() -> None:
            ownership = RunOwnership()
            # 20 users' pollers at once, plus a stranger asking for someone else's run.
            asked = [ownership.owned(user, runs[user]) for user in users]
            stranger = ownership.owned("stranger", runs[users[0]])
            *answers, strangers = await asyncio.gather(*asked, stranger)
            assert [answer.row_id if answer else None for answer in answers] == [
                rows[user] for user in users
            ]
            assert strangers is None
            assert queries.count == 2, "one batch: its calendars query, then its task rows"

            # Fresh: answered from memory.
            clock[0] = OWNERSHIP_TTL_S / 2
            assert await ownership.owned(users[0], runs[users[0]]) is not None
            assert queries.count == 2

            # A newer run replaces the first user's; past the TTL the old answer is still
            # given at once, and the one re-read behind it forgets the run.
            _point(rows[users[0]], uuid.uuid4())
            clock[0] = OWNERSHIP_TTL_S + 0.1
            aging = await asyncio.gather(
                *(ownership.owned(users[0], runs[users[0]]) for _ in range(5))
            )
            assert all(answer is not None for answer in aging)
            for _ in range(100):
                if ownership._refresh._keys:
                    await asyncio.sleep(0.01)
            assert not ownership._refresh._keys
            assert queries.count == 4, "one re-read for five pollers"
            assert await ownership.owned(users[0], runs[users[0]]) is None

            # Nobody asked through the grace: the next poller waits for a fresh read.
            clock[0] += OWNERSHIP_TTL_S + OWNERSHIP_GRACE_S + 1
            before = queries.count
            assert (await ownership.owned(users[1], runs[users[1]])) is not None
            assert queries.count > before

            ownership.forget(users[1])
            before = queries.count
            assert (await ownership.owned(users[1], runs[users[1]])) is not None
            assert queries.count > before, "a disconnect forgets the user's answers"

        asyncio.run(scenario())
    finally:
        event.remove(get_engine(), "before_cursor_execute", queries)
