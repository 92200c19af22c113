"""No module of the product imports itself back through others (a cycle breaks as soon as an import moves).

Imports are read from the source (nothing is imported). Module-level imports count everywhere; in `campaigns`,
imports inside functions count too, since that is where its old cycle (dialer -> dispatch -> outcomes -> tasks
-> dialer) hid.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "voicebots"
STRICT = ("voicebots.campaigns.",)  # function-level imports count here too
HOOKS = ("apps",)  # AppConfig.ready() imports late by design


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts}


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module a dotted name refers to (a module, or the package that holds the name)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    strict = module.startswith(STRICT) and module.rpartition(".")[2] not in HOOKS
    nodes = ast.walk(tree) if strict else tree.body
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{alias.name}" for alias in node.names] or [base]
        else:
            continue
        for name in names:
            target = resolve(name, known) if name.startswith("voicebots") else None
            if target and target != module:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_product_has_no_import_cycle():
    known = modules()
    graph = {module: imports_of(module, path, known) for module, path in known.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_check_finds_a_cycle_like_the_old_campaigns_one():
    graph = {"dialer": {"dispatch"}, "dispatch": {"outcomes"}, "outcomes": {"tasks"}, "tasks": {"dialer"}}
    assert find_cycle(graph) == ["dialer", "dispatch", "outcomes", "tasks", "dialer"]
    assert find_cycle({"dialer": {"dispatch"}, "dispatch": {"outcomes"}, "tasks": {"dialer"}}) is None
