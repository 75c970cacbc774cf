"""When a warm fork may keep the forkserver's Prefect settings (deployments/warm_settings.py):
only when everything settings are built from is the same."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prefect.settings import get_current_settings

from deployments import warm_settings


@pytest.fixture
def starter_env() -> dict[str, str]:
    """What a starter gives a run of this process (Prefect's EngineCommandStarter's recipe)."""
    resolved = get_current_settings().to_environment_variables(exclude_unset=True)
    return {**os.environ, **resolved, "PREFECT__FLOW_RUN_ID": "per-run", "CALSYNC_X": "1"}


def test_a_run_of_the_same_env_and_directory_keeps_them(starter_env) -> None:
    assert warm_settings.FORKSERVER_SOURCES is not None
    assert warm_settings.sources(starter_env, Path.cwd()) == warm_settings.FORKSERVER_SOURCES


def test_a_different_prefect_setting_builds_its_own(starter_env) -> None:
    changed = {**starter_env, "PREFECT_CLIENT_MAX_RETRIES": "7"}
    retyped = {**changed, "PREFECT_CLIENT_MAX_RETRIES": "07"}  # the same number, other text

    assert warm_settings.sources(changed, Path.cwd()) != warm_settings.FORKSERVER_SOURCES
    assert warm_settings.sources(retyped, Path.cwd()) != warm_settings.sources(changed, Path.cwd())


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
    bare = warm_settings.sources(starter_env, tmp_path)
    (tmp_path / name).write_text(text)

    assert (warm_settings.sources(starter_env, tmp_path) != bare) is counts
