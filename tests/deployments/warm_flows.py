"""Flows that probe what a warm start gives a run, served by `python -m
tests.deployments.warm_flows` (our runner, warm starts on) and run by the `calsync-warm` worker.

Each leaves something behind on purpose (an env var, a module global, 20 MB, a settings cache);
the next run reports whether it sees any of it."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.settings import get_current_settings

from core.settings import get_settings

PROBE_LINE = "warm-probe "
LEAK_VAR = "CALSYNC_WARM_PROBE_LEAK"
LEAKED: list[bytes] = []


def _crashed(flow: Any, flow_run: Any, state: Any) -> None:
    Path(flow_run.parameters["hook_file"]).write_text(f"{flow_run.id} {state.type.value}")


@flow(name="warm-probe", persist_result=False)
def probe(marker: str) -> None:
    context = FlowRunContext.get()
    report = {
        "pid": os.getpid(),
        "run_id_env": os.environ.get("PREFECT__FLOW_RUN_ID"),
        "run_id_context": str(context.flow_run.id) if context and context.flow_run else None,
        "leaked_env": os.environ.get(LEAK_VAR),
        "leaked_global_mb": sum(len(b) for b in LEAKED) // 2**20,
        "lease_ttl_s": get_settings().sync_lease_ttl_s,
        "api_url": str(get_current_settings().api.url),
        "task_default_retries": get_current_settings().tasks.default_retries,
        "cwd": os.getcwd(),
    }
    get_run_logger().info(PROBE_LINE + json.dumps(report))
    os.environ[LEAK_VAR] = marker
    LEAKED.append(os.urandom(20 * 2**20))
    os.environ["CALSYNC_SYNC_LEASE_TTL_S"] = "7"
    get_settings.cache_clear()
    assert get_settings().sync_lease_ttl_s == 7


@flow(name="warm-crash", persist_result=False, on_crashed=[_crashed])
def crash(hook_file: str) -> None:
    get_run_logger().info("about to die")
    os.kill(os.getpid(), signal.SIGKILL)


@flow(name="warm-sleep", persist_result=False)
def sleep(seconds: float) -> None:
    get_run_logger().info("sleeping")
    time.sleep(seconds)


FLOWS = (probe, crash, sleep)
DEPLOYMENT = "warm-test"


def main() -> None:
    from deployments.serve import serve_deployments

    serve_deployments(*(f.to_deployment(name=DEPLOYMENT) for f in FLOWS), limit=4)


if __name__ == "__main__":
    main()
