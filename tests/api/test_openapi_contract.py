"""The frontend contract: the committed openapi.json is what the app serves, operation IDs are
stable and unique, stream payloads and error bodies are named schemas, and the committed
TypeScript types cover every operation. After a route change: `make openapi`, commit both."""

from __future__ import annotations

import json
import re

from api.errors import ErrorCode
from api.main import create_app
from api.openapi_export import document, render
from tests.support.processes import ROOT

OPENAPI = ROOT / "openapi.json"
TYPES = ROOT / "frontend" / "types" / "api.d.ts"
METHODS = {"get", "post", "put", "patch", "delete"}


def operations(schema: dict) -> list[tuple[str, str, dict]]:  # type: ignore[type-arg]
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_the_committed_openapi_json_is_current() -> None:
    assert OPENAPI.read_text() == render(document()), "run `make openapi` and commit the result"


def test_every_operation_has_a_stable_unique_id_and_a_summary() -> None:
    ops = operations(create_app().openapi())
    ids = [operation["operationId"] for _, _, operation in ops]

    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", op_id) for op_id in ids), ids
    assert all(operation.get("summary") for _, _, operation in ops)
    assert {"get_sync_run", "stream_my_syncs", "create_stream_ticket", "metrics"} <= set(ids)


def test_stream_events_and_errors_are_named_schemas() -> None:
    schema = create_app().openapi()
    components = schema["components"]["schemas"]

    run_stream = schema["paths"]["/sync-runs/{flow_run_id}/stream"]["get"]["responses"]["200"]
    user_stream = schema["paths"]["/me/sync-stream"]["get"]["responses"]["200"]
    assert run_stream["content"]["text/event-stream"]["itemSchema"] == {
        "$ref": "#/components/schemas/RunStatusOutEvent"
    }
    assert user_stream["content"]["text/event-stream"]["itemSchema"]["oneOf"] == [
        {"$ref": "#/components/schemas/SyncStreamSnapshotEvent"},
        {"$ref": "#/components/schemas/LiveRunOutEvent"},
    ]
    for payload in ("RunStatusOut", "SyncStreamSnapshot", "LiveRunOut"):
        assert payload in components
    data = components["LiveRunOutEvent"]["properties"]["data"]
    assert data["contentSchema"] == {"$ref": "#/components/schemas/LiveRunOut"}
    assert components["ErrorBody"]["required"] == ["detail", "code"]
    assert set(components["ErrorCode"]["enum"]) == {code.value for code in ErrorCode}
    for path, method, operation in operations(schema):
        for status, response in operation["responses"].items():
            body = response.get("content", {}).get("application/json", {}).get("schema", {})
            # 422 is FastAPI's validation body; /readyz answers 503 with its Health report.
            if int(status) >= 400 and status != "422" and path != "/readyz":
                assert body == {"$ref": "#/components/schemas/ErrorBody"}, (path, method, status)


def test_the_committed_typescript_types_cover_every_operation_and_error_code() -> None:
    types = TYPES.read_text()
    committed = json.loads(OPENAPI.read_text())

    for _, _, operation in operations(committed):
        assert f"    {operation['operationId']}: {{" in types, operation["operationId"]
    for code in ErrorCode:
        assert f'"{code.value}"' in types
