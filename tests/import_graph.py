"""Print the import circles between modules and between packages (module-level imports only).

Imports inside functions are left out (they run late, so they cannot make an import circle at load time);
``--lazy`` counts them too (a dependency all the same). Imports under ``if TYPE_CHECKING:`` never run: never
counted.
Usage: ``python -m tests.import_graph [--lazy] [--list]`` (``test_boundaries`` keeps the module figure 0).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("api", "db", "worker", "ml", "tensorq", "bench")
ROOT = Path(__file__).resolve().parent.parent


def module_name(path: Path) -> str:
    """The dotted name of a source file under the repository root."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top_level_imports(tree: ast.Module, here: str, is_package: bool, lazy: bool = False) -> set[str]:
    """The modules a file imports at load time (with ``lazy``, in functions too); never under TYPE_CHECKING."""
    found: set[str] = set()
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif lazy or not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo += [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
    return found


def graph(lazy: bool = False) -> dict[str, set[str]]:
    """module -> the project modules it imports at load time (with ``lazy``, anywhere)."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        imported = _top_level_imports(tree, name, path.name == "__init__.py", lazy)
        edges[name] = {m for m in imported if m in files and m != name}
    return edges


class _Tarjan:
    """Tarjan's strongly connected components over ``edges``."""

    def __init__(self, edges: dict[str, set[str]]) -> None:
        self.edges = edges
        self.index: dict[str, int] = {}
        self.low: dict[str, int] = {}
        self.stack: list[str] = []
        self.on_stack: set[str] = set()
        self.found: list[list[str]] = []

    def visit(self, node: str) -> None:
        """Number ``node``, follow its edges, and close its component when it is the component's root."""
        self.index[node] = self.low[node] = len(self.index)
        self.stack.append(node)
        self.on_stack.add(node)
        for nxt in self.edges.get(node, ()):
            if nxt not in self.index:
                self.visit(nxt)
                self.low[node] = min(self.low[node], self.low[nxt])
            elif nxt in self.on_stack:
                self.low[node] = min(self.low[node], self.index[nxt])
        if self.low[node] == self.index[node]:
            self._close(node)

    def _close(self, root: str) -> None:
        component = []
        while True:
            top = self.stack.pop()
            self.on_stack.discard(top)
            component.append(top)
            if top == root:
                break
        if len(component) > 1:
            self.found.append(sorted(component))


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    sys.setrecursionlimit(10000)
    tarjan = _Tarjan(edges)
    for node in sorted(edges):
        if node not in tarjan.index:
            tarjan.visit(node)
    return tarjan.found


def package_of(module: str) -> str:
    """The package a module counts in: tensorq's ground (``tensorq.core``) apart from tensorq's top."""
    if module == "tensorq.core" or module.startswith("tensorq.core."):
        return "tensorq.core"
    return module.split(".")[0]


def package_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """package -> the other packages its modules import."""
    packages: dict[str, set[str]] = {}
    for src, dsts in edges.items():
        for dst in dsts:
            a, b = package_of(src), package_of(dst)
            if a != b:
                packages.setdefault(a, set()).add(b)
    return packages


def main() -> None:
    """Print the figures (and with ``--list`` the circles themselves)."""
    edges = graph(lazy="--lazy" in sys.argv)
    modules = circles(edges)
    packages = package_edges(edges)
    package_circles = circles(packages)
    pairs = sorted({(a, b) for a, ds in packages.items() for b in ds if a in packages.get(b, set()) and a < b})
    print(f"module-level circles: {len(modules)} ({sum(len(c) for c in modules)} modules)")
    print(f"package-level circles: {len(package_circles)}; mutually importing package pairs: {len(pairs)}")
    if "--list" in sys.argv:
        for component in modules:
            print("  modules:", " ".join(component))
        for component in package_circles:
            print("  packages:", " ".join(component))
        for a, b in pairs:
            print(f"  pair: {a} <-> {b}")


if __name__ == "__main__":
    main()
