"""The domain's refusals reach HTTP through one mapping: every kind has its status, every
reason its stable API code."""

from __future__ import annotations

import asyncio
import json

import pytest

from api.errors import REFUSAL_STATUS, ErrorCode, refused
from core.errors import ConflictingState, RefusalCode, RequestRefused


def test_every_refusal_code_is_an_api_error_code() -> None:
    assert {code.value for code in RefusalCode} <= {code.value for code in ErrorCode}


@pytest.mark.parametrize("kind", RequestRefused.__subclasses__())
def test_every_kind_of_refusal_has_one_status(kind: type[RequestRefused]) -> None:
    assert 400 <= REFUSAL_STATUS[kind] < 600


def test_a_refusal_answers_its_status_with_its_message_and_code() -> None:
    error = ConflictingState("this calendar is disabled", RefusalCode.CALENDAR_DISABLED)

    response = asyncio.run(refused(None, error))  # type: ignore[arg-type]

    assert response.status_code == 409
    assert json.loads(bytes(response.body)) == {
        "detail": "this calendar is disabled",
        "code": "calendar_disabled",
    }
