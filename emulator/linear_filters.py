"""The `IssueFilter` subset our client uses, compiled to a predicate over emulated issues."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from emulator.linear_errors import invalid_input
from emulator.linear_state import Issue

Predicate = Callable[[Issue], bool]


def _to_ms(value: Any) -> int:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise invalid_input(f"Invalid DateTime: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _comparator(spec: Any, convert: Callable[[Any], Any] = lambda v: v) -> Callable[[Any], bool]:
    if not isinstance(spec, dict):
        raise invalid_input("A comparator must be an object such as {eq: ...}.")
    checks: list[Callable[[Any], bool]] = []
    for op, raw in spec.items():
        if op == "null":
            checks.append(lambda v, want=bool(raw): (v is None) == want)
            continue
        if op in ("in", "nin"):
            values = {convert(item) for item in raw}
            if op == "in":
                checks.append(lambda v, s=values: v is not None and v in s)
            else:
                checks.append(lambda v, s=values: v is None or v not in s)
            continue
        target = convert(raw)
        compare = {
            "eq": lambda v, t: v == t,
            "neq": lambda v, t: v != t,
            "gt": lambda v, t: v > t,
            "gte": lambda v, t: v >= t,
            "lt": lambda v, t: v < t,
            "lte": lambda v, t: v <= t,
        }.get(op)
        if compare is None:
            raise invalid_input(f"Unsupported comparator {op!r}.")
        if op in ("eq", "neq"):
            checks.append(lambda v, t=target, c=compare: c(v, t))
        else:
            checks.append(lambda v, t=target, c=compare: v is not None and c(v, t))
    return lambda v: all(check(v) for check in checks)


_DATE_FIELDS = {
    "createdAt": lambda i: i.created_ms,
    "updatedAt": lambda i: i.updated_ms,
    "archivedAt": lambda i: i.archived_ms,
    "completedAt": lambda i: i.completed_ms,
    "canceledAt": lambda i: i.canceled_ms,
}


def compile_filter(spec: Any, viewer_id: str) -> Predicate:
    """The IssueFilter subset our client uses: and/or, dates, id, priority, state, assignee."""
    if spec is None:
        return lambda issue: True
    if not isinstance(spec, dict):
        raise invalid_input("filter must be an IssueFilter object.")
    parts: list[Predicate] = []
    for key, value in spec.items():
        if key in ("and", "or"):
            subs = [compile_filter(item, viewer_id) for item in value]
            combine = all if key == "and" else any
            parts.append(lambda i, s=subs, c=combine: c(p(i) for p in s))
        elif key in _DATE_FIELDS:
            check = _comparator(value, _to_ms)
            parts.append(lambda i, g=_DATE_FIELDS[key], c=check: c(g(i)))
        elif key == "id":
            check = _comparator(value)
            parts.append(lambda i, c=check: c(i.id))
        elif key == "priority":
            check = _comparator(value)
            parts.append(lambda i, c=check: c(i.priority))
        elif key == "state":
            parts.append(_state_filter(value))
        elif key == "assignee":
            parts.append(_assignee_filter(value, viewer_id))
        else:
            raise invalid_input(f"The emulator does not support the issue filter field {key!r}.")
    return lambda issue: all(part(issue) for part in parts)


def _state_filter(spec: Any) -> Predicate:
    parts: list[Predicate] = []
    for key, value in dict(spec).items():
        check = _comparator(value)
        if key == "type":
            parts.append(lambda i, c=check: c(i.state_type))
        elif key == "name":
            parts.append(lambda i, c=check: c(i.state_name))
        else:
            raise invalid_input(f"The emulator does not support the state filter field {key!r}.")
    return lambda issue: all(part(issue) for part in parts)


def _assignee_filter(spec: Any, viewer_id: str) -> Predicate:
    """A nullable relation: `null` tests presence; every other field needs an assignee."""
    parts: list[Predicate] = []
    for key, value in dict(spec).items():
        if key == "null":
            parts.append(lambda i, want=bool(value): (i.assignee_id is None) == want)
        elif key == "id":
            check = _comparator(value)
            parts.append(lambda i, c=check: i.assignee_id is not None and c(i.assignee_id))
        elif key == "isMe":
            check = _comparator(value)
            parts.append(
                lambda i, c=check: i.assignee_id is not None and c(i.assignee_id == viewer_id)
            )
        else:
            raise invalid_input(f"The emulator does not support the assignee filter {key!r}.")
    return lambda issue: all(part(issue) for part in parts)
