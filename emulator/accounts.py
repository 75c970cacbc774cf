"""Google accounts and the OAuth grants issued to them: refresh/access tokens, auth codes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from emulator.errors import OAuthError
from emulator.pkce import verifier_matches
from emulator.timeutil import now

DEFAULT_SCOPE = "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/calendar.readonly"
DEFAULT_ACCESS_TOKEN_LIFETIME_S = 3599
CODE_TTL_S = 600


@dataclass(slots=True)
class Account:
    email: str
    sub: str
    primary_calendar_id: str
    calendar_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RefreshGrant:
    token: str
    email: str
    scope: str
    revoked: bool = False


@dataclass(slots=True)
class AccessGrant:
    token: str
    email: str
    scope: str
    expires_at: float
    refresh_token: str | None
    revoked: bool = False

    @property
    def valid(self) -> bool:
        return not self.revoked and self.expires_at > now()


@dataclass(slots=True)
class AuthCode:
    code: str
    email: str
    client_id: str | None
    redirect_uri: str
    scope: str
    expires_at: float
    offline: bool
    code_challenge: str | None = None
    challenge_method: str = "plain"
    used: bool = False


class GoogleAuth:
    """Token bookkeeping; revoked grants are marked, not deleted: revoked differs from unknown."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.refresh_grants: dict[str, RefreshGrant] = {}
        self.access_grants: dict[str, AccessGrant] = {}
        self.codes: dict[str, AuthCode] = {}
        self.access_token_lifetime_s = DEFAULT_ACCESS_TOKEN_LIFETIME_S
        self.client_id: str | None = None
        self.client_secret: str | None = None
        self.current_user: str | None = None

    def settings(self) -> dict[str, object]:
        return {
            "access_token_lifetime_s": self.access_token_lifetime_s,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "current_user": self.current_user,
        }

    def client_matches(self, client_id: str, client_secret: str | None) -> bool:
        """Any non-empty client is accepted unless a specific one was configured through control."""
        if self.client_id is not None and client_id != self.client_id:
            return False
        return (
            client_secret is None
            or self.client_secret is None
            or client_secret == self.client_secret
        )

    def issue_refresh(
        self, email: str, scope: str = DEFAULT_SCOPE, token: str | None = None
    ) -> RefreshGrant:
        grant = RefreshGrant(token or f"1//{secrets.token_urlsafe(48)}", email, scope)
        self.refresh_grants[grant.token] = grant
        return grant

    def issue_access(
        self,
        email: str,
        scope: str = DEFAULT_SCOPE,
        refresh_token: str | None = None,
        token: str | None = None,
    ) -> AccessGrant:
        grant = AccessGrant(
            token or f"ya29.{secrets.token_urlsafe(64)}",
            email,
            scope,
            now() + self.access_token_lifetime_s,
            refresh_token,
        )
        self.access_grants[grant.token] = grant
        return grant

    def valid_access(self, token: str) -> AccessGrant | None:
        grant = self.access_grants.get(token)
        return grant if grant is not None and grant.valid else None

    def valid_refresh(self, token: str) -> RefreshGrant | None:
        grant = self.refresh_grants.get(token)
        return grant if grant is not None and not grant.revoked else None

    def revoke(self, token: str) -> bool:
        """Google revokes the whole grant: an access token takes its refresh token along."""
        access = self.valid_access(token)
        refresh_token = access.refresh_token if access is not None else token
        refresh = self.valid_refresh(refresh_token) if refresh_token else None
        if access is None and refresh is None:
            return False
        if access is not None:
            access.revoked = True
        if refresh is not None:
            refresh.revoked = True
            for grant in self.access_grants.values():
                if grant.refresh_token == refresh.token:
                    grant.revoked = True
        return True

    def revoke_account(self, email: str) -> None:
        for grant in self.refresh_grants.values():
            if grant.email == email:
                grant.revoked = True
        for access in self.access_grants.values():
            if access.email == email:
                access.revoked = True

    def expire_access_tokens(self) -> None:
        expired_at = now() - 1
        for grant in self.access_grants.values():
            grant.expires_at = min(grant.expires_at, expired_at)

    def issue_code(
        self,
        email: str,
        redirect_uri: str,
        *,
        client_id: str | None = None,
        scope: str = DEFAULT_SCOPE,
        offline: bool = True,
        code_challenge: str | None = None,
        challenge_method: str = "plain",
    ) -> AuthCode:
        code = AuthCode(
            f"4/{secrets.token_urlsafe(40)}",
            email,
            client_id,
            redirect_uri,
            scope,
            now() + CODE_TTL_S,
            offline,
            code_challenge,
            challenge_method,
        )
        self.codes[code.code] = code
        return code

    def redeem_code(
        self, code: str, redirect_uri: str, client_id: str, verifier: str | None
    ) -> AuthCode:
        """Codes are single-use, bound to redirect_uri, client and PKCE challenge, valid 10 min."""
        grant = self.codes.get(code)
        if grant is None or grant.used or grant.expires_at <= now():
            raise OAuthError(
                400, "invalid_grant", "Malformed auth code." if grant is None else "Bad Request"
            )
        grant.used = True
        if grant.redirect_uri != redirect_uri or (
            grant.client_id is not None and grant.client_id != client_id
        ):
            raise OAuthError(400, "invalid_grant", "Bad Request")
        if grant.code_challenge is not None and not verifier_matches(
            grant.code_challenge, grant.challenge_method, verifier
        ):
            raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
        return grant
