"""README.md's layout table names every module of the app's packages, in its folder's row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = [
    "core",
    "core/providers",
    "core/sync",
    "core/repositories",
    "flows",
    "api",
    "api/routes",
    "deployments",
    "emulator",
]


def _row(folder: str) -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(rf"^\| `{re.escape(folder)}/` \|(.*)$", readme, re.MULTILINE)
    assert match, f"README.md's layout table has no row for {folder}/"
    return match.group(1)


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_layout_table_names_every_module_of(folder: str) -> None:
    row = _row(folder)
    modules = sorted(path.stem for path in (ROOT / folder).glob("*.py") if path.stem != "__init__")
    missing = [name for name in modules if f"`{name}`" not in row]
    assert not missing, f"README.md's {folder}/ row does not name {missing}"
