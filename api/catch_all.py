"""The net under every route: an exception nothing handled becomes a generic JSON 500.

It is logged as its type and where it was raised, never its text: an exception's message can
quote the request (a database error quotes its parameters, a parser its input), and with it a
body, a header or a token. It is not re-raised either, so the HTTP server has nothing to log.
"""

from __future__ import annotations

import logging
import traceback

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ErrorCode

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "Internal error. It has been logged."


class CatchAll:
    """ASGI middleware; innermost of ours, so its 500 still carries the CORS headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            logger.error(
                "unhandled %s on %s %s\n%s",
                " <- ".join(_types(exc)),
                scope["method"],
                scope["path"],
                "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
            )
            if started:
                return  # mid-response: all we can do is end it
            body = orjson.dumps({"detail": INTERNAL_ERROR, "code": ErrorCode.INTERNAL_ERROR.value})
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


def _types(exc: BaseException) -> list[str]:
    """The exception's type and its causes' types, innermost last."""
    names = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.append(f"{type(current).__module__}.{type(current).__qualname__}")
        current = current.__cause__ or current.__context__
    return names
