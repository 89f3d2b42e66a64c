"""The layers hold: imports point one way (tools -> newsflow -> services -> shared), stages apart, no cycles.

Every module's imports are read from its AST (function-level and TYPE_CHECKING imports included), so a lazy import
that goes up a layer fails here as surely as a top-level one. docs/architecture.md states the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Lower number = lower layer; a module may import its own layer and the ones below.
LAYERS = {"shared": 0, "services": 1, "newsflow": 2, "tools": 3}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for top in LAYERS for path in sorted((ROOT / top).rglob("*.py"))}


MODULES = all_modules()


def imported_modules(name: str, source: str, *, is_package: bool = False) -> set[str]:
    """Project modules `name` imports (a `from pkg import sub` names the submodule when it is one)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            # `import shared.storage.sqlite` or a name inside a module: the longest project module it names.
            parts = target.split(".")
            while parts and ".".join(parts) not in MODULES:
                parts.pop()
            if parts and parts[0] in LAYERS:
                found.add(".".join(parts))
            elif target.split(".")[0] in {*LAYERS, "tests"}:
                found.add(target)
    return found


def violations(name: str, imports: set[str]) -> list[str]:
    """Why each of `name`'s imports breaks the layering (empty when none does)."""
    layer = name.split(".")[0]
    found = []
    for target in sorted(imports):
        top = target.split(".")[0]
        if top == "tests":
            found.append(f"{name} imports the test suite ({target})")
        elif LAYERS[top] > LAYERS[layer]:
            found.append(f"{name} (layer {layer}) imports {target}, a layer above it")
        elif layer == "services" and top == "services" and name.split(".")[:2] != target.split(".")[:2]:
            found.append(f"{name} imports another stage: {target}")
    return found


GRAPH = {
    name: imported_modules(name, path.read_text(), is_package=path.name == "__init__.py")
    for name, path in MODULES.items()
}


def test_every_layer_has_modules() -> None:
    assert {name.split(".")[0] for name in MODULES} == set(LAYERS)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_and_stages_stay_apart(name: str) -> None:
    assert violations(name, GRAPH[name]) == []


def test_no_import_cycles() -> None:
    # Depth-first search over the module graph; a back edge is a cycle.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(GRAPH.get(node, ())):
            if target == node or target not in GRAPH:
                continue
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_the_checker_catches_each_kind_of_wrong_import() -> None:
    lazy_upward = "def f():\n    from services.clean.article import clean_article\n"
    assert violations("shared.x", imported_modules("shared.x", lazy_upward)) == [
        "shared.x (layer shared) imports services.clean.article, a layer above it"
    ]
    other_stage = "from ..enrich import step\n"
    assert violations("services.clean.x", imported_modules("services.clean.x", other_stage)) == [
        "services.clean.x imports another stage: services.enrich.step"
    ]
    assert violations("newsflow.x", imported_modules("newsflow.x", "import tools.bench.pipeline\n")) == [
        "newsflow.x (layer newsflow) imports tools.bench.pipeline, a layer above it"
    ]
    assert violations("tools.x", imported_modules("tools.x", "from newsflow.process import LocalPipeline\n")) == []


def test_tools_stay_out_of_the_wheel_and_the_image() -> None:
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packaged = set(find_packages(str(ROOT), include=include))
    assert {"shared", "services", "newsflow"} <= packaged
    assert not {p for p in packaged if p.split(".")[0] in ("tools", "tests")}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY tools" not in dockerfile
    # .dockerignore is an allowlist: everything is out (`*`) but what it names with `!`.
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"
    assert not [line for line in ignore if line.startswith("!tools") or line.startswith("!tests/unit")]
