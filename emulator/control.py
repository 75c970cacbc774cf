"""Control API shared by every emulated part (/_control): reset, faults, call counts, health."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.errors import ControlError
from emulator.faults import ENDPOINTS, FaultRule
from emulator.state import get_state

OK = {"ok": True}


class ControlBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


M = TypeVar("M", bound=ControlBody)


async def parse_body(request: Request, model: type[M]) -> M:
    return validate(await json_body(request), model)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise ControlError(400, f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ControlError(400, "expected a JSON object")
    return body


def validate(body: dict[str, Any], model: type[M]) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ControlError(400, str(exc.errors(include_url=False))) from None


class FaultIn(ControlBody):
    endpoint: str
    status: int | None = Field(default=None, ge=100, le=599)
    count: int = Field(default=1, ge=1)
    retry_after: float | None = Field(default=None, ge=0)
    reason: str | None = None
    delay_s: float = Field(default=0.0, ge=0)
    delay_response: bool = False
    after: int = Field(default=0, ge=0)
    drop: bool = False
    # Only calls about this calendar (Google's calendarId) fire the rule.
    calendar_id: str | None = None


async def reset(request: Request) -> Response:
    get_state(request).reset()
    return JSONResponse(OK)


async def add_fault(request: Request) -> Response:
    rule = await parse_body(request, FaultIn)
    if rule.endpoint != "*" and rule.endpoint not in ENDPOINTS:
        raise ControlError(400, f"unknown endpoint {rule.endpoint!r}; known: {ENDPOINTS} or '*'")
    added = get_state(request).faults.add(FaultRule(**rule.model_dump()))
    return JSONResponse({"id": added.id})


async def list_faults(request: Request) -> Response:
    return JSONResponse([rule.public() for rule in get_state(request).faults.rules])


async def clear_faults(request: Request) -> Response:
    get_state(request).faults.clear()
    return JSONResponse(OK)


async def calls(request: Request) -> Response:
    return JSONResponse(get_state(request).faults.counts())


async def reset_calls(request: Request) -> Response:
    get_state(request).faults.calls.clear()
    return JSONResponse(OK)


async def healthz(request: Request) -> Response:
    return JSONResponse(OK)


def routes() -> list[BaseRoute]:
    return [
        Route("/_control/reset", reset, methods=["POST"]),
        Route("/_control/faults", add_fault, methods=["POST"]),
        Route("/_control/faults", list_faults, methods=["GET"]),
        Route("/_control/faults", clear_faults, methods=["DELETE"]),
        Route("/_control/calls", calls, methods=["GET"]),
        Route("/_control/calls/reset", reset_calls, methods=["POST"]),
        Route("/_control/healthz", healthz, methods=["GET"]),
    ]
