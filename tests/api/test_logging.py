"""The API's logs as an operator reads them: a real uvicorn process, JSON lines at INFO, the
request ID on every line of a request, an access log, and never a token; a bad setting is one
line and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.auth import bearer
from tests.support.processes import free_port, python, start, stop, wait_for_http

SECRET_MARKER = "must-never-be-logged"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CALSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        # Nobody listens there: the API runs, reporting Prefect as down.
        "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
    }
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("component", "command"),
    [
        ("api", ["-m", "uvicorn", "api.main:create_app", "--factory", "--port", "0"]),
        ("runner", ["-m", "deployments.serve"]),
    ],
)
def test_an_invalid_setting_prints_one_line_naming_it_and_exits_non_zero(
    tmp_path, component, command
) -> None:
    done = subprocess.run(
        [python(), *command],
        env=_env(tmp_path, CALSYNC_LOG_FORMAT="xml"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines == [
        f"calsync {component}: Invalid setting CALSYNC_LOG_FORMAT: Input should be 'text' or 'json'"
    ]


def test_json_logs_at_info_with_request_ids_access_lines_and_no_credentials(tmp_path) -> None:
    port = free_port()
    log = tmp_path / "api.log"
    process = start(
        [python(), "-m", "uvicorn", "api.main:create_app", "--factory", "--port", str(port)],
        _env(tmp_path, CALSYNC_LOG_FORMAT="json"),
        log,
    )
    base = f"http://127.0.0.1:{port}"
    user_token = bearer("logged-user")
    try:
        wait_for_http(f"{base}/healthz", 60, process)
        ready = httpx.get(f"{base}/readyz", headers={"X-Request-ID": "ops-ready-1"}, timeout=30)
        assert ready.json()["status"] == "degraded"
        httpx.get(
            f"{base}/me/settings",
            headers={"Authorization": f"Bearer {SECRET_MARKER}", "X-Request-ID": "ops-auth-2"},
            params={"token": SECRET_MARKER},
            timeout=30,
        )
        # The app database was never migrated: this request fails inside, and is logged.
        broken = httpx.get(
            f"{base}/me/settings", headers={**user_token, "X-Request-ID": "ops-500-3"}, timeout=30
        )
        assert broken.status_code == 500 and broken.json()["code"] == "internal_error"
    finally:
        stop(process)

    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert SECRET_MARKER not in text
    assert user_token["Authorization"].split()[1] not in text
    # INFO from our own loggers is there (Prefect's root level WARNING hid it before).
    assert any(
        line["logger"] == "api.main" and line["level"] == "INFO" and line["component"] == "api"
        for line in lines
    )
    failed = [line for line in lines if line.get("request_id") == "ops-500-3"]
    assert {"api.catch_all", "api.access"} <= {line["logger"] for line in failed}
    # The catch-all logs the exception's type and where it was raised, never its text.
    assert any(
        line["logger"] == "api.catch_all" and line["message"].startswith("unhandled ")
        for line in failed
    )
    access = [line for line in lines if line["logger"] == "api.access"]
    by_id = {line.get("request_id"): line for line in access}
    assert by_id["ops-auth-2"]["status"] == 401
    assert by_id["ops-auth-2"]["path"] == "/me/settings"
    assert by_id["ops-ready-1"]["route"] == "/readyz"
    assert by_id["ops-500-3"]["status"] == 500
