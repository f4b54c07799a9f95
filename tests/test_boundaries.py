"""Boundaries that must not regress: import cycles, what a fusion/encoder import loads, data -> models."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each ``src`` module's imports of other ``src`` modules (module- and function-level)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            targets |= {f for f in found if f in modules and f != name and f.startswith("src.")}
        graph[name] = targets - {"src"}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node], _ = 2, stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_in_src() -> None:
    assert _cycle(_imports()) is None


def test_data_imports_nothing_from_models() -> None:
    offending = {
        m: sorted(t for t in ts if t.startswith("src.models"))
        for m, ts in _imports().items()
        if m.startswith("src.data")
    }
    assert not {m: ts for m, ts in offending.items() if ts}


def test_data_modules_name_no_model_class() -> None:
    """Dataset-default encoders come from the data configs' defaults lists, not Python strings."""
    for path in sorted((SRC / "data").rglob("*.py")):
        assert "src.models." not in path.read_text(), path


def test_models_import_nothing_from_data() -> None:
    offending = {
        m: sorted(t for t in ts if t.startswith("src.data"))
        for m, ts in _imports().items()
        if m.startswith("src.models")
    }
    assert not {m: ts for m, ts in offending.items() if ts}


def test_a_fusion_or_encoder_import_loads_neither_lightning_nor_matplotlib() -> None:
    modules = [
        "src.models.fusion.build",
        "src.models.fusion.mmbt",
        "src.models.fusion.hybrid",
        "src.models.encoders",
        "src.models.model",
    ]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + (
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'pytorch_lightning', 'matplotlib'}))"
        )
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=SRC.parent, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
