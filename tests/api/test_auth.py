"""Bearer-JWT authentication against a tiny app: HS256 dev secrets and a real JWKS over HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from api.auth import CurrentUser, TokenVerifier, issue_dev_token
from api.main import create_app
from core.settings import Settings, get_settings
from tests.support.processes import free_port

SECRET = "calsync-test-secret-that-is-long-enough-for-hs256"
ISSUER = "https://issuer.test/"
AUDIENCE = "calsync-api"


class FakeClock:
    """Monotonic time the test moves by hand, so rate limits need no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class JwksServer:
    """A real HTTP server publishing `keys` as a JWKS and counting how often it is fetched."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.failing = False
        self.delay_s = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                time.sleep(server.delay_s)
                status = 500 if server.failing else 200
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class SigningKey:
    """A private key plus the JWK the provider would publish for it."""

    def __init__(self, private_key: Any, algorithm: str) -> None:
        self.private_key = private_key
        self.algorithm = algorithm
        self.kid = uuid.uuid4().hex
        codec = RSAAlgorithm if algorithm == "RS256" else ECAlgorithm
        self.jwk: dict[str, Any] = {
            **codec.to_jwk(private_key.public_key(), as_dict=True),
            "kid": self.kid,
            "use": "sig",
            "alg": algorithm,
        }

    def token(self, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"sub": "user-1", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
        # A claim given as None is left out of the token.
        merged = {name: value for name, value in {**payload, **claims}.items() if value is not None}
        return jwt.encode(
            merged,
            self.private_key,
            algorithm=self.algorithm,
            headers={"kid": kid or self.kid},
        )


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256")


@pytest.fixture
def jwks(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer()
    server.keys = [rsa_key.jwk, ec_key.jwk]
    yield server
    server.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def settings(**overrides: Any) -> Settings:
    # Every auth field explicit, so a developer's environment cannot change what a test proves.
    values: dict[str, Any] = {
        "jwt_secret": "",
        "jwt_jwks_url": "",
        "jwt_issuer": "",
        "jwt_audience": "",
        "jwt_leeway_s": 30,
    }
    return Settings(**{**values, **overrides})


def jwks_settings(server: JwksServer, **overrides: Any) -> Settings:
    return settings(jwt_jwks_url=server.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, **overrides)


def make_app(verifier: TokenVerifier | None) -> FastAPI:
    app = FastAPI()
    if verifier is not None:
        app.state.token_verifier = verifier

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"id": user.id}

    return app


def client_for(verifier: TokenVerifier | None) -> TestClient:
    return TestClient(make_app(verifier))


def get_me(client: TestClient, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get("/me", headers=headers)


def assert_rejected(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": reason}
    assert response.headers["www-authenticate"].startswith("Bearer")


def concurrently(app: FastAPI, tokens: list[str]) -> list[httpx.Response]:
    async def send_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await asyncio.gather(
                *(client.get("/me", headers={"Authorization": f"Bearer {t}"}) for t in tokens)
            )

    return asyncio.run(send_all())


def b64url(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def future_claims(sub: str = "user-1") -> dict[str, Any]:
    return {"sub": sub, "exp": int(time.time()) + 600}


# HS256 (local dev)


def test_valid_dev_token_reaches_the_route_as_its_subject() -> None:
    client = client_for(TokenVerifier(settings(jwt_secret=SECRET)))
    response = get_me(client, issue_dev_token(SECRET, "user-42"))
    assert response.status_code == 200
    assert response.json() == {"id": "user-42"}


def test_missing_authorization_header_is_401_without_error_code() -> None:
    response = get_me(client_for(TokenVerifier(settings(jwt_secret=SECRET))), None)
    assert_rejected(response, "missing bearer token")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "Bearer "])
def test_non_bearer_or_empty_authorization_is_401(header: str) -> None:
    client = client_for(TokenVerifier(settings(jwt_secret=SECRET)))
    assert_rejected(client.get("/me", headers={"Authorization": header}), "missing bearer token")


def test_expired_token_is_401_token_expired() -> None:
    client = client_for(TokenVerifier(settings(jwt_secret=SECRET)))
    response = get_me(client, issue_dev_token(SECRET, "user-1", ttl_s=-120))
    assert_rejected(response, "token expired")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert 'error_description="token expired"' in response.headers["www-authenticate"]


def test_token_expired_within_leeway_is_still_accepted() -> None:
    client = client_for(TokenVerifier(settings(jwt_secret=SECRET, jwt_leeway_s=30)))
    assert get_me(client, issue_dev_token(SECRET, "user-1", ttl_s=-10)).status_code == 200


def test_token_signed_with_another_secret_is_401_invalid_signature() -> None:
    client = client_for(TokenVerifier(settings(jwt_secret=SECRET)))
    forged = issue_dev_token("another-secret-that-is-also-long-enough-x", "user-1")
    assert_rejected(get_me(client, forged), "invalid signature")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_alg_none_token_is_401(alg: str) -> None:
    client = client_for(TokenVerifier(settings(jwt_secret=SECRET)))
    unsigned = f"{b64url({'alg': alg, 'typ': 'JWT'})}.{b64url(future_claims())}."
    assert_rejected(get_me(client, unsigned), "unsupported algorithm")


# Times are offsets from when the test runs (not from collection, which may be long before).
@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": 600}, "missing subject"),
        ({"sub": "", "exp": 600}, "missing subject"),
        ({"sub": 42, "exp": 600}, "invalid subject"),
        ({"sub": "user-1"}, "missing expiry"),
        ({"sub": "user-1", "exp": "tomorrow"}, "malformed token"),
        ({"sub": "user-1", "exp": 600, "nbf": 600}, None),
    ],
)
def test_token_without_usable_subject_or_expiry_is_401(
    claims: dict[str, Any], reason: str | None
) -> None:
    now = int(time.time())
    claims = {
        key: now + value if key in {"exp", "nbf"} and isinstance(value, int) else value
        for key, value in claims.items()
    }
    client = client_for(TokenVerifier(settings(jwt_secret=SECRET)))
    response = get_me(client, jwt.encode(claims, SECRET, algorithm="HS256"))
    assert_rejected(response, reason or "token not yet valid")


@pytest.mark.parametrize(
    "sub",
    ["u" * 256, "user\n1", "user\x00", "tab\there", "bell\x07", "line\u2028sep"],
    ids=["256-chars", "newline", "nul", "tab", "control", "unicode-separator"],
)
def test_subject_too_long_or_with_control_characters_is_401_invalid_subject(sub: str) -> None:
    client = client_for(TokenVerifier(settings(jwt_secret=SECRET)))
    assert_rejected(get_me(client, issue_dev_token(SECRET, sub)), "invalid subject")


def test_subject_of_255_printable_characters_is_accepted() -> None:
    client = client_for(TokenVerifier(settings(jwt_secret=SECRET)))
    sub = "auth0|" + "é" * 249
    assert get_me(client, issue_dev_token(SECRET, sub)).json() == {"id": sub}


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.@@@.sig"])
def test_garbage_token_is_401_malformed(token: str) -> None:
    client = client_for(TokenVerifier(settings(jwt_secret=SECRET)))
    assert_rejected(get_me(client, token), "malformed token")


def test_without_secret_or_jwks_every_request_is_401_not_configured() -> None:
    client = client_for(TokenVerifier(settings()))
    assert_rejected(get_me(client, None), "authentication is not configured")
    unsigned = f"{b64url({'alg': 'none'})}.{b64url(future_claims())}."
    assert_rejected(get_me(client, unsigned), "authentication is not configured")
    signed = jwt.encode(future_claims(), "x" * 32, algorithm="HS256")
    assert_rejected(get_me(client, signed), "authentication is not configured")


def test_issuer_and_audience_are_checked_in_secret_mode_when_configured() -> None:
    client = client_for(
        TokenVerifier(settings(jwt_secret=SECRET, jwt_issuer=ISSUER, jwt_audience=AUDIENCE))
    )
    good = issue_dev_token(SECRET, "user-1", iss=ISSUER, aud=AUDIENCE)
    assert get_me(client, good).status_code == 200
    other_audience = issue_dev_token(SECRET, "user-1", iss=ISSUER, aud="someone-else")
    assert_rejected(get_me(client, other_audience), "wrong audience")
    assert_rejected(get_me(client, issue_dev_token(SECRET, "user-1", iss=ISSUER)), "wrong audience")


def test_verifier_is_built_from_settings_when_the_app_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALSYNC_JWT_SECRET", SECRET)
    monkeypatch.setenv("CALSYNC_JWT_JWKS_URL", "")
    get_settings.cache_clear()
    try:
        app = make_app(None)
        client = TestClient(app)
        assert get_me(client, issue_dev_token(SECRET, "user-7")).json() == {"id": "user-7"}
        assert isinstance(app.state.token_verifier, TokenVerifier)
    finally:
        get_settings.cache_clear()


# JWKS (production): RS256 / ES256


@pytest.mark.parametrize(
    ("missing", "variable"),
    [("jwt_audience", "CALSYNC_JWT_AUDIENCE"), ("jwt_issuer", "CALSYNC_JWT_ISSUER")],
)
def test_jwks_mode_without_audience_or_issuer_refuses_to_start(
    missing: str, variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without an expected audience, a token the same provider tenant signed for another app
    would be accepted: the API does not start, and says which setting is missing in one line."""
    monkeypatch.setenv("CALSYNC_JWT_JWKS_URL", "https://tenant.example/.well-known/jwks.json")
    monkeypatch.setenv("CALSYNC_JWT_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("CALSYNC_JWT_ISSUER", ISSUER)
    monkeypatch.setenv(f"CALSYNC_{missing.upper()}", "")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            create_app()
    finally:
        get_settings.cache_clear()
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"calsync api: Invalid setting {variable}: required when CALSYNC_JWT_JWKS_URL is set"
    ]


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
def test_provider_token_verified_against_jwks(
    key_name: str, jwks: JwksServer, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    client = client_for(TokenVerifier(jwks_settings(jwks)))
    response = get_me(client, key.token(sub="user_2abc"))
    assert response.status_code == 200, response.text
    assert response.json() == {"id": "user_2abc"}


def test_keys_are_cached_across_requests(jwks: JwksServer, rsa_key: SigningKey) -> None:
    client = client_for(TokenVerifier(jwks_settings(jwks)))
    for _ in range(5):
        assert get_me(client, rsa_key.token()).status_code == 200
    assert jwks.fetches == 1


def test_hs256_token_is_rejected_in_jwks_mode_even_with_a_secret_set(
    jwks: JwksServer,
) -> None:
    client = client_for(TokenVerifier(jwks_settings(jwks, jwt_secret=SECRET)))
    claims = {**future_claims(), "iss": ISSUER, "aud": AUDIENCE}
    assert_rejected(
        get_me(client, jwt.encode(claims, SECRET, algorithm="HS256")), "unsupported algorithm"
    )


def test_hs256_token_keyed_with_the_public_key_is_rejected(
    jwks: JwksServer, rsa_key: SigningKey
) -> None:
    # The classic confusion attack: HMAC over the token with the published key as the secret.
    public_pem = rsa_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url({"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid})
    payload = b64url({**future_claims(), "iss": ISSUER, "aud": AUDIENCE})
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    client = client_for(TokenVerifier(jwks_settings(jwks)))
    assert_rejected(
        get_me(client, f"{header}.{payload}.{b64url(signature)}"), "unsupported algorithm"
    )
    assert jwks.fetches == 0


def test_token_claiming_another_algorithm_than_its_key_is_rejected(
    jwks: JwksServer, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    client = client_for(TokenVerifier(jwks_settings(jwks)))
    ec_signed_with_rsa_kid = ec_key.token(kid=rsa_key.kid)
    assert_rejected(get_me(client, ec_signed_with_rsa_kid), "unsupported algorithm")


def test_token_signed_by_a_key_outside_the_jwks_is_401(
    jwks: JwksServer, rsa_key: SigningKey
) -> None:
    impostor = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
    client = client_for(TokenVerifier(jwks_settings(jwks)))
    assert_rejected(get_me(client, impostor.token(kid=rsa_key.kid)), "invalid signature")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "another-api"}, "wrong audience"),
        ({"aud": None}, "wrong audience"),
        ({"iss": "https://evil.test/"}, "wrong issuer"),
        ({"iss": None}, "wrong issuer"),
        ({"exp": int(time.time()) - 3600}, "token expired"),
    ],
)
def test_provider_token_with_wrong_claims_is_401(
    claims: dict[str, Any], reason: str, jwks: JwksServer, rsa_key: SigningKey
) -> None:
    client = client_for(TokenVerifier(jwks_settings(jwks)))
    assert_rejected(get_me(client, rsa_key.token(**claims)), reason)


def test_token_without_kid_is_401_in_jwks_mode(jwks: JwksServer, rsa_key: SigningKey) -> None:
    claims = {**future_claims(), "iss": ISSUER, "aud": AUDIENCE}
    token = jwt.encode(claims, rsa_key.private_key, algorithm="RS256")
    client = client_for(TokenVerifier(jwks_settings(jwks)))
    assert_rejected(get_me(client, token), "missing key id")


def test_unknown_kid_refetches_jwks_once_then_accepts_the_rotated_key(
    jwks: JwksServer, rsa_key: SigningKey, clock: FakeClock
) -> None:
    client = client_for(TokenVerifier(jwks_settings(jwks), clock=clock))
    assert get_me(client, rsa_key.token()).status_code == 200
    assert jwks.fetches == 1

    rotated = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
    jwks.keys = [rotated.jwk]
    clock.now += 31
    assert get_me(client, rotated.token()).status_code == 200
    assert jwks.fetches == 2
    assert get_me(client, rotated.token()).status_code == 200
    assert jwks.fetches == 2
    # The rotated-out key is gone from the refreshed cache.
    assert_rejected(get_me(client, rsa_key.token()), "unknown signing key")


def test_flood_of_unknown_kids_fetches_at_most_once_per_interval(
    jwks: JwksServer, rsa_key: SigningKey, clock: FakeClock
) -> None:
    app = make_app(TokenVerifier(jwks_settings(jwks), refresh_interval_s=30, clock=clock))

    def flood() -> list[httpx.Response]:
        return concurrently(app, [rsa_key.token(kid=uuid.uuid4().hex) for _ in range(50)])

    for response in flood():
        assert_rejected(response, "unknown signing key")
    assert jwks.fetches == 1

    clock.now += 10
    flood()
    assert jwks.fetches == 1

    clock.now += 21
    flood()
    assert jwks.fetches == 2


def test_concurrent_first_requests_share_one_fetch_and_all_succeed(
    jwks: JwksServer, rsa_key: SigningKey
) -> None:
    jwks.delay_s = 0.3
    app = make_app(TokenVerifier(jwks_settings(jwks)))
    responses = concurrently(app, [rsa_key.token() for _ in range(20)])
    assert [r.status_code for r in responses] == [200] * 20
    assert jwks.fetches == 1


def test_unreachable_jwks_is_503_with_json_detail(rsa_key: SigningKey, clock: FakeClock) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    unreachable = settings(jwt_jwks_url=nobody, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    verifier = TokenVerifier(unreachable, fetch_timeout_s=1, clock=clock)
    client = client_for(verifier)
    response = get_me(client, rsa_key.token())
    assert response.status_code == 503
    assert response.json() == {"detail": "signing keys unavailable"}
    assert response.headers["retry-after"] == "30"
    # Within the interval we answer at once instead of trying again.
    clock.now += 20
    response = get_me(client, rsa_key.token())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "10"


def test_stale_keys_keep_working_while_the_jwks_endpoint_fails(
    jwks: JwksServer, rsa_key: SigningKey, clock: FakeClock
) -> None:
    verifier = TokenVerifier(jwks_settings(jwks), max_key_age_s=3600, clock=clock)
    client = client_for(verifier)
    assert get_me(client, rsa_key.token()).status_code == 200
    jwks.failing = True
    clock.now += 3601
    assert get_me(client, rsa_key.token()).status_code == 200
    assert jwks.fetches == 2
    # A kid we have never seen cannot be checked while the provider is down: not the token's fault.
    response = get_me(client, rsa_key.token(kid="never-seen"))
    assert response.status_code == 503


def test_revoked_key_stops_working_after_max_key_age(
    jwks: JwksServer, rsa_key: SigningKey, ec_key: SigningKey, clock: FakeClock
) -> None:
    client = client_for(TokenVerifier(jwks_settings(jwks), max_key_age_s=3600, clock=clock))
    assert get_me(client, rsa_key.token()).status_code == 200
    jwks.keys = [ec_key.jwk]
    clock.now += 3601
    assert_rejected(get_me(client, rsa_key.token()), "unknown signing key")
    assert get_me(client, ec_key.token()).status_code == 200


def test_jwks_entries_we_cannot_use_are_ignored(jwks: JwksServer, ec_key: SigningKey) -> None:
    p384 = SigningKey(ec.generate_private_key(ec.SECP384R1()), "ES256")
    p384.jwk.pop("alg")
    jwks.keys = [
        {"kty": "oct", "kid": "shared", "k": b64url(b"s" * 32)},
        {**ec_key.jwk, "kid": "encryption", "use": "enc"},
        {"kty": "RSA", "kid": "broken"},
        p384.jwk,
        ec_key.jwk,
    ]
    client = client_for(TokenVerifier(jwks_settings(jwks)))
    assert get_me(client, ec_key.token()).status_code == 200
    for kid in ("shared", "encryption", "broken", p384.kid):
        assert_rejected(get_me(client, ec_key.token(kid=kid)), "unknown signing key")
