"""The API's contract for frontends: stable operation IDs and the SSE payloads.

Operation IDs are the route functions' names (`get_sync_run`), which the generated TypeScript
types key on; a test keeps them unique and `openapi.json` current. Event streams are documented
as named schemas: each SSE message's `data` is JSON of `RunStatusOut` (`status` events of a
run's stream), `SyncStreamSnapshot` (`snapshot`) or `LiveRunOut` (`run`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.schemas import LiveRunOut, RunStatusOut, SyncStreamSnapshot

REF = "#/components/schemas/{model}"
# Stream route -> its events: (event name, payload model).
STREAM_EVENTS: dict[str, list[tuple[str, type[BaseModel]]]] = {
    "/sync-runs/{flow_run_id}/stream": [("status", RunStatusOut)],
    "/me/sync-stream": [("snapshot", SyncStreamSnapshot), ("run", LiveRunOut)],
}


def operation_id(route: APIRoute) -> str:
    return route.name


def _event_schema(event: str, model: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"An SSE message `event: {event}` whose `data` is a JSON {model.__name__}.",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": event},
            "id": {"type": "string", "description": "Send back as Last-Event-ID to resume."},
            "retry": {"type": "integer", "minimum": 0},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": REF.format(model=model.__name__)},
            },
        },
    }


def _document_streams(schema: dict[str, Any]) -> None:
    models = [model for events in STREAM_EVENTS.values() for _, model in events]
    _, defs = models_json_schema([(m, "serialization") for m in models], ref_template=REF)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in defs.get("$defs", {}).items():
        components.setdefault(name, definition)
    for path, events in STREAM_EVENTS.items():
        items = []
        for event, model in events:
            name = f"{model.__name__}Event"
            components[name] = _event_schema(event, model)
            items.append({"$ref": REF.format(model=name)})
        content = schema["paths"][path]["get"]["responses"]["200"]["content"]
        content["text/event-stream"] = {
            "itemSchema": items[0] if len(items) == 1 else {"oneOf": items}
        }


def install_contract(app: FastAPI) -> None:
    """An OpenAPI document with the stream schemas (FastAPI derives every route's summary from
    its name, or takes the one the route sets)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document_streams(generate())  # FastAPI's, cached on the app, completed in place
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
