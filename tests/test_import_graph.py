"""The package's modules import one another without circles, function-level imports included.

Two circles existed (``caffe/hdf5`` <-> ``caffe/weights`` through deferred imports,
``net/banded`` <-> ``net/layers/convolution`` through a TYPE_CHECKING import); this keeps
them, and any new one, out.
"""
from __future__ import annotations

import ast
from pathlib import Path

import reproduce

PACKAGE = Path(reproduce.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    # edges between modules only, not into packages' __init__ (which re-export)
    return {name: {m for m in _imports(path, name) if m in modules and m != name
                   and not modules[m].name == "__init__.py"}
            for name, path in modules.items()}


def test_the_two_former_circles_are_untied():
    graph = _graph()
    for a, b in (("reproduce.caffe.hdf5", "reproduce.caffe.weights"),
                 ("reproduce.net.banded", "reproduce.net.layers.convolution")):
        assert not (b in graph[a] and a in graph[b]), f"{a} and {b} import each other"


def test_no_module_imports_itself_through_others():
    graph = _graph()
    cycles = []
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)
