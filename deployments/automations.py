"""The Prefect automation that marks calsync runs whose heartbeats stopped as Crashed.

While its process lives, a flow run sends `prefect.flow-run.heartbeat` every
PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (Prefect's floor is 30). A run on a machine that died
reports nothing more and would show Running forever; this automation notices the silence and sets
Crashed, with the message the API shows the user. `python -m deployments.automations` creates it,
or updates it in place, against PREFECT_API_URL (`make dev` does this for the local server).
"""

from __future__ import annotations

import argparse
import uuid
from datetime import timedelta

from prefect import get_client
from prefect.automations import (
    AutomationCore,
    ChangeFlowRunState,
    EventTrigger,
    Posture,
    ResourceSpecification,
)
from prefect.client.schemas.objects import StateType

from core.errors import CRASHED
from deployments.names import RUN_TAG

NAME = "calsync: crash runs whose heartbeats stopped"
HEARTBEAT_FREQUENCY_S = 30
# Three missed heartbeats: a busy machine is late now and then, a dead one never answers.
DEFAULT_TIMEOUT_S = 3 * HEARTBEAT_FREQUENCY_S
FINAL_EVENTS = (
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Crashed",
)
# A rate-limited run goes back to the schedule (flows/reschedule.py): its process ends on
# purpose, so its heartbeats stop without a final state.
RESCHEDULED_EVENT = "prefect.flow-run.AwaitingRetry"


def crash_silent_runs(timeout_s: int = DEFAULT_TIMEOUT_S) -> AutomationCore:
    """After each heartbeat of a run tagged `calsync`, expect another heartbeat (or a final
    state, or its rescheduling) within `timeout_s`; otherwise propose Crashed. A run already
    final refuses it."""
    return AutomationCore(
        name=NAME,
        description=(
            f"Marks calsync flow runs Crashed when no heartbeat arrived for {timeout_s}s "
            "(their machine or process died). Managed by deployments/automations.py."
        ),
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", RESCHEDULED_EVENT, *FINAL_EVENTS},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification(
                {"prefect.resource.id": f"prefect.tag.{RUN_TAG}", "prefect.resource.role": "tag"}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=timeout_s),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, name="Crashed", message=CRASHED)],
    )


def ensure_crash_automation(timeout_s: int = DEFAULT_TIMEOUT_S) -> uuid.UUID:
    """Create the automation, or update the one of the same name: safe to run on every deploy."""
    automation = crash_silent_runs(timeout_s)
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(NAME)
        if not existing:
            return client.create_automation(automation)
        first, *duplicates = existing
        client.update_automation(first.id, automation)
        for duplicate in duplicates:
            client.delete_automation(duplicate.id)
        return first.id


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deployments.automations", description=__doc__)
    parser.add_argument(
        "--timeout-s",
        type=int,
        default=DEFAULT_TIMEOUT_S,
        help="seconds without a heartbeat before a run is marked Crashed (default: %(default)s)",
    )
    args = parser.parse_args()
    automation_id = ensure_crash_automation(args.timeout_s)
    print(f"automation {NAME!r} is {automation_id}")


if __name__ == "__main__":
    main()
