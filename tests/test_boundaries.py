"""Import boundaries: data flows one way (src/data never imports src/models)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_data_imports_nothing_from_models():
    offenders = {
        str(path.relative_to(SRC.parent)): sorted(
            m for m in imported_modules(path) if m.startswith("src.models")
        )
        for path in sorted((SRC / "data").rglob("*.py"))
    }
    assert {p: m for p, m in offenders.items() if m} == {}


def test_data_modules_name_no_model_class():
    """Dataset-default encoders come from the data configs' defaults lists, not Python strings."""
    for path in sorted((SRC / "data").rglob("*.py")):
        assert "src.models." not in path.read_text(), path
