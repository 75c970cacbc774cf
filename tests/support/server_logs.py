"""Fail a test run when a Prefect server it started logged a service error.

Prefect's services (scheduler, docket, messaging, event persister...) log their failures and carry
on, so a broken one passes every test that does not wait for it: with SQLAlchemy 2.1 the
scheduler logged `Can't evaluate bulk DML statement` each loop and never created a run. Every
fixture that starts a Prefect server calls `assert_no_service_errors` on its log at teardown.

A record is one `HH:MM:SS.mmm | LEVEL | logger - message` line (Prefect's server format) with
the lines that follow it (a traceback). ERROR and CRITICAL records count, and so does a traceback
printed outside any record; a few known transients are allowed, each with its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RECORD = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{3} \| (?P<level>[A-Z]+)\s* \| ")
FAILING_LEVELS = {"ERROR", "CRITICAL"}
TRACEBACK = "Traceback (most recent call last):"


@dataclass(frozen=True)
class KnownTransient:
    pattern: re.Pattern[str]
    reason: str


KNOWN_TRANSIENTS = (
    KnownTransient(
        re.compile(r"database is locked"),
        "SQLite serialises writers: under concurrent writes a service's transaction times out "
        "and the service retries on its next loop (servers that must not see it run on "
        "PostgreSQL).",
    ),
)


def _records(text: str) -> list[tuple[str | None, str]]:
    """(level, text) of each record; text before the first record has level None."""
    records: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines():
        match = RECORD.match(line)
        if match:
            records.append((match["level"], [line]))
        else:
            records[-1][1].append(line)
    return [(level, "\n".join(lines)) for level, lines in records if lines]


def _known(record: str) -> bool:
    return any(known.pattern.search(record) for known in KNOWN_TRANSIENTS)


def service_errors(text: str) -> list[str]:
    """The records of a server log that show a failure nobody has explained as transient."""
    return [
        record
        for level, record in _records(text)
        if (level in FAILING_LEVELS or (level is None and TRACEBACK in record))
        and not _known(record)
    ]


def assert_no_service_errors(log: Path) -> None:
    errors = service_errors(log.read_text(errors="replace")) if log.exists() else []
    assert not errors, (
        f"the Prefect server logged {len(errors)} unexpected error(s) in {log}; fix the cause or, "
        "if it is a known transient, add it with its reason to KNOWN_TRANSIENTS in "
        "tests/support/server_logs.py. First:\n" + errors[0][-4000:]
    )
