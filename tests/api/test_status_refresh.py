"""An event-backed status past its time to live is answered at once and re-read behind the
poller (api/orchestrator.py), once however many pollers ask; past its grace it is read first."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from api import orchestrator as orchestrator_module
from api.orchestrator import EVENT_BACKED_TTL_S, REVALIDATE_GRACE_S, Orchestrator, RunInfo
from api.read_batcher import ReadBatcher
from core.run_status import RunStatus


def info(run_id: uuid.UUID, status: RunStatus, second: int) -> RunInfo:
    at = datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC)
    return RunInfo(run_id, status, None, None, None, state_at=at)


def test_an_aging_status_is_answered_at_once_and_read_again_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(orchestrator_module, "_monotonic", lambda: clock[0])
    run_id = uuid.uuid4()
    in_prefect = [info(run_id, RunStatus.PENDING, 0)]
    fetches: list[list[uuid.UUID]] = []

    async def scenario() -> list[RunStatus]:
        orchestrator = Orchestrator(api_url="http://127.0.0.1:9/api")
        orchestrator._events_up = True  # the event stream vouches for cached states

        async def fetch(run_ids: list[uuid.UUID]) -> dict[uuid.UUID, RunInfo]:
            fetches.append(run_ids)
            await asyncio.sleep(0.01)  # a Prefect round trip
            for each in run_ids:
                orchestrator._remember(each, in_prefect[-1], orchestrator._events_generation)
            return {each: in_prefect[-1] for each in run_ids}

        orchestrator._batcher = ReadBatcher(fetch, window_s=0, max_batch=10)
        seen = [(await orchestrator.read_runs([run_id]))[run_id].status]  # a miss: read
        # The run starts; its event was missed.
        in_prefect.append(info(run_id, RunStatus.RUNNING, 1))
        clock[0] = EVENT_BACKED_TTL_S / 2
        seen.append((await orchestrator.read_runs([run_id]))[run_id].status)  # fresh: cached
        clock[0] = EVENT_BACKED_TTL_S + 0.1
        aging = await asyncio.gather(*(orchestrator.read_runs([run_id]) for _ in range(5)))
        seen += [answer[run_id].status for answer in aging]  # at once, the cached state
        await asyncio.sleep(0.05)  # the one refresh lands
        seen.append((await orchestrator.read_runs([run_id]))[run_id].status)
        # Nobody asked for a long time: past the grace, a poller waits for the read.
        in_prefect.append(info(run_id, RunStatus.COMPLETED, 2))
        clock[0] += EVENT_BACKED_TTL_S + REVALIDATE_GRACE_S + 1
        seen.append((await orchestrator.read_runs([run_id]))[run_id].status)
        return seen

    seen = asyncio.run(scenario())

    pending, running, completed = RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPLETED
    assert seen == [pending, pending, *[pending] * 5, running, completed]
    assert len(fetches) == 3, fetches
