"""The API's Prometheus metrics (served at `GET /metrics`); README "Operating calsync" says
what each one means and which deserve an alert.

Metrics live in prometheus_client's process-wide registry, so every app in a process adds to
the same counters: read them as rates, as Prometheus does.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "calsync_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "calsync_http_request_duration_seconds",
    "Time from request to response headers, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SYNC_STARTS = Counter(
    "calsync_sync_starts",
    "Sync start requests: who asked (source) and what happened (started a run, joined the "
    "run in flight, or failed because Prefect was unreachable).",
    ["source", "provider", "outcome"],
)
PREFECT_CALL_ERRORS = Counter(
    "calsync_prefect_call_errors",
    "Prefect API calls that failed: timeout (over the call bound), unreachable, server_error.",
    ["kind"],
)
SSE_STREAMS_OPEN = Gauge(
    "calsync_sse_streams_open", "Server-Sent Event streams open now, by route template.", ["route"]
)
STATUS_CACHE = Counter(
    "calsync_status_cache_lookups",
    "Run-status lookups: hit (answered from this process's cache) or miss (asked Prefect).",
    ["result"],
)
# Per-sync figures, from the `calsync.sync.finished` events the flows emit (api/sync_metrics.py).
SYNC_RUNS = Counter(
    "calsync_sync_runs", "Finished sync runs, by provider and outcome.", ["provider", "outcome"]
)
SYNC_ITEMS = Counter(
    "calsync_sync_items", "Items (events, issues) processed by finished syncs.", ["provider"]
)
SYNC_PAGES = Counter("calsync_sync_pages", "Provider pages read by finished syncs.", ["provider"])
SYNC_DURATION = Histogram(
    "calsync_sync_duration_seconds",
    "Wall time of finished syncs' work, by provider.",
    ["provider"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
SYNC_PROVIDER_ERRORS = Counter(
    "calsync_sync_provider_errors",
    "Failed syncs by provider and error kind (needs_reauth, rate_limited, transient, ...).",
    ["provider", "kind"],
)
