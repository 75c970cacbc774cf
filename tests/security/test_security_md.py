"""SECURITY.md's table names tests that exist: a renamed or deleted test cannot leave a row
claiming an attack is still tried."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.processes import ROOT

# `tests/x.py::test_name`, or `::test_name` for another test of the file named just before.
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?::(test_\w+)`")


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def references(text: str) -> list[tuple[str, str]]:
    found = []
    for line in text.splitlines():
        current = None
        for file, name in REFERENCE.findall(line):
            current = file or current
            assert current, f"`::{name}` without a file before it: {line}"
            found.append((current, name))
    return found


def test_every_test_security_md_names_exists() -> None:
    named = references((ROOT / "SECURITY.md").read_text())
    assert len(named) > 40, named
    missing = [
        f"{file}::{name}"
        for file, name in named
        if not (ROOT / file).exists() or name not in defined_tests(ROOT / file)
    ]
    assert missing == []


def test_a_row_naming_a_missing_test_is_caught() -> None:
    row = (
        "| x | y | `tests/core/test_redaction.py::test_no_such_test`, "
        "`::test_redact_scrubs_every_known_token_shape` |"
    )
    (first, second) = references(row)
    assert first == ("tests/core/test_redaction.py", "test_no_such_test")
    assert second[1] in defined_tests(ROOT / second[0])
    assert first[1] not in defined_tests(ROOT / first[0])
