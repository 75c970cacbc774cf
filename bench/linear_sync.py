"""Full sync of 10,000 assigned Linear issues into the app database, beside a naive per-row ORM
baseline, and the request count of an incremental sync with nothing changed.

`python -m bench.linear_sync --json` prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
import uuid
from typing import Any

import httpx
from cryptography.fernet import Fernet

TARGETS = {"issues_per_s": 2_500, "ratio_vs_naive": 3.0, "incremental_requests": 1}


def _configure(db_url: str, emulator: str) -> None:
    os.environ.update(
        CALSYNC_DATABASE_URL=db_url,
        LINEAR_API_URL=f"{emulator}/linear/graphql",
        LINEAR_OAUTH_TOKEN_URL=f"{emulator}/linear/oauth/token",
        CALSYNC_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )


def _viewer(emulator: str, issues: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """An emulator workspace and user with `issues` open issues assigned, changed over a week."""
    control = f"{emulator}/_control/linear"
    workspace = httpx.post(
        f"{control}/workspaces", json={"name": "Bench", "url_key": f"b{uuid.uuid4().hex[:6]}"}
    ).json()
    user = httpx.post(f"{control}/users", json={"workspace_id": workspace["id"]}).json()
    httpx.post(
        f"{control}/issues/bulk",
        json={"assignee_id": user["id"], "count": issues, "spacing_s": 60},
        timeout=120,
    ).raise_for_status()
    return workspace, user


def _connection(workspace: dict[str, Any], api_key: str) -> uuid.UUID:
    from core.db import session_scope
    from core.models import TaskConnection

    with session_scope() as session:
        connection = TaskConnection(
            user_id=f"bench-{uuid.uuid4().hex[:6]}",
            auth_kind="api_key",
            access_token=api_key,
            organization_id=workspace["id"],
            organization_name=workspace["name"],
            url_key=workspace["url_key"],
        )
        session.add(connection)
        session.flush()
        return connection.id


def _naive_sync(connection_id: uuid.UUID, api_key: str) -> int:
    """The obvious implementation: page by page, look each issue's row up, add or update it."""
    from sqlalchemy import select

    from core.db import session_scope, utcnow
    from core.models import TaskItem
    from core.providers.linear import LinearClient
    from core.settings import get_settings
    from core.sync.linear import is_open_for, item_row

    count = 0
    with LinearClient(get_settings(), access_token=api_key) as client:
        for page in client.iter_assigned_issue_pages():
            with session_scope() as session:
                for issue in page.issues:
                    if not is_open_for(issue, page.viewer_id):
                        continue
                    row = {**item_row(issue, connection_id), "synced_at": utcnow()}
                    existing = session.scalars(
                        select(TaskItem).where(
                            TaskItem.task_connection_id == connection_id,
                            TaskItem.external_id == issue["id"],
                        )
                    ).one_or_none()
                    if existing is None:
                        session.add(TaskItem(**row))
                    else:
                        for key, value in row.items():
                            setattr(existing, key, value)
                    count += 1
    return count


def run(issues: int) -> dict[str, Any]:
    from bench.support import emulator_process, throwaway_database

    with emulator_process() as emulator, throwaway_database() as (db_url, db_kind):
        _configure(db_url, emulator)
        from core.db import session_factory
        from core.migrate import upgrade
        from core.sync.linear import LinearSyncEngine

        upgrade(db_url)
        engine = LinearSyncEngine(sessions=session_factory())
        workspace, user = _viewer(emulator, issues)
        ours = _connection(workspace, user["api_key"])
        naive = _connection(workspace, user["api_key"])

        gc.collect()
        started = time.perf_counter()
        counts = engine.sync(ours)
        elapsed = time.perf_counter() - started
        assert counts.created == issues, counts

        httpx.post(f"{emulator}/_control/linear/calls/reset").raise_for_status()
        incremental = engine.sync(ours)
        calls = httpx.get(f"{emulator}/_control/linear/calls").json()["linear.graphql"]
        assert not incremental.full_pass and incremental.requests == calls, incremental

        gc.collect()
        started = time.perf_counter()
        naive_count = _naive_sync(naive, user["api_key"])
        naive_elapsed = time.perf_counter() - started
        assert naive_count == issues, naive_count

    issues_per_s = issues / elapsed
    naive_per_s = naive_count / naive_elapsed
    result: dict[str, Any] = {
        "benchmark": "linear_sync",
        "database": db_kind,
        "issues": issues,
        "pages": counts.pages,
        "issues_per_s": round(issues_per_s),
        "naive_issues_per_s": round(naive_per_s),
        "ratio_vs_naive": round(issues_per_s / naive_per_s, 2),
        "incremental_requests": calls,
        "targets": TARGETS,
    }
    if db_kind != "postgresql":
        result["note"] = "PostgreSQL was unreachable: measured on SQLite"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--issues", type=int, default=10_000)
    args = parser.parse_args()
    result = run(args.issues)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
