"""The API's run start (api/orchestrator.py `start_run`) on the real Prefect server and runner:
it sends Prefect's create-from-deployment request itself (to skip the server's schema check of
IDs it built), so this checks what the client's own method gave: the run, its parameters and
tags, one run per idempotency key, a deployment re-registered under a new ID, and a run that
the runner then completes."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from api.orchestrator import Orchestrator
from core.run_status import RunStatus
from deployments.names import CALENDAR_SYNC
from tests.support.google import GoogleEmulator, seed_calendar

pytestmark = pytest.mark.integration


def test_a_run_started_by_the_api_is_prefects_own_and_completes(
    runner: None, prefect_server: str, google: GoogleEmulator
) -> None:
    account = google.account()
    row = seed_calendar(account, google.calendar(account["email"], "Start"), user_id="starter")
    key = f"{row}:after:None"
    tags = ["provider:google", "user:starter", "source:api"]

    async def scenario() -> tuple[uuid.UUID, RunStatus]:
        orchestrator = Orchestrator(api_url=prefect_server)
        await orchestrator.start()
        try:
            # A deployment ID remembered from before a re-registration: looked up again.
            orchestrator._deployment_ids[CALENDAR_SYNC] = uuid.uuid4()
            params = {"external_calendar_id": str(row)}
            first = await orchestrator.start_run(
                CALENDAR_SYNC, params, tags=tags, idempotency_key=key
            )
            again = await orchestrator.start_run(
                CALENDAR_SYNC, params, tags=tags, idempotency_key=key
            )
            assert again.id == first.id, "one run per idempotency key"
            run = await orchestrator.client.read_flow_run(first.id)
            deployment = await orchestrator.client.read_deployment_by_name(CALENDAR_SYNC)
            assert run.deployment_id == deployment.id
            assert run.parameters == params
            assert set(tags) <= set(run.tags)
            assert first.status in {RunStatus.PENDING, RunStatus.RUNNING}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                info = await orchestrator.read_run(first.id)
                if info is not None and info.status.is_final:
                    return first.id, info.status
                await asyncio.sleep(0.2)
            raise TimeoutError("the run never ended")
        finally:
            await orchestrator.close()

    _, status = asyncio.run(scenario())
    assert status == RunStatus.COMPLETED
