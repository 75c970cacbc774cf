"""Linear's OAuth consent screen (`/linear/oauth/authorize`): consents at once and redirects back
with a code for the token endpoint in `linear_api.py`, bound to the PKCE challenge if one was sent.

Who clicks "Authorize": the user whose email is `login_hint` (an emulator convenience Linear
ignores), else the most recently created user, as if they were signed in to Linear.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.errors import OAuthError
from emulator.faults import emulated
from emulator.linear_api import oauth_fault
from emulator.linear_state import LinearState, User
from emulator.pkce import METHODS
from emulator.state import get_state

AUTHORIZE_ENDPOINT = "linear.oauth.authorize"


def _consenting_user(linear: LinearState, login_hint: str | None) -> User | None:
    users = list(linear.users.values())
    if login_hint:
        return next((user for user in users if user.email == login_hint), None)
    return users[-1] if users else None


@emulated(AUTHORIZE_ENDPOINT, oauth_fault)
async def authorize(request: Request) -> Response:
    linear = get_state(request).linear
    params = request.query_params
    client_id = params.get("client_id")
    if not client_id:
        raise OAuthError(400, "invalid_request", "Missing client_id.")
    if linear.oauth_client is not None and client_id != linear.oauth_client[0]:
        raise OAuthError(400, "invalid_client", "Unknown OAuth application.")
    redirect_uri = params.get("redirect_uri", "")
    target = urlsplit(redirect_uri)
    if target.scheme not in ("http", "https") or not target.netloc or target.fragment:
        raise OAuthError(400, "invalid_request", "Missing or invalid redirect_uri.")
    if params.get("response_type") != "code":
        raise OAuthError(400, "unsupported_response_type", "response_type must be code.")
    if not params.get("scope"):
        raise OAuthError(400, "invalid_scope", "Missing scope.")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method", "plain")
    if challenge and method not in METHODS:
        raise OAuthError(400, "invalid_request", "Invalid code_challenge_method.")
    with linear.lock:
        user = _consenting_user(linear, params.get("login_hint"))
        answer = (
            {"code": linear.create_auth_code(user.id, challenge or None, method)}
            if user is not None
            else {"error": "access_denied"}
        )
    if params.get("state") is not None:
        answer["state"] = params["state"]
    separator = "&" if target.query else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(answer)}", status_code=302)


def routes() -> list[BaseRoute]:
    return [Route("/linear/oauth/authorize", authorize, methods=["GET"])]
