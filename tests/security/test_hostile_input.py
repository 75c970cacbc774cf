"""Hostile requests to the real API over HTTP: oversized bodies are refused before parsing, a
422 never echoes more than a prefix of the input, and an unexpected error logs no request text."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient

from api.body_limit import MAX_BODY_BYTES
from api.catch_all import INTERNAL_ERROR
from api.main import MAX_ECHOED_INPUT, create_app
from core.push_channels import GOOGLE_WEBHOOK_PATH
from tests.security.owners import Owner
from tests.support.auth import bearer

pytestmark = pytest.mark.integration

TOO_LARGE = {"detail": "The request body is larger than 64 KiB.", "code": "payload_too_large"}


def test_a_30_mb_json_body_is_413_before_it_is_read(owner: Owner) -> None:
    huge = json.dumps({"api_key": "k" * (30 * 1024 * 1024)}).encode()
    response = owner.api.http.post(
        "/connections/linear", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json() == TOO_LARGE


def test_a_chunked_body_without_length_is_cut_off_at_the_limit(owner: Owner) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"api_key": "'
        for _ in range(64):
            yield b"k" * 16384  # 1 MiB in all, without a Content-Length
        yield b'"}'

    response = owner.api.http.post(
        "/connections/linear", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413 and response.json() == TOO_LARGE


def test_a_body_just_under_the_limit_is_parsed_and_its_echo_cut_short(owner: Owner) -> None:
    key = "k" * (MAX_BODY_BYTES - 100)  # valid JSON under the cap, far over the key's 512
    response = owner.api.http.post("/connections/linear", json={"api_key": key})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "api_key"], "string_too_long")
    assert error["input"] == "k" * MAX_ECHOED_INPUT + "…"
    assert len(response.content) < 1000


def test_a_whole_body_of_the_wrong_type_is_echoed_as_a_short_json_prefix(owner: Owner) -> None:
    body = json.dumps([f"lin_api_{n:05d}" for n in range(3000)])
    assert MAX_BODY_BYTES / 2 < len(body) < MAX_BODY_BYTES
    response = owner.api.http.patch(
        "/me/settings", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    echoed = response.json()["detail"][0]["input"]
    assert isinstance(echoed, str) and len(echoed) <= MAX_ECHOED_INPUT + 1
    assert len(response.content) < 1000


def test_a_body_with_a_huge_integer_and_a_lone_surrogate_is_a_422(owner: Owner) -> None:
    """Found by schemathesis: echoing such a body once failed to encode (a 500)."""
    body = '[123456789012345678901234567890123456789, "\\udc00", {"\\ud800": 1}]'
    response = owner.api.http.patch(
        "/me/settings", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["input"].startswith("[123456789012345678901234567890")


def test_an_oversized_body_to_the_webhook_is_413_and_an_empty_one_is_not(api_url: str) -> None:
    with httpx.Client(base_url=api_url) as client:
        path = GOOGLE_WEBHOOK_PATH
        assert client.post(path, content=b"x" * (MAX_BODY_BYTES + 1)).status_code == 413
        # Google's notifications carry no body: they reach the route (an unknown channel: 404).
        assert client.post(path, headers={"x-goog-channel-id": "nobody"}).status_code == 404


def test_the_413_is_documented_on_every_route_taking_a_body() -> None:
    schema = create_app().openapi()
    with_body = [
        (path, method)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
        if "requestBody" in operation
    ]
    assert len(with_body) >= 5, with_body
    for path, method in with_body:
        assert "413" in schema["paths"][path][method]["responses"], (method, path)


def test_an_unexpected_error_is_a_generic_500_that_logs_no_body_or_header(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app()
    extra = APIRouter()

    @extra.post("/boom")
    async def boom(request: Request) -> None:
        body = (await request.body()).decode()
        raise RuntimeError(f"cannot handle {body} from {request.headers['authorization']}")

    app.include_router(extra)
    caplog.set_level(logging.DEBUG)
    headers = bearer("someone")
    # raise_server_exceptions: the error is not handed on to the server (which would log it).
    client = TestClient(app, raise_server_exceptions=True)
    response = client.post("/boom", content=b"private-body-text", headers=headers)

    assert response.status_code == 500 and response.json() == {
        "detail": INTERNAL_ERROR,
        "code": "internal_error",
    }
    assert "builtins.RuntimeError on POST /boom" in caplog.text
    token = headers["Authorization"].removeprefix("Bearer ")
    # The traceback shows the raising line's source, never the values it formatted.
    for private in ("private-body-text", token):
        assert private not in caplog.text
