"""The `calsync-warm` worker type for Prefect processes a test starts, before `pip install -e .`
has been rerun since pyproject.toml declared its entry point (see
`deployments.warm_worker.entry_point_dir`)."""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path


@cache
def _plugin_dir() -> Path | None:
    from deployments.warm_worker import entry_point_dir

    return entry_point_dir(Path(tempfile.mkdtemp(prefix="calsync-worker-plugin-")))


def with_worker_plugin(env: dict[str, str]) -> dict[str, str]:
    """`env` with the entry point on PYTHONPATH when the installed calsync lacks it."""
    plugin = _plugin_dir()
    if plugin is None:
        return env
    paths = [str(plugin), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}
