"""The layers of ARCHITECTURE.md, checked on the source: syscage/ imports nothing of hooks/ or shim/, and
hooks/ nothing of shim/ (so there is no import cycle between the folders)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"syscage": ("syscage.hooks", "syscage.shim"), "hooks": ("syscage.shim",)}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_import_reaches_up_a_layer(folder: str) -> None:
    wrong = {f"{path.relative_to(ROOT)}: {name}"
             for path in sorted((ROOT / folder).rglob("*.py"))
             for name in imports_of(path)
             if name.startswith(FORBIDDEN[folder])}
    assert wrong == set()
