"""Error types whose instances know the exact response their API would send."""

from __future__ import annotations

from http import HTTPStatus

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

JSON_UTF8 = "application/json; charset=UTF-8"

# Google's canonical status names, as they appear in the "status" field of v3 error bodies.
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    410: "GONE",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_GOOGLE_DEFAULT_REASON = {
    400: "badRequest",
    401: "authError",
    403: "rateLimitExceeded",
    404: "notFound",
    409: "duplicate",
    410: "fullSyncRequired",
    429: "rateLimitExceeded",
}

_GOOGLE_MESSAGES = {
    "authError": "Invalid Credentials",
    "rateLimitExceeded": "Rate Limit Exceeded",
    "userRateLimitExceeded": "User Rate Limit Exceeded",
    "quotaExceeded": "Quota Exceeded",
    "backendError": "Backend Error",
    "notFound": "Not Found",
    "fullSyncRequired": "Sync token is no longer valid, a full sync is required.",
    "insufficientPermissions": "Insufficient Permission",
    "forbidden": "Forbidden",
}

AUTH_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class EmulatorError(Exception):
    """Raised anywhere in a handler; the app turns it into `response()`."""

    def response(self) -> Response:
        raise NotImplementedError


class GoogleApiError(EmulatorError):
    """A Google JSON API error ({"error": {"code", "message", "errors": [...], "status"}})."""

    def __init__(
        self,
        code: int,
        reason: str | None = None,
        message: str | None = None,
        *,
        top_message: str | None = None,
        location: str | None = None,
        location_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.reason = reason or default_google_reason(code)
        self.message = message or _GOOGLE_MESSAGES.get(self.reason) or HTTPStatus(code).phrase
        self.top_message = top_message or self.message
        self.location = location
        self.location_type = location_type
        self.headers = headers or {}
        super().__init__(f"{code} {self.reason}: {self.message}")

    def body(self) -> dict[str, object]:
        detail: dict[str, object] = {
            "domain": "global",
            "reason": self.reason,
            "message": self.message,
        }
        if self.location_type:
            detail["locationType"] = self.location_type
        if self.location:
            detail["location"] = self.location
        error: dict[str, object] = {
            "code": self.code,
            "message": self.top_message,
            "errors": [detail],
        }
        if self.code in _GOOGLE_STATUS:
            error["status"] = _GOOGLE_STATUS[self.code]
        return {"error": error}

    def response(self) -> Response:
        return Response(orjson.dumps(self.body()), self.code, self.headers, media_type=JSON_UTF8)


def default_google_reason(code: int) -> str:
    return _GOOGLE_DEFAULT_REASON.get(code, "backendError" if code >= 500 else "badRequest")


def auth_error() -> GoogleApiError:
    return GoogleApiError(
        401,
        "authError",
        "Invalid Credentials",
        top_message=AUTH_MESSAGE,
        location="Authorization",
        location_type="header",
        headers={
            "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
        },
    )


def full_sync_required() -> GoogleApiError:
    return GoogleApiError(410, "fullSyncRequired")


def not_found() -> GoogleApiError:
    return GoogleApiError(404, "notFound")


def invalid(message: str) -> GoogleApiError:
    return GoogleApiError(400, "invalid", message)


class OAuthError(EmulatorError):
    """An OAuth 2.0 endpoint error ({"error", "error_description"}), as Google sends it."""

    def __init__(self, code: int, error: str, description: str | None = None) -> None:
        self.code = code
        self.error = error
        self.description = description
        super().__init__(f"{code} {error}: {description}")

    def response(self) -> Response:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return Response(orjson.dumps(body), self.code, media_type=JSON_UTF8)


class ControlError(EmulatorError):
    """A misuse of the control API; tests see {"error": message}."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)

    def response(self) -> Response:
        return JSONResponse({"error": self.message}, self.code)


async def handle_emulator_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmulatorError)
    return exc.response()
