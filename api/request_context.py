"""Per-request context: the request ID, the access log line and the HTTP metrics.

A pure ASGI middleware (streams pass through untouched). The ID comes from `X-Request-ID` when
the caller sent a sane one, else it is made here; it is returned in `X-Request-ID` and set on
every log line written while the request runs. The access line has the method, the path
without its query string (a stream ticket may be there), the status and the duration: never a
header or a body.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import HTTP_LATENCY, HTTP_REQUESTS, SSE_STREAMS_OPEN
from core.log_config import request_id

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("api.access")


def _incoming_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _VALID_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


def _route(scope: Scope) -> str:
    """The route template (`/sync-runs/{flow_run_id}`): bounded label values, no user IDs."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope)
        # Not reset afterwards: each request runs in its own task (its own context copy), and
        # the outer error handler that logs an unhandled exception runs after this returns.
        request_id.set(rid)
        started = time.perf_counter()
        status = 500
        stream = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, stream
            if message["type"] == "http.response.start":
                status = message["status"]
                # An event stream is open from its headers until the request ends.
                stream = any(
                    name == b"content-type" and value.startswith(b"text/event-stream")
                    for name, value in message.get("headers", [])
                )
                if stream:
                    SSE_STREAMS_OPEN.labels(_route(scope)).inc()
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", rid.encode()),
                ]
                HTTP_LATENCY.labels(_route(scope), scope["method"]).observe(
                    time.perf_counter() - started
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if stream:
                SSE_STREAMS_OPEN.labels(_route(scope)).dec()
            HTTP_REQUESTS.labels(_route(scope), scope["method"], str(status)).inc()
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                extra={
                    "fields": {
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": _route(scope),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    }
                },
            )
