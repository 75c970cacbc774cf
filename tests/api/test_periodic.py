"""api/periodic.py: a pass that never returns is cut off with a warning saying where it waits,
and the loop goes on (the owed-start loop must not stop for good on one hung call)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from api.periodic import every


def test_a_hung_pass_is_cut_off_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    passes: list[int] = []
    never = asyncio.Event()

    async def hang_in_the_first_pass() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            await never.wait()
        if len(passes) == 2:
            raise RuntimeError("the database is away")

    async def scenario() -> None:
        loop = asyncio.create_task(
            every(0.01, "owed starts", hang_in_the_first_pass, pass_timeout_s=0.2)
        )
        try:
            async with asyncio.timeout(5):
                while len(passes) < 4:
                    await asyncio.sleep(0.01)
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)

    with caplog.at_level(logging.WARNING, logger="api.periodic"):
        asyncio.run(scenario())

    messages = [record.getMessage() for record in caplog.records]
    assert "owed starts pass still running after 0.2 s" in messages[0]
    assert "in hang_in_the_first_pass" in messages[0] and "locks.py" in messages[0]
    assert messages[1] == "owed starts pass failed: RuntimeError: the database is away"
    assert len(passes) >= 4
