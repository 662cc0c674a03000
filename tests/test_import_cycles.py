"""No import cycles between the modules of the host-side packages and the framework, nor between sibling
packages (hil.serial -> hil.targets -> hil.serial is a cycle even when no single module closes it).

Every `import` counts, also those inside functions and under TYPE_CHECKING: a lazy import hides a cycle from
the interpreter, not from the reader. The graph is read from the source (ast), nothing is imported.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# source roots and the top-level packages in them that are walked
PACKAGES = {REPO_ROOT: ("hil", "conformance", "loadtest", "ci"),
            REPO_ROOT / "framework": ("viperhttp", "vhil_serve", "dut")}


def module_files(roots: dict[Path, tuple[str, ...]]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the packages (a package is its __init__)."""
    modules: dict[str, Path] = {}
    for root, packages in roots.items():
        for package in packages:
            for path in sorted((root / package).rglob("*.py")):
                if "node_modules" in path.parts:
                    continue
                parts = list(path.relative_to(root).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The known modules `name` imports: the most specific one each import statement names."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def nearest_known(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            # `from pkg import sub` imports the submodule when there is one, else a name from pkg itself
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            module = nearest_known(target)
            if module is not None and module != name:
                found.add(module)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan), as one cycle path through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [cycle_through(group, graph) for group in groups]


def cycle_through(group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A path start -> ... -> start inside one strongly connected group (breadth-first, so a shortest one)."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {sorted(group)}")  # a strongly connected group always has one


def import_graph(roots: dict[Path, tuple[str, ...]]) -> dict[str, set[str]]:
    modules = module_files(roots)
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Modules collapsed into their packages; an import between a package and one inside it is not an edge (a
    package's __init__ gathers its modules, and they import the package's shared parts)."""
    def package_of(module: str) -> str:
        return module if any(other.startswith(module + ".") for other in graph) else module.rpartition(".")[0]

    def nested(a: str, b: str) -> bool:
        return a == b or a.startswith(b + ".") or b.startswith(a + ".")

    packages: dict[str, set[str]] = {}
    for module, imports in graph.items():
        source = package_of(module)
        edges = packages.setdefault(source, set())
        edges.update(package_of(target) for target in imports if not nested(source, package_of(target)))
    return packages


def unresolved_imports(path: Path, known: set[str]) -> list[str]:
    """Absolute imports of first-party modules that do not exist (left behind when a module moves)."""
    first_party = {name.partition(".")[0] for name in known}
    missing = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        else:
            continue
        missing += [f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {name}" for name in names
                    if name.partition(".")[0] in first_party and name not in known]
    return missing


def test_no_import_cycle() -> None:
    graph = import_graph(PACKAGES)
    assert len(graph) > 50, f"only {len(graph)} modules found: is PACKAGES still where the code is?"
    cycles = import_cycles(graph) + import_cycles(package_graph(graph))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_a_cycle_through_a_lazy_import_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .leaf import VALUE\n")
    (package / "sub" / "leaf.py").write_text("VALUE = 1\n")
    (package / "cli.py").write_text("def main():\n    from pkg.run import go\n    return go()\n")
    (package / "run.py").write_text("from pkg import cli\nfrom pkg.sub import VALUE\n\ndef go():\n    return VALUE\n")
    graph = import_graph({tmp_path: ("pkg",)})
    assert graph["pkg.sub"] == {"pkg.sub.leaf"}  # a relative import, resolved
    assert graph["pkg.run"] == {"pkg.cli", "pkg.sub"}
    assert import_cycles(graph) == [["pkg.cli", "pkg.run", "pkg.cli"]]


def test_a_cycle_between_sibling_packages_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    for sub in ("serial", "targets"):
        (package / sub).mkdir(parents=True)
        (package / sub / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "errors.py").write_text("")
    (package / "serial" / "console.py").write_text("from pkg.errors import *\n")
    (package / "serial" / "flash.py").write_text("from pkg.targets.process import *\n")
    (package / "targets" / "process.py").write_text("from pkg import errors\n")
    (package / "targets" / "board.py").write_text("from pkg.serial.console import *\n")
    graph = import_graph({tmp_path: ("pkg",)})
    assert import_cycles(graph) == []  # no module closes it ...
    assert import_cycles(package_graph(graph)) == [["pkg.serial", "pkg.targets", "pkg.serial"]]  # ... the packages do


def test_first_party_imports_resolve() -> None:
    """Also in tests/ and benchmarks/, which mypy does not read: an import of a moved module fails here."""
    known = set(module_files(PACKAGES))
    files = [*module_files(PACKAGES).values(), *sorted((REPO_ROOT / "tests").rglob("*.py")),
             *sorted((REPO_ROOT / "benchmarks").rglob("*.py"))]
    missing = [line for path in files for line in unresolved_imports(path, known)]
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)
