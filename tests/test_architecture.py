"""The import graph of voicekit points one way (docs/ARCHITECTURE.md).

Every import counts, module-level or inside a function: a lazy import that dodges
a circle still ties the two modules together. Only ``if TYPE_CHECKING:`` blocks
are left out, since they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import voicekit

PACKAGE = Path(voicekit.__file__).parent

# A module may import modules of its own folder and of folders of a lower rank.
# Folders of one rank are independent of each other.
RANKS = {
    "voicekit": 0,  # the package root: __version__
    "errors": 0,
    "system": 1,
    "settings": 2,
    "formats": 3,
    "text": 4,
    "backends": 4,
    "synth": 5,
    "profiles": 5,
    "diagnostics": 6,
    "cluster": 6,  # Ray batches: above synth, below cli
    "cli": 7,
    "__main__": 8,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every voicekit module that ``name`` imports, anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # "from voicekit.x import y" imports module x.y when y is a module
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        for target in targets:
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target in known and target != name and target.startswith("voicekit"):
                yield target


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports_of(name, path, known)) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_graph_is_read() -> None:
    edges = graph()
    assert "voicekit.synth.pipeline" in edges
    assert "voicekit.synth.job" in edges["voicekit.synth.pipeline"]


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_every_folder_has_a_rank() -> None:
    assert {folder(m) for m in modules()} <= set(RANKS)


def test_imports_point_down_the_layers() -> None:
    wrong = sorted(
        f"{a} -> {b}"
        for a, targets in graph().items()
        for b in targets
        if folder(a) != folder(b) and RANKS[folder(a)] <= RANKS[folder(b)]
    )
    assert wrong == []


def test_only_the_command_line_imports_cli() -> None:
    outside = sorted(
        f"{a} -> {b}"
        for a, targets in graph().items()
        for b in targets
        if folder(b) == "cli" and folder(a) not in ("cli", "__main__")
    )
    assert outside == []


def test_cycle_finder_finds_a_lazy_circle() -> None:
    # the checker itself: a circle made only of a function-level import is found
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_each_folder_says_what_it_holds_and_may_import() -> None:
    missing = [
        p.parent.name
        for p in PACKAGE.glob("*/__init__.py")
        if "import" not in (ast.get_docstring(ast.parse(p.read_text())) or "")
    ]
    assert missing == []
