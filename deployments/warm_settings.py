"""What Prefect's settings were built from in the forkserver, so a fork whose run would build the
same settings keeps the forkserver's instead of building them again (about 0.2 s of Prefect
settings and 0.2 s of logging set-up per run, measured with cProfile in a warm fork).

Prefect builds its settings from the environment (`PREFECT_*`), the profiles file, and the
`.env`, `prefect.toml` and `pyproject.toml` (`[tool.prefect]`) of the working directory. The
forkserver imports this module (deployments/warm_start.py preloads it), which records all of
those as `FORKSERVER_SOURCES`; a run whose sources are equal would get equal settings and equal
logging configuration. Any difference, even one of formatting (`1` for `true`), makes the run
build its own: the shortcut may miss, it never reuses settings a run would not have built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from prefect.settings import get_current_settings

# Read from the working directory by Prefect's settings sources.
CWD_FILES = (".env", "prefect.toml")
PYPROJECT_TABLE = "[tool.prefect"

Sources = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, int, int], ...]]


def settings_env(env: Mapping[str, str]) -> dict[str, str]:
    """The variables settings are read from: `PREFECT_*`, not the runner's per-run `PREFECT__*`."""
    return {k: v for k, v in env.items() if k.startswith("PREFECT_") and k[8:9] != "_"}


def _stamp(path: Path) -> tuple[str, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (str(path), stat.st_mtime_ns, stat.st_size)


def _files(cwd: Path, profiles: Path, logging_config: Path) -> tuple[tuple[str, int, int], ...]:
    candidates = [cwd / name for name in CWD_FILES]
    pyproject = cwd / "pyproject.toml"
    try:
        if PYPROJECT_TABLE in pyproject.read_text(errors="replace"):
            candidates.append(pyproject)
    except OSError:
        pass
    stamps = (_stamp(path) for path in (*candidates, profiles, logging_config))
    return tuple(stamp for stamp in stamps if stamp is not None)


def sources(env: Mapping[str, str], cwd: Path) -> Sources:
    """What settings built in `cwd` from `env` depend on."""
    settings = get_current_settings()
    files = _files(cwd, settings.profiles_path, settings.logging.config_path)
    return tuple(sorted(settings_env(env).items())), files


def _forkserver_sources() -> Sources | None:
    """The env a starter would give a run of this process: its own plus the settings it resolved
    (what Prefect's `EngineCommandStarter` adds), and its working directory's files. None if
    they cannot be read: every run then builds its own settings (a preload that raised would
    take the forkserver down with it)."""
    try:
        env = {**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True)}
        return sources(env, Path.cwd())
    except Exception:
        return None


FORKSERVER_SOURCES = _forkserver_sources()
