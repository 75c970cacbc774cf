"""Request bodies are capped before anything parses them: over the cap is a 413 with JSON.

Every body this API takes is a small JSON object (a key, an OAuth code, a toggle); Google's
push notifications have none. A declared `Content-Length` over the cap is refused unread; a
body without one (chunked) is read up to the cap and refused as soon as it passes it, so a
client can make the server hold at most `max_bytes` of it.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import JSON_ERROR
from api.errors import ErrorCode

MAX_BODY_BYTES = 64 * 1024

TOO_LARGE = {
    "413": {"description": "The request body is larger than 64 KiB.", "content": JSON_ERROR},
}


class BodyLimit:
    """ASGI middleware answering 413 to any HTTP request whose body passes `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _content_length(scope) > self.max_bytes:
            await _refuse(send, self._too_large())
            return
        # Read (at most the cap of) the body before the app does, then hand it over whole.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before sending its body: the app sees that as it is.
                await self.app(scope, _replay(message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(send, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> str:
        return f"The request body is larger than {self.max_bytes // 1024} KiB."


def _content_length(scope: Scope) -> int:
    """The declared length; 0 without one (the bytes read are counted anyway). The HTTP server
    has already refused a malformed header."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return 0


def _replay(first: Message, receive: Receive) -> Receive:
    """`receive` giving `first` (already taken from the client), then the client's own
    messages again (a disconnect, which streaming routes wait for)."""
    pending = [first]

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _refuse(send: Send, detail: str) -> None:
    body = orjson.dumps({"detail": detail, "code": ErrorCode.PAYLOAD_TOO_LARGE.value})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body stays unread: this connection cannot serve another request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def document_body_limit(app: FastAPI) -> None:
    """Every operation taking a body lists the 413 in the app's OpenAPI schema."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:  # FastAPI keeps the schema once built: add the 413s to it once
            for operations in schema["paths"].values():
                for operation in operations.values():
                    if "requestBody" in operation:
                        operation["responses"].update(TOO_LARGE)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
