"""The shape of the `leaktrace` package, checked from its source (issue 17).

- No import cycle between its modules, counting the imports inside functions too: a lazy
  import hides a cycle from the interpreter, not from the reader.
- No module is over 400 lines: one that grows past it has more than one concern.
- The composition root (telemetry.py and the modules it is split into) names no `Any` and
  probes its parts with no getattr/hasattr: the parts it composes are typed (parts.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "instrumentation" / "leaktrace"
COMPOSITION_ROOT = ("telemetry.py", "_forked_child.py", "assembly.py", "parts.py", "log_hookup.py")


def module_names() -> dict[str, tuple[Path, bool]]:
    names: dict[str, tuple[Path, bool]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["leaktrace", *path.relative_to(PACKAGE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        names[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return names


def imported(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]
) -> set[str]:
    targets: list[str] = []
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            package = ".".join(base + ([node.module] if node.module else []))
        else:
            package = node.module or ""
        targets = [f"{package}.{alias.name}" for alias in node.names]
    found = set()
    for target in targets:
        while target not in known and "." in target:
            target = target.rsplit(".", 1)[0]  # `from pkg import name`: the module is pkg
        if target in known and target != module:
            found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    names = module_names()
    known = set(names)
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in names.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= imported(module, is_package, node, known)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_lazy_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_leaktrace() -> None:
    graph = import_graph()
    assert (
        "leaktrace.assembly" in graph["leaktrace.telemetry"]
    )  # the graph is read, lazy imports too
    assert cycles(graph) == []


def test_the_composition_root_names_no_any_and_probes_nothing() -> None:
    for name in COMPOSITION_ROOT:
        tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                assert node.id != "Any", f"{name}:{node.lineno} names Any"
                if node.id in ("getattr", "hasattr"):
                    parent_calls = [
                        n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.func is node
                    ]
                    assert not parent_calls, f"{name}:{node.lineno} probes a part with {node.id}()"
            if isinstance(node, ast.alias):
                assert node.name != "Any", f"{name}:{node.lineno} imports Any"


MAX_MODULE_LINES = 400


def test_no_module_of_leaktrace_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these along their seams: {long}"
