"""The API's error bodies: `{"detail": <safe text>, "code": <stable machine code>}`.

`detail` is for people and may be reworded; `code` is for programs and never changes meaning, so
a frontend tells two 409s apart by it. Routes raise `ApiError` with a specific code; any other
HTTPException (routing's 404 and 405, FastAPI's own) gets the generic code of its status.
The domain's refusals (`core.errors.RequestRefused`) are mapped to their status here, once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    ConflictingState,
    CredentialRejected,
    NotConfigured,
    NotOwned,
    RequestRefused,
)


class ErrorCode(StrEnum):
    # Generic, one per status: what any error of that status carries unless a route says more.
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_REQUEST = "invalid_request"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    PROVIDER_ERROR = "provider_error"
    UNAVAILABLE = "unavailable"
    # Specific.
    PREFECT_UNAVAILABLE = "prefect_unavailable"
    SIGNING_KEYS_UNAVAILABLE = "signing_keys_unavailable"
    PROVIDER_NOT_CONFIGURED = "provider_not_configured"
    CALENDAR_NOT_FOUND = "calendar_not_found"
    CONNECTION_NOT_FOUND = "connection_not_found"
    SYNC_RUN_NOT_FOUND = "sync_run_not_found"
    REAUTH_REQUIRED = "reauth_required"
    CALENDAR_DISABLED = "calendar_disabled"
    OAUTH_STATE_INVALID = "oauth_state_invalid"
    OAUTH_STATE_USED = "oauth_state_used"
    OAUTH_CODE_REJECTED = "oauth_code_rejected"
    GOOGLE_NO_REFRESH_TOKEN = "google_no_refresh_token"
    LINEAR_KEY_REJECTED = "linear_key_rejected"
    STREAM_TICKET_INVALID = "stream_ticket_invalid"


DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.BAD_REQUEST: "The request could not be read.",
    ErrorCode.UNAUTHORIZED: "The bearer token is missing, expired or invalid.",
    ErrorCode.FORBIDDEN: "Not allowed.",
    ErrorCode.NOT_FOUND: "No such route or resource.",
    ErrorCode.METHOD_NOT_ALLOWED: "The route does not take this method.",
    ErrorCode.CONFLICT: "The resource is not in a state that allows this.",
    ErrorCode.PAYLOAD_TOO_LARGE: "The body is too large.",
    ErrorCode.INVALID_REQUEST: "A parameter or the body failed validation.",
    ErrorCode.RATE_LIMITED: "Too many requests: wait `Retry-After` seconds.",
    ErrorCode.INTERNAL_ERROR: "A bug on our side; it has been logged.",
    ErrorCode.PROVIDER_ERROR: "Google or Linear failed to answer as expected.",
    ErrorCode.UNAVAILABLE: "Temporarily unavailable: retry later.",
    ErrorCode.PREFECT_UNAVAILABLE: "The orchestrator (Prefect) is unreachable: retry shortly.",
    ErrorCode.SIGNING_KEYS_UNAVAILABLE: "The identity provider's keys cannot be fetched now.",
    ErrorCode.PROVIDER_NOT_CONFIGURED: "This server has no OAuth client for that provider.",
    ErrorCode.CALENDAR_NOT_FOUND: "No such calendar for this user.",
    ErrorCode.CONNECTION_NOT_FOUND: "No such connection for this user.",
    ErrorCode.SYNC_RUN_NOT_FOUND: "No such sync run for this user.",
    ErrorCode.REAUTH_REQUIRED: "The provider revoked access: the user must reconnect.",
    ErrorCode.CALENDAR_DISABLED: "The calendar is disabled: enable it to sync.",
    ErrorCode.OAUTH_STATE_INVALID: "The connect request's `state` is invalid or expired.",
    ErrorCode.OAUTH_STATE_USED: "The connect request's `state` was already used: start again.",
    ErrorCode.OAUTH_CODE_REJECTED: "The provider did not accept the authorization code.",
    ErrorCode.GOOGLE_NO_REFRESH_TOKEN: "Google granted no offline access: connect again.",
    ErrorCode.LINEAR_KEY_REJECTED: "Linear did not accept the API key.",
    ErrorCode.STREAM_TICKET_INVALID: "The stream ticket is invalid, expired or already used.",
}

_BY_STATUS = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    422: ErrorCode.INVALID_REQUEST,
    429: ErrorCode.RATE_LIMITED,
    500: ErrorCode.INTERNAL_ERROR,
    502: ErrorCode.PROVIDER_ERROR,
    503: ErrorCode.UNAVAILABLE,
}


def code_for_status(status: int) -> ErrorCode:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ErrorCode.INTERNAL_ERROR if status >= 500 else ErrorCode.BAD_REQUEST


class ApiError(HTTPException):
    """An HTTPException with its stable code."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        code: ErrorCode,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, detail, headers=headers)
        self.code = code


def error_response(
    status: int, detail: Any, code: ErrorCode, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code.value}, status_code=status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Every HTTPException as `{"detail", "code"}`; bodiless statuses (204, 304) stay bodiless."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code < 400:
        return Response(status_code=exc.status_code, headers=exc.headers)
    code = getattr(exc, "code", None) or code_for_status(exc.status_code)
    return error_response(exc.status_code, exc.detail, code, exc.headers)


REFUSAL_STATUS: dict[type[RequestRefused], int] = {
    CredentialRejected: 400,
    NotOwned: 404,
    ConflictingState: 409,
    NotConfigured: 503,
}


async def refused(request: Request, exc: Exception) -> Response:
    """A domain refusal as `{"detail": its user message, "code": its code}`."""
    assert isinstance(exc, RequestRefused)
    status = next(code for kind, code in REFUSAL_STATUS.items() if isinstance(exc, kind))
    return error_response(status, exc.user_message, ErrorCode(exc.code.value))
