"""A small Server-Sent Events reader over httpx streaming, for the live-stream tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SseEvent:
    event: str | None = None
    id: str | None = None
    data: Any = None
    comments: list[str] = field(default_factory=list)

    @property
    def is_comment(self) -> bool:
        return self.event is None and self.data is None


def read_events(response: httpx.Response) -> Iterator[SseEvent]:
    """Events as the spec frames them (comment-only blocks, such as keep-alives, included)."""
    current = SseEvent()
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if data:
                current.data = json.loads("\n".join(data))
            if data or current.event or current.comments:
                yield current
            current, data = SseEvent(), []
        elif line.startswith(":"):
            current.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                current.event = value
            elif name == "id":
                current.id = value


def run_events(
    client: httpx.Client, run_id: str, last_event_id: str | None = None
) -> list[SseEvent]:
    """Every event of a run's stream, which ends after the run's terminal state."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with client.stream("GET", f"/sync-runs/{run_id}/stream", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [event for event in read_events(response) if not event.is_comment]


def statuses(events: list[SseEvent]) -> list[str]:
    """The run's statuses in order, repeats (progress updates) collapsed."""
    seen: list[str] = []
    for event in events:
        if not seen or seen[-1] != event.data["status"]:
            seen.append(event.data["status"])
    return seen
