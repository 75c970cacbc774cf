"""The version every deployment carries: the package version, plus the git commit when known.

`0.1.0+g1a2b3c4` (`.dirty` when the checkout has uncommitted changes), or `0.1.0` outside git.
Standard library only, so `prefect deploy` runs it as a build step with any Python 3.11
(`python3 deployments/version.py`, see prefect.yaml) and the runner imports it.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def calsync_version() -> str:
    version = str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])
    commit = _git("rev-parse", "--short", "HEAD")
    if not commit:
        return version
    dirty = ".dirty" if _git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{version}+g{commit}{dirty}"


if __name__ == "__main__":
    print(calsync_version())
