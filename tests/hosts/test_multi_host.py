"""calsync across five hosts (tests/hosts/cluster.py): Sync now through the API, an API host
restarted while it owed a start, a worker host that dies mid-run, and a sweep sharded across
both worker hosts.

Two tests on one cluster (its start-up is most of the cost), the scenarios in turn.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from core.db import session_scope, utcnow
from core.errors import CRASHED
from core.models import ExternalCalendar
from core.sync.calendar import CalendarSyncEngine
from deployments import names
from tests.hosts.cluster import WORKERS, Cluster, cluster_settings, running_cluster
from tests.hosts.waits import stored_events, until
from tests.live.sse import run_events, statuses
from tests.support.auth import bearer
from tests.support.google import GoogleEmulator, seed_calendar
from tests.support.netns import Host, virtual_network
from tests.support.prefect_runs import flow_run_pid
from tests.support.push import disable_all_calendars

pytestmark = pytest.mark.integration

# A worker takes at most --limit 4 runs: 6 shards (and the sweep itself) need both hosts.
SWEPT, SHARD_SIZE = 12, 2
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("hosts")
    with (
        virtual_network() as network,
        running_cluster(network, logs) as running,
        cluster_settings(running),
    ):
        yield running


def flow_run(cluster: Cluster, run_id: object) -> dict[str, Any]:
    """The run as Prefect's API returns it, or {} when that read fails (callers poll again)."""
    response = httpx.get(f"{cluster.prefect_api}/flow_runs/{run_id}", timeout=10)
    return dict(response.json()) if response.status_code == 200 else {}


def state(cluster: Cluster, run_id: object) -> str | None:
    return (flow_run(cluster, run_id).get("state") or {}).get("type")


def final_run(cluster: Cluster, run_id: object, timeout_s: float = 120) -> dict[str, Any]:
    seen: list[Any] = []

    def final() -> dict[str, Any] | None:
        response = httpx.get(f"{cluster.prefect_api}/flow_runs/{run_id}", timeout=10)
        seen[:] = [response.status_code, response.text[:600]]
        run = dict(response.json()) if response.status_code == 200 else {}
        return run if run and run["state"]["type"] in FINAL else None

    try:
        return until(f"flow run {run_id} final", final, timeout_s)  # type: ignore[no-any-return]
    except AssertionError as error:
        raise AssertionError(
            f"{error}; last read: {seen}; events about it: {run_history(cluster, run_id)}"
        ) from None


def run_history(cluster: Cluster, run_id: object) -> list[str]:
    """What Prefect's event log says of the run (its state changes), for a failure's message."""
    body = {"filter": {"any_resource": {"id": [f"prefect.flow-run.{run_id}"]}}, "limit": 50}
    response = httpx.post(f"{cluster.prefect_api}/events/filter", json=body, timeout=10)
    if response.status_code != 200:
        return [f"events unreadable: {response.status_code}"]
    return [f"{e['occurred']} {e['event']}" for e in response.json()["events"]]


def row(row_id: uuid.UUID) -> ExternalCalendar:
    with session_scope() as session:
        found = session.get(ExternalCalendar, row_id)
        assert found is not None
        return found


def heartbeat_stored(cluster: Cluster, run_id: object) -> bool:
    body = {
        "filter": {
            "event": {"name": ["prefect.flow-run.heartbeat"]},
            "resource": {"id": [f"prefect.flow-run.{run_id}"]},
        },
        "limit": 1,
    }
    return bool(httpx.post(f"{cluster.prefect_api}/events/filter", json=body).json()["events"])


def host_running(cluster: Cluster, run_id: object) -> Host:
    pid = flow_run_pid(run_id, timeout_s=60)  # type: ignore[arg-type]
    [host] = [cluster.host(name) for name in WORKERS if cluster.host(name).owns(pid)]
    return host


def calendars(google: GoogleEmulator, user: str, *events: int) -> list[uuid.UUID]:
    account = google.account()
    rows = []
    for count in events:
        calendar = google.calendar(account["email"], f"Hosts {count}")
        google.bulk(calendar["id"], count)
        rows.append(seed_calendar(account, calendar, user_id=user))
    return rows


def stale_synced(google: GoogleEmulator, count: int) -> list[tuple[uuid.UUID, str]]:
    """Calendars synced (by this process) two hours ago: (row ID, Google calendar ID)."""
    account = google.account()
    seeded = []
    for index in range(count):
        calendar = google.calendar(account["email"], f"Swept {index}")
        google.bulk(calendar["id"], 2)
        row_id = seed_calendar(account, calendar, user_id=f"swept-{account['email']}")
        CalendarSyncEngine().sync(row_id)
        seeded.append((row_id, calendar["id"]))
    with session_scope() as session:
        session.execute(
            update(ExternalCalendar)
            .where(ExternalCalendar.id.in_([row_id for row_id, _ in seeded]))
            .values(last_synced_at=utcnow() - timedelta(hours=2))
        )
    return seeded


def start_sweep(cluster: Cluster, shard_size: int) -> str:
    flow, deployment = names.CALENDAR_SWEEP.split("/")
    found = httpx.get(f"{cluster.prefect_api}/deployments/name/{flow}/{deployment}").json()
    run = httpx.post(
        f"{cluster.prefect_api}/deployments/{found['id']}/create_flow_run",
        json={"parameters": {"shard_size": shard_size}},
    )
    run.raise_for_status()
    return str(run.json()["id"])


def runs_tagged(cluster: Cluster, tag: str) -> list[dict[str, Any]]:
    body = {"flow_runs": {"tags": {"all_": [tag]}}, "limit": 200}
    return list(httpx.post(f"{cluster.prefect_api}/flow_runs/filter", json=body).json())


def test_syncs_survive_a_restarted_api_host_and_a_dead_worker_host(cluster: Cluster) -> None:
    google = GoogleEmulator(cluster.emulator)
    user = f"hosts-{uuid.uuid4().hex[:8]}"
    now, owed, doomed = calendars(google, user, 5, 7, 30)
    api = httpx.Client(base_url=cluster.api, headers=bearer(user), timeout=30)

    # 1. Sync now, through the API host, run by a worker host.
    started = api.post(f"/calendars/{now}/sync")
    assert started.status_code == 202, started.text
    run = final_run(cluster, started.json()["flow_run_id"])
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert api.get(f"/sync-runs/{run['id']}").json()["status"] == "completed"
    assert stored_events(now) == 5

    # 2. The API host restarts while it owes a start: Prefect's host stalls (its kernel still
    # accepts connections), so Sync now is accepted as pending with no run, and the API process
    # dies before it could start one. The restarted API starts it (api/owed_starts.py).
    prefect = cluster.servers["prefect"]
    prefect.send_signal(signal.SIGSTOP)  # type: ignore[attr-defined]
    try:
        pending = api.post(f"/calendars/{owed}/sync")
        cluster.host("api").power_off()
    finally:
        prefect.send_signal(signal.SIGCONT)  # type: ignore[attr-defined]
    assert pending.status_code == 202, pending.text
    assert pending.json()["flow_run_id"] is None and pending.json()["status"] == "pending"
    assert row(owed).sync_requested_at is not None
    cluster.start_api()
    # The start Prefect read before it stalled may have created the run anyway: that run, or the
    # restarted API's, does the owed sync; either way exactly one run, and nothing stays owed.
    owed_run = until("the owed start", lambda: row(owed).latest_sync_flow_run_id, 60)
    assert final_run(cluster, owed_run)["state"]["type"] == "COMPLETED"
    assert api.get(f"/sync-runs/{owed_run}").json()["status"] == "completed"
    assert stored_events(owed) == 7
    until("the owed request cleared", lambda: row(owed).sync_requested_at is None, 30)
    of_owed = [
        run["id"]
        for run in runs_tagged(cluster, f"user:{user}")
        if run["parameters"].get("external_calendar_id") == str(owed)
    ]
    assert of_owed == [str(owed_run)], of_owed

    # 3. A worker host dies mid-run (its calendar's listing hangs until the host is gone) and
    # boots again. The user follows the run live meanwhile.
    google.fault(endpoint="events.list", delay_s=120, calendar_id=row(doomed).external_id)
    dying = api.post(f"/calendars/{doomed}/sync").json()["flow_run_id"]
    until("the doomed run running", lambda: state(cluster, dying) == "RUNNING", 90)
    dead_host = host_running(cluster, dying)
    until("its first heartbeat", lambda: heartbeat_stored(cluster, dying), 60)
    follower = httpx.Client(
        base_url=cluster.api, headers=bearer(user), timeout=httpx.Timeout(30, read=180)
    )
    with ThreadPoolExecutor(1) as pool:
        live = pool.submit(run_events, follower, dying)
        dead_host.power_off()
        google.clear_faults()
        cluster.start_worker(dead_host.name)
        events = live.result(timeout=240)

    # The automation crashed the silent run, the API reported it failed with the safe message,
    # and the row's next start synced it.
    crashed = flow_run(cluster, dying)
    assert crashed["state"]["type"] == "CRASHED" and crashed["state"]["message"] == CRASHED
    assert statuses(events)[-2:] == ["running", "failed"], statuses(events)
    assert events[-1].data["error"] == CRASHED

    def resynced() -> dict[str, Any] | None:
        # The reconciler's restart syncs it; should no worker ever take that run (it has been
        # seen, once in four runs here, with a host just powered off), the stuck-run
        # reconciler replaces it after CALSYNC_STUCK_RUN_AFTER_S: the row converges either way.
        latest = row(doomed).latest_sync_flow_run_id
        if latest in (None, uuid.UUID(dying)):
            return None
        run = flow_run(cluster, latest)
        return run if (run.get("state") or {}).get("type") == "COMPLETED" else None

    until("the crashed row re-synced by its next run", resynced, 300)
    assert stored_events(doomed) == 30


def test_a_sweep_is_sharded_across_both_worker_hosts(cluster: Cluster) -> None:
    """More shards than one worker's --limit: each worker host runs some (a shard tags its run
    with the host it ran on), and every stale calendar is probed once."""
    google = GoogleEmulator(cluster.emulator)
    disable_all_calendars()  # the sweep sees only this test's calendars
    swept = stale_synced(google, SWEPT)
    google.reset_calls()

    sweep = final_run(cluster, start_sweep(cluster, SHARD_SIZE), timeout_s=300)

    assert sweep["state"]["type"] == "COMPLETED", sweep["state"]
    shards = runs_tagged(cluster, f"sweep:{sweep['id']}")
    assert len(shards) == SWEPT // SHARD_SIZE
    assert all(shard["state"]["type"] == "COMPLETED" for shard in shards)
    hosts = [tag for shard in shards for tag in shard["tags"] if tag.startswith("host:")]
    assert set(hosts) == {f"host:{name}" for name in WORKERS}, hosts
    calls = google.calls()
    assert [calls.get(f"events.list:{google_id}") for _, google_id in swept] == [1] * SWEPT
    with session_scope() as session:
        synced = session.scalars(
            select(ExternalCalendar.last_synced_at).where(
                ExternalCalendar.id.in_([row_id for row_id, _ in swept])
            )
        ).all()
    assert all(at is not None and at > utcnow() - timedelta(minutes=10) for at in synced)
