"""What the forkserver prepares once for every fork (deployments/warm_start.py preloads this
module, so it runs in the forkserver, never in a run).

**Prefect settings.** A fork whose run would build the same settings keeps the forkserver's
instead of building them again (about 0.2 s of Prefect settings and 0.2 s of logging set-up per
run, measured with cProfile in a warm fork). Prefect builds its settings from the environment
(`PREFECT_*`), the profiles file, and the `.env`, `prefect.toml` and `pyproject.toml`
(`[tool.prefect]`) of the working directory; `FORKSERVER_SOURCES` records all of those, and a
run whose sources are equal would get equal settings and equal logging configuration. Any
difference, even one of formatting (`1` for `true`), makes the run build its own: the shortcut
may miss, it never reuses settings a run would not have built.

**TLS contexts.** Every Prefect client loads its CA bundle into a new `SSLContext` (~25 ms,
parsing certifi's 150 certificates), and a run opens seven or so (engine, task engine, logs,
events, artifacts, pull steps), even when the API URL is plain http. The forks share one
context per CA file instead, built in the forkserver: a verifying context is never changed
after it is built (httpx only reads it), so sharing it verifies exactly as before. Only the
verifying `create_default_context(cafile=...)` of Prefect's client module is shared; the
insecure-skip-verify one, which Prefect changes after building, is built anew each time.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import types
from collections.abc import Callable, Mapping
from pathlib import Path

import certifi
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


class _SharedContexts:
    """`ssl.create_default_context` that returns one verifying context per CA file."""

    def __init__(self, create: Callable[..., ssl.SSLContext]) -> None:
        self._create = create
        self._contexts: dict[tuple[str, int], ssl.SSLContext] = {}

    def __call__(
        self,
        purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
        *,
        cafile: str | None = None,
        capath: str | None = None,
        cadata: str | bytes | None = None,
    ) -> ssl.SSLContext:
        if cafile is None or capath is not None or cadata is not None:
            return self._create(purpose, cafile=cafile, capath=capath, cadata=cadata)
        if purpose != ssl.Purpose.SERVER_AUTH:
            return self._create(purpose, cafile=cafile)
        key = (cafile, os.stat(cafile).st_mtime_ns)
        if key not in self._contexts:
            self._contexts[key] = self._create(purpose, cafile=cafile)
        return self._contexts[key]


def share_tls_contexts() -> None:
    """From now on (in this process and its forks) Prefect's clients share verifying contexts:
    its client module sees an `ssl` whose `create_default_context` is `_SharedContexts`."""
    from prefect.client import orchestration

    if isinstance(getattr(orchestration.ssl, "create_default_context", None), _SharedContexts):
        return
    shared = types.ModuleType("ssl")
    shared.__dict__.update(vars(ssl))
    shared.create_default_context = _SharedContexts(ssl.create_default_context)  # type: ignore[attr-defined]
    orchestration.ssl = shared  # type: ignore[attr-defined]
    # Built now, in the forkserver: the forks inherit it ready.
    shared.create_default_context(cafile=certifi.where())


# A preload that raised would take the forkserver down with it: without sharing, forks still run.
with contextlib.suppress(Exception):
    share_tls_contexts()
