"""Fault injection and per-endpoint call counting, shared by every emulated API."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from emulator.errors import EmulatorError

if TYPE_CHECKING:
    from emulator.state import EmulatorState

Handler = Callable[[Request], Awaitable[Response]]

# Every endpoint name wrapped by `emulated`, so call counts list them even before their first call.
ENDPOINTS: list[str] = []


@dataclass(slots=True)
class FaultRule:
    endpoint: str
    status: int | None
    count: int = 1
    retry_after: float | None = None
    reason: str | None = None
    delay_s: float = 0.0
    # Delay the handler's response instead of the request: what it returns was true before
    # the wait (a slow link rather than a slow server).
    delay_response: bool = False
    after: int = 0
    # Cut the connection mid-response (headers promise more body than is sent).
    drop: bool = False
    # Only calls about this calendar fire it (None: any call to the endpoint).
    calendar_id: str | None = None
    id: str = ""
    skipped: int = 0
    fired: int = 0

    @property
    def exhausted(self) -> bool:
        return self.fired >= self.count

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "status": self.status,
            "count": self.count,
            "retry_after": self.retry_after,
            "reason": self.reason,
            "delay_s": self.delay_s,
            "delay_response": self.delay_response,
            "after": self.after,
            "drop": self.drop,
            "calendar_id": self.calendar_id,
            "fired": self.fired,
        }


class Faults:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.calls: Counter[str] = Counter()
        self._cleared = asyncio.Event()

    def add(self, rule: FaultRule) -> FaultRule:
        rule.id = rule.id or f"fault-{secrets.token_hex(4)}"
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule; requests still waiting out a delay go on at once."""
        self.rules.clear()
        self._cleared.set()
        self._cleared = asyncio.Event()

    async def delay(self, seconds: float) -> None:
        """Wait `seconds`, or until the faults are cleared (a test lets a stalled call go)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._cleared.wait(), seconds)

    def on_request(self, endpoint: str, calendar_id: str | None = None) -> FaultRule | None:
        """Count the call (also as `endpoint:calendar` when it names a calendar) and pick the
        first rule due to fire; every pending rule sees it."""
        self.calls[endpoint] += 1
        if calendar_id is not None:
            self.calls[f"{endpoint}:{calendar_id}"] += 1
        chosen: FaultRule | None = None
        for rule in self.rules:
            if rule.exhausted or rule.endpoint not in (endpoint, "*"):
                continue
            if rule.calendar_id is not None and rule.calendar_id != calendar_id:
                continue
            if rule.skipped < rule.after:
                rule.skipped += 1
            elif chosen is None:
                rule.fired += 1
                chosen = rule
        return chosen

    def counts(self) -> dict[str, int]:
        return {name: self.calls[name] for name in ENDPOINTS} | dict(self.calls)


class DroppedResponse(Response):
    """Promises a body it never finishes, so the server closes the connection mid-response."""

    def __init__(self) -> None:
        super().__init__(status_code=200, media_type="application/json")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        # The server refuses to finish a short body and closes the connection: exactly the drop.
        with contextlib.suppress(RuntimeError):
            await send({"type": "http.response.body", "body": b'{"items": [', "more_body": False})


def emulated(
    endpoint: str, fault_error: Callable[[FaultRule], EmulatorError]
) -> Callable[[Handler], Handler]:
    """Wrap an emulated API handler: count it under `endpoint`, apply fault rules first.

    `fault_error` renders an injected failure in that API's own error format.
    """
    if endpoint not in ENDPOINTS:
        ENDPOINTS.append(endpoint)

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: Request) -> Response:
            state: EmulatorState = request.app.state.emulator
            rule = state.faults.on_request(endpoint, request.path_params.get("calendarId"))
            if rule is not None and rule.delay_response:
                response = await handler(request)
                await state.faults.delay(rule.delay_s)
                return response
            if rule is not None:
                if rule.delay_s:
                    await state.faults.delay(rule.delay_s)
                if rule.drop:
                    return DroppedResponse()
                if rule.status is not None:
                    response = fault_error(rule).response()
                    if rule.retry_after is not None:
                        response.headers["Retry-After"] = f"{rule.retry_after:g}"
                    return response
            return await handler(request)

        return wrapper

    return decorate
