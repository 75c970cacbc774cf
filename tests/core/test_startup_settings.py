"""Processes refuse to start on settings that would break or weaken them, with one line naming
the variable: the API, the local runner and the worker machine's check, each as its own process.
Local development (`CALSYNC_ENV=local`, as `make dev` sets) still gets a generated key."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import ROOT, python

NO_KEYS = (
    "Invalid setting CALSYNC_ENCRYPTION_KEYS: required when CALSYNC_ENV=production "
    "(the default), so every machine reads the same tokens; CALSYNC_ENV=local generates a key "
    "for this machine only"
)
STARTS = {
    "api": ["-m", "uvicorn", "api.main:create_app", "--factory", "--port", "0"],
    "runner": ["-m", "deployments.serve"],
    "worker check": ["-m", "core.settings"],
}
# How each start names itself in its one line.
PREFIXES = {"api": "calsync api: ", "runner": "calsync runner: ", "worker check": "calsync: "}


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python args` from a folder without `.env`, with our settings only as given in `env`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CALSYNC_", "PREFECT_"))}
    return subprocess.run(
        [python(), *args],
        cwd=cwd,
        env={
            **inherited,
            "PYTHONPATH": str(ROOT),
            "PREFECT_HOME": str(cwd / "prefect"),
            "PREFECT_API_URL": "http://127.0.0.1:9/api",  # never reached: start-up stops first
            **env,
        },
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize("component", list(STARTS))
def test_outside_local_development_no_process_starts_without_encryption_keys(
    component: str, tmp_path: Path
) -> None:
    for env in ({}, {"CALSYNC_ENV": "production"}):
        started = run(STARTS[component], tmp_path, **env)
        assert started.returncode == 2, started.stderr
        assert started.stderr.strip().splitlines() == [PREFIXES[component] + NO_KEYS]
        assert not (tmp_path / ".calsync").exists()  # no key file was made


def test_an_unknown_mode_is_refused_in_one_line(tmp_path: Path) -> None:
    started = run(STARTS["worker check"], tmp_path, CALSYNC_ENV="staging")
    assert started.returncode == 2
    assert started.stderr.strip().splitlines() == [
        "calsync: Invalid setting CALSYNC_ENV: Input should be 'local' or 'production'"
    ]


def test_local_development_generates_one_key_for_this_machine(tmp_path: Path) -> None:
    data = tmp_path / "data"
    roundtrip = [
        "-c",
        "from core.crypto import decrypt, encrypt; print(decrypt(encrypt('a-token')))",
    ]
    first = run(roundtrip, tmp_path, CALSYNC_ENV="local", CALSYNC_DATA_DIR=str(data))
    assert first.returncode == 0 and first.stdout.strip() == "a-token", first.stderr
    key = (data / "encryption.key").read_text()
    second = run(roundtrip, tmp_path, CALSYNC_ENV="local", CALSYNC_DATA_DIR=str(data))
    assert second.returncode == 0 and (data / "encryption.key").read_text() == key
    check = run(STARTS["worker check"], tmp_path, CALSYNC_ENV="local", CALSYNC_DATA_DIR=str(data))
    assert (check.returncode, check.stdout.strip()) == (0, "calsync: settings OK (local)")
