"""Per-sync Prometheus figures, derived from the `calsync.sync.finished` events of the flows.

Flow runs are short-lived subprocesses on any worker machine, so they cannot be scraped; each
run emits one event to Prefect when it ends (core/sync_report.py) and every API process, which
already follows Prefect's event stream, counts it. Every replica therefore counts every sync:
aggregate these with `max` across API instances, not `sum` (README, "Operating calsync").
"""

from __future__ import annotations

from collections import OrderedDict

from prefect.events import Event

from api.metrics import SYNC_DURATION, SYNC_ITEMS, SYNC_PAGES, SYNC_PROVIDER_ERRORS, SYNC_RUNS
from core.sync_report import SYNC_FINISHED_EVENT

# The subscriber replays the last minute after a reconnect: count each event once.
_SEEN_MAX = 10_000
_seen: OrderedDict[str, None] = OrderedDict()


def record_sync_finished(event: Event) -> None:
    if event.event != SYNC_FINISHED_EVENT or str(event.id) in _seen:
        return
    _seen[str(event.id)] = None
    while len(_seen) > _SEEN_MAX:
        _seen.popitem(last=False)
    payload = event.payload
    provider = str(payload.get("provider", "unknown"))
    outcome = str(payload.get("outcome", "unknown"))
    SYNC_RUNS.labels(provider, outcome).inc()
    SYNC_ITEMS.labels(provider).inc(max(int(payload.get("items", 0)), 0))
    SYNC_PAGES.labels(provider).inc(max(int(payload.get("pages", 0)), 0))
    SYNC_DURATION.labels(provider).observe(max(float(payload.get("duration_s", 0.0)), 0.0))
    if outcome == "failed":
        SYNC_PROVIDER_ERRORS.labels(provider, str(payload.get("error_kind", "unexpected"))).inc()
