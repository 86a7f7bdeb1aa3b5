"""The shape of the house, checked on every `make test`:

- the core (gateway/) imports no feature package and not the composition root;
- bot/ (the Rasa project and its custom actions) imports nothing of the project outside bot/;
- no two files import each other, directly or through others, counting imports inside functions and under
  TYPE_CHECKING (they all run some day). `from package import module` counts as importing the package's
  __init__ too, because it runs it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "gateway", "channels", "bot", "kb_retrieval", "handoff", "crm_adapter", "studio", "reports")
FEATURES = ("app", "channels", "bot", "kb_retrieval", "handoff", "crm_adapter", "studio", "reports")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules this file imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                while name and name not in known:
                    name = name.rpartition(".")[0]
                if name:
                    found.add(name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = node.module
            while base and base not in known:
                base = base.rpartition(".")[0]
            if not base:
                continue
            found.add(base)
            for alias in node.names:
                if f"{node.module}.{alias.name}" in known:
                    found.add(f"{node.module}.{alias.name}")
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def test_the_core_imports_no_feature() -> None:
    offending = sorted(
        f"{module} imports {target}"
        for module, targets in graph().items() if module.split(".")[0] == "gateway"
        for target in targets if target.split(".")[0] in FEATURES
    )
    assert offending == []


def test_bot_imports_nothing_outside_bot() -> None:
    offending = sorted(
        f"{module} imports {target}"
        for module, targets in graph().items() if module.split(".")[0] == "bot"
        for target in targets if target.split(".")[0] != "bot"
    )
    assert offending == []


def test_no_import_circles() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert circles == []


def test_the_walk_sees_the_whole_tree() -> None:
    edges = graph()
    assert len(edges) > 120 and "gateway.pipeline" in edges and "app.factory" in edges
    assert "gateway.pipeline" in edges["app.hooks"]


def test_imports_inside_functions_and_type_checking_count(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import gateway.pipeline\n"
                      "def f():\n    from channels import plugins\n", encoding="utf-8")
    assert imports_of(sample, modules()) == {"gateway.pipeline", "channels"}
