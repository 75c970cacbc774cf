"""Google's OAuth 2.0 endpoints: token, authorization (auto-consent), userinfo and revoke."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.errors import JSON_UTF8, OAuthError
from emulator.faults import FaultRule, emulated
from emulator.pkce import METHODS
from emulator.state import GoogleState, get_state

_FAULT_ERRORS = {
    400: "invalid_grant",
    401: "invalid_client",
    403: "access_denied",
    429: "rate_limit_exceeded",
}

# Google answers with full scope URLs even when the short aliases were requested.
_SCOPE_ALIASES = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}


def oauth_fault(rule: FaultRule) -> OAuthError:
    assert rule.status is not None
    status = rule.status
    error = (
        rule.reason
        or _FAULT_ERRORS.get(status)
        or ("internal_failure" if status >= 500 else "invalid_request")
    )
    return OAuthError(status, error, "Injected fault")


def _json(body: dict[str, object]) -> Response:
    return Response(orjson.dumps(body), media_type=JSON_UTF8, headers={"Cache-Control": "no-store"})


async def _form(request: Request) -> dict[str, str]:
    # Parsed by hand: Starlette's form parser needs python-multipart even for urlencoded bodies.
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if not client_id and scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError(400, "invalid_request", "Malformed Authorization header.") from None
    if not client_id:
        raise OAuthError(400, "invalid_request", "Could not determine client ID from request.")
    if not secret:
        raise OAuthError(400, "invalid_request", "client_secret is missing.")
    return client_id, secret


def _normalize_scope(scope: str) -> str:
    return " ".join(_SCOPE_ALIASES.get(s, s) for s in scope.split())


@emulated("oauth.token", oauth_fault)
async def token(request: Request) -> Response:
    google = get_state(request).google
    auth = google.auth
    form = await _form(request)
    client_id, secret = _client_credentials(request, form)
    if not auth.client_matches(client_id, secret):
        raise OAuthError(401, "invalid_client", "Unauthorized")
    grant_type = form.get("grant_type")
    if grant_type == "refresh_token":
        refresh = auth.valid_refresh(form.get("refresh_token", ""))
        if refresh is None:
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        access = auth.issue_access(refresh.email, refresh.scope, refresh.token)
        return _json(
            {
                "access_token": access.token,
                "expires_in": auth.access_token_lifetime_s,
                "scope": refresh.scope,
                "token_type": "Bearer",
            }
        )
    if grant_type == "authorization_code":
        if not form.get("code"):
            raise OAuthError(400, "invalid_request", "Missing required parameter: code")
        if not form.get("redirect_uri"):
            raise OAuthError(400, "invalid_request", "Missing parameter: redirect_uri")
        code = auth.redeem_code(
            form["code"], form["redirect_uri"], client_id, form.get("code_verifier")
        )
        refresh_token = None
        if code.offline:
            refresh_token = auth.issue_refresh(code.email, code.scope).token
        access = auth.issue_access(code.email, code.scope, refresh_token)
        body: dict[str, object] = {
            "access_token": access.token,
            "expires_in": auth.access_token_lifetime_s,
        }
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        body |= {"scope": code.scope, "token_type": "Bearer"}
        return _json(body)
    raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")


def _consenting_user(google: GoogleState, login_hint: str | None) -> str | None:
    """Who clicks "Allow": the hinted account (created if new), the current user, or the first."""
    if login_hint:
        return google.ensure_account(login_hint).email
    accounts = google.auth.accounts
    if google.auth.current_user in accounts:
        return google.auth.current_user
    return next(iter(accounts), None)


@emulated("oauth.authorize", oauth_fault)
async def authorize(request: Request) -> Response:
    google = get_state(request).google
    params = request.query_params
    client_id = params.get("client_id")
    if not client_id:
        raise OAuthError(400, "invalid_request", "Missing required parameter: client_id")
    if not google.auth.client_matches(client_id, None):
        raise OAuthError(400, "invalid_client", "The OAuth client was not found.")
    redirect_uri = params.get("redirect_uri", "")
    target = urlsplit(redirect_uri)
    if target.scheme not in ("http", "https") or not target.netloc or target.fragment:
        raise OAuthError(400, "invalid_request", "Missing or invalid parameter: redirect_uri")
    if params.get("response_type") != "code":
        raise OAuthError(400, "unsupported_response_type", "Only response_type=code is emulated.")
    if not params.get("scope"):
        raise OAuthError(400, "invalid_request", "Missing required parameter: scope")
    method = params.get("code_challenge_method", "plain")
    if params.get("code_challenge") and method not in METHODS:
        raise OAuthError(400, "invalid_request", "Invalid code_challenge_method.")
    if params.get("access_type", "online") not in ("online", "offline"):
        raise OAuthError(400, "invalid_request", "Invalid access_type.")
    answer: dict[str, str] = {}
    email = _consenting_user(google, params.get("login_hint"))
    if email is None:
        answer["error"] = "access_denied"
    else:
        scope = _normalize_scope(params["scope"])
        code = google.auth.issue_code(
            email,
            redirect_uri,
            client_id=client_id,
            scope=scope,
            # As documented: a refresh token only comes with access_type=offline.
            offline=params.get("access_type") == "offline",
            code_challenge=params.get("code_challenge"),
            challenge_method=method,
        )
        answer |= {"code": code.code, "scope": scope}
    if params.get("state") is not None:
        answer["state"] = params["state"]
    separator = "&" if target.query else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(answer)}", status_code=302)


@emulated("oauth.userinfo", oauth_fault)
async def userinfo(request: Request) -> Response:
    google = get_state(request).google
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    token = (
        bearer.strip()
        if scheme.lower() == "bearer"
        else request.query_params.get("access_token", "")
    )
    grant = google.auth.valid_access(token)
    if grant is None:
        raise OAuthError(401, "invalid_request", "Invalid Credentials")
    account = google.auth.accounts[grant.email]
    return _json({"sub": account.sub, "email": account.email, "email_verified": True})


@emulated("oauth.revoke", oauth_fault)
async def revoke(request: Request) -> Response:
    google = get_state(request).google
    token = request.query_params.get("token") or (await _form(request)).get("token")
    if not token:
        raise OAuthError(400, "invalid_request", "Bad Request")
    if not google.auth.revoke(token):
        raise OAuthError(400, "invalid_token", "Token expired or revoked")
    return _json({})


def routes() -> list[BaseRoute]:
    return [
        Route("/token", token, methods=["POST"]),
        Route("/o/oauth2/v2/auth", authorize, methods=["GET"]),
        Route("/oauth2/v3/userinfo", userinfo, methods=["GET", "POST"]),
        Route("/revoke", revoke, methods=["POST", "GET"]),
    ]
