"""What the forkserver prepares for every fork (deployments/warm_preload.py): Prefect settings kept
only when everything they are built from is the same, and one verifying TLS context per CA file
shared by Prefect's clients."""

from __future__ import annotations

import inspect
import os
import ssl
from pathlib import Path

import certifi
import pytest
from prefect.client import orchestration
from prefect.settings import get_current_settings

from deployments import warm_preload


@pytest.fixture
def starter_env() -> dict[str, str]:
    """What a starter gives a run of this process (Prefect's EngineCommandStarter's recipe)."""
    resolved = get_current_settings().to_environment_variables(exclude_unset=True)
    return {**os.environ, **resolved, "PREFECT__FLOW_RUN_ID": "per-run", "CALSYNC_X": "1"}


def test_a_run_of_the_same_env_and_directory_keeps_them(starter_env) -> None:
    assert warm_preload.FORKSERVER_SOURCES is not None
    assert warm_preload.sources(starter_env, Path.cwd()) == warm_preload.FORKSERVER_SOURCES


def test_a_different_prefect_setting_builds_its_own(starter_env) -> None:
    changed = {**starter_env, "PREFECT_CLIENT_MAX_RETRIES": "7"}
    retyped = {**changed, "PREFECT_CLIENT_MAX_RETRIES": "07"}  # the same number, other text

    assert warm_preload.sources(changed, Path.cwd()) != warm_preload.FORKSERVER_SOURCES
    assert warm_preload.sources(retyped, Path.cwd()) != warm_preload.sources(changed, Path.cwd())


@pytest.mark.parametrize(
    ("name", "text", "counts"),
    [
        (".env", "PREFECT_CLIENT_MAX_RETRIES=2\n", True),
        ("prefect.toml", "[client]\nmax_retries = 2\n", True),
        ("pyproject.toml", "[tool.prefect.client]\nmax_retries = 2\n", True),
        ("pyproject.toml", "[project]\nname = 'other'\n", False),
    ],
)
def test_a_directory_with_its_own_settings_files_builds_its_own(
    starter_env, tmp_path: Path, name: str, text: str, counts: bool
) -> None:
    bare = warm_preload.sources(starter_env, tmp_path)
    (tmp_path / name).write_text(text)

    assert (warm_preload.sources(starter_env, tmp_path) != bare) is counts


def test_prefect_clients_share_one_verifying_context_per_ca_file() -> None:
    create = orchestration.ssl.create_default_context
    shared = create(cafile=certifi.where())

    assert create(cafile=certifi.where()) is shared
    assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
    assert shared.cert_store_stats()["x509_ca"] > 100  # certifi's bundle, loaded once
    # The insecure one Prefect changes after building it is built anew each time.
    assert create() is not create()


def test_prefect_clients_still_build_their_context_where_the_sharing_looks() -> None:
    for client in (orchestration.PrefectClient, orchestration.SyncPrefectClient):
        source = inspect.getsource(client.__init__)
        assert "ctx = ssl.create_default_context(cafile=cert_file)" in source
        assert "ctx = ssl.create_default_context()\n" in source
