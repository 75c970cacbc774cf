"""Bearer-JWT authentication: `CurrentUser` is the dependency every non-public route takes.

Two modes, chosen by settings: a JWKS URL with its issuer and audience (production: RS256/ES256
tokens from Clerk, Auth0 or any OIDC provider) or a shared HS256 secret (local dev). With neither
configured every request is rejected; an unsigned token is never accepted.

A verified token is remembered for `VERIFIED_TOKEN_TTL_S` (never past its `exp`): a client polling
a run sends the same token several times a second, and decoding it each time was a good part of
the status route's cost. A key the provider revokes thus stops working within that much more.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio.to_thread
import httpx
import jwt
from cachetools import TLRUCache
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwt.types import Options

from api.errors import ApiError, ErrorCode
from core.settings import Settings, get_settings

logger = logging.getLogger(__name__)

JWKS_ALGORITHMS = ("RS256", "ES256")
# The subject becomes `user_id` in every table (String(255)) and a Prefect tag: longer ones, or
# ones with control characters, are no user of ours.
MAX_SUBJECT_LENGTH = 255
SECRET_ALGORITHMS = ("HS256",)
VERIFIED_TOKEN_TTL_S = 60.0
VERIFIED_TOKEN_CACHE_SIZE = 10_000
# Longer tokens are verified every time rather than kept (bounds the cache's memory).
MAX_CACHED_TOKEN_LENGTH = 4096

# Checked in order: InvalidSignatureError is a DecodeError, which we report as malformed.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.InvalidSignatureError, "invalid signature"),
    (jwt.InvalidAlgorithmError, "unsupported algorithm"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.exceptions.InvalidSubjectError, "invalid subject"),
    (jwt.DecodeError, "malformed token"),
)
_MISSING_CLAIM_REASONS = {
    "sub": "missing subject",
    "exp": "missing expiry",
    "aud": "wrong audience",
    "iss": "wrong issuer",
}


@dataclass(frozen=True, slots=True)
class User:
    """The caller, as the token's `sub` says; `claims` is the whole verified payload."""

    id: str
    # Claims can carry an email or name; keep them out of logs that repr a user.
    claims: dict[str, Any] = field(repr=False)


class TokenRejected(Exception):
    """The token is missing or not acceptable (HTTP 401); `reason` is short and safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SigningKeysUnavailable(Exception):
    """The JWKS endpoint could not give us keys (HTTP 503): not the token's fault."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("signing keys unavailable")
        self.reason = "signing keys unavailable"
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class _KeyCache:
    # One immutable snapshot, swapped whole, so lock-free readers never see keys and age mismatch.
    keys: dict[str, jwt.PyJWK]
    fetched_at: float


class TokenVerifier:
    """Verifies bearer tokens; in JWKS mode it owns the key cache, so keep one per process.

    Keys are fetched on first use and again when a token names an unknown `kid` (key rotation)
    or the cache is older than `max_key_age_s` (so a key the provider revoked stops working).
    Fetch attempts are at most one per `refresh_interval_s`, whatever their outcome: random
    `kid`s or an outage must not turn into a stream of requests to the provider.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        refresh_interval_s: float = 30.0,
        max_key_age_s: float = 3600.0,
        fetch_timeout_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jwks_url = settings.jwt_jwks_url
        self._secret = settings.jwt_secret.encode()
        self._algorithms: tuple[str, ...] = ()
        if self._jwks_url:
            self._algorithms = JWKS_ALGORITHMS
        elif self._secret:
            self._algorithms = SECRET_ALGORITHMS
        else:
            logger.warning(
                "neither CALSYNC_JWT_JWKS_URL nor CALSYNC_JWT_SECRET is set: "
                "every authenticated request will be rejected"
            )
        self._issuer = settings.jwt_issuer or None
        self._audience = settings.jwt_audience or None
        self._leeway_s = settings.jwt_leeway_s
        self._options: Options = {
            "require": ["exp", "sub"],
            # PyJWT rejects any token carrying `aud` when no audience is expected.
            "verify_aud": self._audience is not None,
        }
        self._refresh_interval_s = refresh_interval_s
        self._max_key_age_s = max_key_age_s
        self._fetch_timeout_s = fetch_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache = _KeyCache(keys={}, fetched_at=-math.inf)
        self._last_attempt = -math.inf
        self._last_attempt_failed = False
        # token -> (user, its `exp`, the key set it was checked against): kept for the TTL on
        # `clock`, used only before `exp` and while that key set is current.
        self._verified: TLRUCache[str, tuple[User, float, float]] = TLRUCache(
            VERIFIED_TOKEN_CACHE_SIZE,
            ttu=lambda _token, _value, now: now + VERIFIED_TOKEN_TTL_S,
            timer=clock,
        )

    async def verify(self, token: str | None) -> User:
        """The user a bearer token proves, or `TokenRejected` / `SigningKeysUnavailable`."""
        if token:
            hit = self._verified.get(token)
            if hit is not None and hit[1] > time.time() and hit[2] == self._cache.fetched_at:
                return hit[0]
        keys_at = self._cache.fetched_at
        user = await self._verify(token)
        if token is not None and len(token) <= MAX_CACHED_TOKEN_LENGTH:
            self._verified[token] = (user, float(user.claims["exp"]), keys_at)
        return user

    async def _verify(self, token: str | None) -> User:
        if not self._algorithms:
            raise TokenRejected("authentication is not configured")
        if not token:
            raise TokenRejected("missing bearer token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed token") from None
        # Before any key lookup: `none`, or HS256 signed with our public key, never gets that far.
        if header.get("alg") not in self._algorithms:
            raise TokenRejected("unsupported algorithm")
        key: jwt.PyJWK | bytes = self._secret
        if self._jwks_url:
            key = await self._jwks_key(header.get("kid"))
        return self._decode(token, key)

    async def _jwks_key(self, kid: object) -> jwt.PyJWK:
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("missing key id")
        cache = self._cache
        key = cache.keys.get(kid)
        if key is not None and self._clock() - cache.fetched_at < self._max_key_age_s:
            return key
        # The fetch blocks (and holds the lock), so keep it off the event loop.
        return await anyio.to_thread.run_sync(self._refreshed_key, kid)

    def _refreshed_key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = self._clock()
            cache = self._cache
            key = cache.keys.get(kid)
            if key is not None and now - cache.fetched_at < self._max_key_age_s:
                return key  # another request refreshed while this one waited for the lock
            if now - self._last_attempt >= self._refresh_interval_s:
                self._last_attempt = now
                try:
                    cache = self._cache = _KeyCache(keys=self._fetch(), fetched_at=now)
                    self._last_attempt_failed = False
                except SigningKeysUnavailable:
                    self._last_attempt_failed = True
                    if key is None:
                        raise
                    # Serving a stale key beats locking everyone out while the provider is down.
                    return key
            elif key is not None:
                return key
            elif self._last_attempt_failed:
                retry_after = self._last_attempt + self._refresh_interval_s - now
                raise SigningKeysUnavailable(retry_after_s=math.ceil(retry_after))
            key = cache.keys.get(kid)
            if key is None:
                raise TokenRejected("unknown signing key")
            return key

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        try:
            response = httpx.get(self._jwks_url, timeout=self._fetch_timeout_s)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("fetching JWKS from %s failed: %s", self._jwks_url, exc)
            raise SigningKeysUnavailable(retry_after_s=math.ceil(self._refresh_interval_s)) from exc
        keys = _signing_keys(document)
        if not keys:
            logger.warning("JWKS at %s has no usable %s keys", self._jwks_url, JWKS_ALGORITHMS)
            raise SigningKeysUnavailable(retry_after_s=math.ceil(self._refresh_interval_s))
        logger.info("fetched %d signing keys from %s", len(keys), self._jwks_url)
        return keys

    def _decode(self, token: str, key: jwt.PyJWK | bytes) -> User:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options=self._options,
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(_reason(exc)) from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise TokenRejected("missing subject")
        if len(subject) > MAX_SUBJECT_LENGTH or not subject.isprintable():
            raise TokenRejected("invalid subject")
        return User(id=subject, claims=claims)


def _signing_keys(document: object) -> dict[str, jwt.PyJWK]:
    entries = document.get("keys") if isinstance(document, dict) else None
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        try:
            # PyJWK binds the key to one algorithm (its `alg`, else its type and curve), so a
            # token cannot pick another algorithm for it.
            key = jwt.PyJWK(entry)
        except (jwt.PyJWTError, KeyError):
            continue  # a key type or curve we do not accept, or a broken entry
        if isinstance(kid, str) and kid and key.algorithm_name in JWKS_ALGORITHMS:
            keys[kid] = key
    return keys


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return _MISSING_CLAIM_REASONS.get(exc.claim, "invalid token")
    for error_type, reason in _REASONS:
        if isinstance(exc, error_type):
            return reason
    return "invalid token"


_bearer = HTTPBearer(auto_error=False, bearerFormat="JWT")


def _verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        # Stored on the app so the JWKS cache outlives the request.
        verifier = request.app.state.token_verifier = TokenVerifier(get_settings())
    return verifier


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The authenticated caller; 401 (or 503 when signing keys cannot be fetched) otherwise."""
    token = credentials.credentials if credentials is not None else None
    try:
        return await _verifier(request).verify(token)
    except TokenRejected as exc:
        # RFC 6750 3.1: no error code when the request carried no token at all.
        challenge = "Bearer"
        if token:
            challenge = f'Bearer error="invalid_token", error_description="{exc.reason}"'
        raise ApiError(
            401, exc.reason, ErrorCode.UNAUTHORIZED, headers={"WWW-Authenticate": challenge}
        ) from None
    except SigningKeysUnavailable as exc:
        raise ApiError(
            503,
            exc.reason,
            ErrorCode.SIGNING_KEYS_UNAVAILABLE,
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from None


CurrentUser = Annotated[User, Depends(current_user)]


def issue_dev_token(secret: str, sub: str, ttl_s: int = 86400, **claims: Any) -> str:
    """An HS256 token for local dev, demos and tests; `claims` are added (or override)."""
    now = int(time.time())
    payload = {"sub": sub, "iat": now, "exp": now + ttl_s, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")
