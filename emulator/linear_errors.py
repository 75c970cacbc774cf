"""Linear's errors as Linear answers them: HTTP 400 (or the status given) with one entry in a
GraphQL `errors` array whose `extensions.code` names the kind, and the rate-limit headers."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from emulator.errors import EmulatorError
from emulator.faults import FaultRule
from emulator.linear_state import RATE_LIMIT_REQUESTS, wall_ms


class GraphQLError(EmulatorError):
    """One entry of a GraphQL `errors` array, answered with HTTP 400 as Linear does."""

    def __init__(
        self,
        message: str,
        code: str,
        error_type: str,
        user_message: str | None = None,
        headers: dict[str, str] | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_type = error_type
        self.user_message = user_message or message
        self.headers = headers or {}
        self.status = status

    def response(self) -> Response:
        extensions = {
            "code": self.code,
            "type": self.error_type,
            "userPresentableMessage": self.user_message,
        }
        body = {"errors": [{"message": self.message, "extensions": extensions}]}
        return Response(
            orjson.dumps(body), self.status, self.headers, media_type="application/json"
        )


def invalid_query(message: str) -> GraphQLError:
    return GraphQLError(message, "GRAPHQL_VALIDATION_FAILED", "graphql error")


def invalid_input(message: str) -> GraphQLError:
    return GraphQLError(message, "INVALID_INPUT", "invalid input")


def authentication_error() -> GraphQLError:
    return GraphQLError(
        "Authentication required, not authenticated",
        "AUTHENTICATION_ERROR",
        "authentication error",
        "You need to authenticate to access this operation.",
    )


def rate_limit_headers(reset_ms: int, remaining: int) -> dict[str, str]:
    return {
        "X-RateLimit-Requests-Limit": str(RATE_LIMIT_REQUESTS),
        "X-RateLimit-Requests-Remaining": str(remaining),
        "X-RateLimit-Requests-Reset": str(reset_ms),
    }


def rate_limited(reset_ms: int) -> GraphQLError:
    return GraphQLError(
        "Rate limit exceeded",
        "RATELIMITED",
        "ratelimited",
        "You have exceeded the API rate limit. Please try again later.",
        headers=rate_limit_headers(reset_ms, 0),
    )


def graphql_fault(rule: FaultRule) -> EmulatorError:
    """An injected failure in Linear's shape: 429 or reason RATELIMITED is a rate limit, 5xx a
    server error, anything else a GraphQL error whose code is the rule's reason."""
    status = rule.status or 400
    if status == 429 or rule.reason == "RATELIMITED":
        return rate_limited(wall_ms() + int((rule.retry_after or 1.0) * 1000))
    if rule.reason == "AUTHENTICATION_ERROR":
        return authentication_error()
    if status >= 500:
        return GraphQLError(
            "Internal server error", "INTERNAL_SERVER_ERROR", "internal error", status=status
        )
    code = rule.reason or "INVALID_INPUT"
    return GraphQLError(f"Injected {code}", code, "invalid input", status=status)
