"""Linear's OAuth endpoints: the consent screen (`/linear/oauth/authorize`), which consents at
once and redirects back with a code bound to the PKCE challenge if one was sent; the token
endpoint (code and refresh grants, rotating refresh tokens); and token revocation.

Who clicks "Authorize": the user whose email is `login_hint` (an emulator convenience Linear
ignores), else the most recently created user, as if they were signed in to Linear.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.errors import OAuthError
from emulator.faults import FaultRule, emulated
from emulator.linear_state import Grant, LinearState, User
from emulator.pkce import METHODS
from emulator.state import get_linear

AUTHORIZE_ENDPOINT = "linear.oauth.authorize"
TOKEN_ENDPOINT = "linear.oauth.token"
REVOKE_ENDPOINT = "linear.oauth.revoke"


def oauth_fault(rule: FaultRule) -> OAuthError:
    """An injected failure as Linear's OAuth endpoints answer it."""
    status = rule.status or 400
    return OAuthError(
        status, rule.reason or ("server_error" if status >= 500 else "invalid_request")
    )


def _consenting_user(linear: LinearState, login_hint: str | None) -> User | None:
    users = list(linear.users.values())
    if login_hint:
        return next((user for user in users if user.email == login_hint), None)
    return users[-1] if users else None


@emulated(AUTHORIZE_ENDPOINT, oauth_fault)
async def authorize(request: Request) -> Response:
    linear = get_linear(request)
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


async def _form(request: Request) -> dict[str, str]:
    # Parsed by hand: Starlette's form parser needs python-multipart even for urlencoded bodies.
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))


def _token_response(linear: LinearState, grant: Grant) -> Response:
    return JSONResponse(
        {
            "access_token": grant.access_token,
            "token_type": "Bearer",
            "expires_in": max(0, (grant.expires_ms - linear.now_ms()) // 1000),
            "scope": "read",
            "refresh_token": grant.refresh_token,
        }
    )


@emulated(TOKEN_ENDPOINT, oauth_fault)
async def token(request: Request) -> Response:
    """Linear's token endpoint. Refresh tokens rotate: each refresh returns a new refresh token
    and the one presented stops working."""
    linear = get_linear(request)
    form = await _form(request)
    if linear.oauth_client is not None and (
        (form.get("client_id"), form.get("client_secret")) != linear.oauth_client
    ):
        raise OAuthError(401, "invalid_client", "Client authentication failed.")
    grant_type = form.get("grant_type")
    if grant_type == "refresh_token":
        grant = linear.rotate(form.get("refresh_token", ""))
    elif grant_type == "authorization_code":
        grant = linear.redeem_code(form.get("code", ""), form.get("code_verifier"))
    else:
        raise OAuthError(400, "unsupported_grant_type", "Unsupported grant type.")
    if grant is None:
        raise OAuthError(400, "invalid_grant", "The grant is invalid, expired or revoked.")
    return _token_response(linear, grant)


@emulated(REVOKE_ENDPOINT, oauth_fault)
async def revoke_token(request: Request) -> Response:
    get_linear(request).revoke((await _form(request)).get("token", ""))
    return Response(status_code=200)


def routes() -> list[BaseRoute]:
    return [
        Route("/linear/oauth/authorize", authorize, methods=["GET"]),
        Route("/linear/oauth/token", token, methods=["POST"]),
        Route("/linear/oauth/revoke", revoke_token, methods=["POST"]),
    ]
