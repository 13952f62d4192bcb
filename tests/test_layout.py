"""The layout's promises, read from the source: the README's layer order, one direction of dependencies, and the
library never prints.

Every import counts, also the lazy ones inside functions: a cycle through a lazy import is still a cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("swin_deploy", "calibration")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The project modules `path` imports (resolved relative imports; `from pkg import mod` counts mod)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] in (*PACKAGES, "cli")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    known = {module_name(p) for p in files}
    return {module_name(p): {m for m in imports(p) if m in known} - {module_name(p)} for p in files}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def room(module: str) -> str:
    """The unit of the layout: calibration, or swin_deploy's subpackage / top-level module."""
    parts = module.split(".")
    return parts[0] if parts[0] != "swin_deploy" or len(parts) == 1 else ".".join(parts[:2])


def readme_layers() -> dict[str, int]:
    """The README's Layout block: `N  path/or/file.py  what it is` -> {module prefix: layer N}."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("## Layout"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")]
    layers = {}
    for line in block.splitlines():
        m = re.match(r"^(\d+)\s+(\S+)", line)
        if m:
            path = m.group(2).rstrip("/").removesuffix(".py").removesuffix("/__init__")
            layers[path.replace("/", ".")] = int(m.group(1))
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of the longest listed prefix of `module` (a package entry covers its submodules)."""
    best = max((p for p in layers if module == p or module.startswith(p + ".")), key=len, default=None)
    return None if best is None else layers[best]


def upward_imports(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    return sorted(f"{m} (layer {layer_of(m, layers)}) imports {t} (layer {layer_of(t, layers)})"
                  for m, targets in graph.items() for t in targets
                  if layer_of(t, layers) is not None and layer_of(m, layers) is not None
                  and layer_of(t, layers) > layer_of(m, layers))


def test_readme_lists_every_module_and_no_import_goes_up_a_layer(graph):
    layers = readme_layers()
    assert len(set(layers.values())) >= 6
    unlisted = sorted(m for m in [*graph, "cli"] if layer_of(m, layers) is None)
    assert unlisted == []
    assert upward_imports({**graph, "cli": {m for m in imports(ROOT / "cli.py")}}, layers) == []


def test_a_planted_upward_import_is_caught(graph):
    layers = readme_layers()
    planted = {**graph, "swin_deploy.models.swin": graph["swin_deploy.models.swin"] | {"swin_deploy.verify.run"}}
    assert upward_imports(planted, layers) == ["swin_deploy.models.swin (layer 1) imports swin_deploy.verify.run (layer 5)"]


def test_no_module_imports_one_that_imports_it_back(graph):
    assert cycles(graph) == []


def test_rooms_depend_in_one_direction(graph):
    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        rooms.setdefault(room(module), set()).update(room(t) for t in targets if room(t) != room(module))
    assert cycles(rooms) == []
    # calibration builds on swin_deploy, never the other way; nothing in the library imports the command line
    assert not any(t == "calibration" or t.startswith("calibration.") for m, ts in graph.items()
                   if m.startswith("swin_deploy") for t in ts)
    assert "cli" not in {t for ts in graph.values() for t in ts}


def test_the_checker_sees_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_library_does_not_print_or_set_process_state():
    """Only swin_deploy/render.py (the command line's presentation) writes to the terminal; no module sets
    environment variables or torch's process-wide thread count."""
    offenders = []
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print" \
                        and path.name != "render.py":
                    offenders.append(f"{path.name}: print")
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "set_num_threads":
                    offenders.append(f"{path.name}: set_num_threads")
                if isinstance(node, ast.Assign) and any(isinstance(t, ast.Subscript) and ast.unparse(t.value) == "os.environ"
                                                        for t in node.targets):
                    offenders.append(f"{path.name}: os.environ[...] =")
    assert offenders == []
