"""Schemathesis fuzzes every operation of the app's OpenAPI schema as a user who owns real data:
no 5xx, and every response is one the schema documents (status code, content type, body)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from core.models import ConnectionStatus
from tests.security.owners import Owner, add_idle_connections
from tests.support.auth import bearer

pytestmark = pytest.mark.integration

# Per operation, on top of schemathesis' deterministic coverage cases: enough to reach each
# branch, few enough that the whole schema fuzzes in about 15 s per database on a small machine.
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# The schema the app serves at /openapi.json, built by the same factory. Loaded at import, as
# `schema.parametrize()` makes one test per operation at collection time (the lazy
# `from_fixture` loader fails on pytest 9.2, which renamed the node attribute it rewrites).
schema = schemathesis.openapi.from_dict(create_app().openapi()).exclude(
    # It never ends: a snapshot, then the user's next run change for as long as the client
    # listens, so no request to it completes. One run's stream (`/sync-runs/{id}/stream`) ends
    # after the run's terminal state and is fuzzed like the rest.
    path="/me/sync-stream"
)
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")

# A random UUID only reaches the 404 branch, so most cases name one of the owner's own rows
# instead. The hook cannot see fixtures: it draws a placeholder, which the test swaps for the ID.
PLACEHOLDERS: dict[tuple[str, str], list[str]] = {
    ("POST", "calendar_id"): ["owned-calendar"],
    # Toggling the spare calendar leaves the synced one and its events in place.
    ("PATCH", "calendar_id"): ["owned-spare-calendar"],
    ("GET", "flow_run_id"): ["owned-calendar-run", "owned-linear-run"],
    # Fuzzed deletes remove spare connections, never the ones the other operations read.
    ("DELETE", "connection_id"): ["owned-spare-google", "owned-spare-linear"],
}

_NOW = datetime.now(UTC)
# Random ranges almost never overlap the synced events; this one holds all of them.
EVENTS_WINDOW = {
    "start": (_NOW - timedelta(days=30)).isoformat(),
    "end": (_NOW + timedelta(days=60)).isoformat(),
}


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, parameters: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    assert context.operation is not None
    method = context.operation.method.upper()
    choices = [parameters]
    for name in parameters or {}:
        for placeholder in PLACEHOLDERS.get((method, name), []):
            choices.append({**parameters, name: placeholder})
    return st.sampled_from(choices)


@schema.hook("flatmap_query").apply_to(path="/me/events")
def events_in_the_owners_range(
    context: schemathesis.HookContext, query: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from([query, {**query, **EVENTS_WINDOW}])


@pytest.fixture(scope="module")
def owned_ids(owner: Owner, emulator_url: str) -> dict[str, Callable[[], str]]:
    """What each placeholder stands for; runs are read when used, as only a row's latest run
    is the owner's to see and fuzzed syncs keep replacing it."""
    # Spare connections of the owner's, for the fuzzed DELETEs to remove.
    spare_google, spare_linear = add_idle_connections(
        emulator_url, owner.user_id, "Spare", linear_status=ConnectionStatus.ACTIVE
    )
    return {
        "owned-calendar": lambda: owner.calendar_id,
        "owned-spare-calendar": lambda: owner.spare_calendar_id,
        "owned-calendar-run": owner.calendar_run_id,
        "owned-linear-run": owner.linear_run_id,
        "owned-spare-google": lambda: spare_google,
        "owned-spare-linear": lambda: spare_linear,
    }


# Operations that must have succeeded on the owner's rows at least once (status, and whether
# the body must list something): proof that fuzzing got past the 404s and 422s into the code
# that reads and changes real data.
MUST_REACH: dict[str, tuple[int, bool]] = {
    "GET /me/google-connection": (200, True),
    "POST /calendars/{calendar_id}/sync": (202, False),
    "GET /sync-runs/{flow_run_id}": (200, False),
    "GET /sync-runs/{flow_run_id}/stream": (200, False),
    "GET /me/events": (200, True),
    "PATCH /calendars/{calendar_id}": (200, False),
    "DELETE /connections/{connection_id}": (204, False),
    "GET /me/linear-connection": (200, True),
    "GET /me/tasks": (200, True),
}


def _succeeded(label: str, response: schemathesis.Response) -> bool:
    status, lists_something = MUST_REACH.get(label, (response.status_code, False))
    if response.status_code != status:
        return False
    if not lists_something:
        return True
    body = response.json()
    return bool(body["items"] if isinstance(body, dict) else body)


@pytest.fixture(scope="module")
def reached() -> Iterator[dict[str, bool]]:
    """Whether each operation fuzzed so far succeeded on the owner's rows; checked at the end."""
    seen: dict[str, bool] = {}
    yield seen
    missed = [label for label, ok in seen.items() if label in MUST_REACH and not ok]
    assert not missed, f"fuzzing never succeeded on the owner's rows for {missed}"


@schema.parametrize()
def test_fuzzed_requests_get_no_5xx_and_only_documented_responses(
    case: schemathesis.Case,
    api_url: str,
    owner: Owner,
    owned_ids: dict[str, Callable[[], str]],
    reached: dict[str, bool],
) -> None:
    for name, value in (case.path_parameters or {}).items():
        if isinstance(value, str) and value in owned_ids:
            case.path_parameters[name] = owned_ids[value]()
    response = case.call_and_validate(
        base_url=api_url, headers=bearer(owner.user_id), checks=CHECKS
    )
    label = case.operation.label
    reached[label] = reached.get(label, False) or _succeeded(label, response)
