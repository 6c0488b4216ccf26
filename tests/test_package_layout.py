"""The package's shape: no import cycles, no imports hidden in functions, no private names across modules."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "teachkit"

# Function-level imports of teachkit modules that are there on purpose, with the reason.
ALLOWED_LATE_IMPORTS = {
    ("teachkit.train", "main"): "the CLI parses its arguments before importing torch, so a refusal is instant",
}


def module_name(path: Path) -> str:
    """Dotted name of a file under teachkit/ (a package's __init__ is the package)."""
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def resolve(importer: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The teachkit modules an import statement loads (submodules named in `from pkg import sub` included)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    target = from_target(importer, node)
    if target not in MODULES:
        return []
    subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
    return [target] + subs


def from_target(importer: str, node: ast.ImportFrom) -> str:
    """The dotted module `from X import ...` names, relative imports resolved against `importer`."""
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package(importer) else importer.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def loaded_with(importer: str, target: str) -> list[str]:
    """Importing `target` runs its enclosing packages' __init__ too, except those `importer` already sits in
    (Python imported them before `importer`: no edge the module wrote)."""
    parts = target.split(".")
    chain = [".".join(parts[:i]) for i in range(2, len(parts) + 1)]
    return [m for m in chain if m in MODULES and not (importer + ".").startswith(m + ".") and m != importer]


def names_read_from(importer: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The module whose namespace `from X import a` reads for some `a` that is not a submodule: an edge even when
    X is `importer`'s own package (X's __init__ may still be running it: a real cycle)."""
    if not isinstance(node, ast.ImportFrom) or (target := from_target(importer, node)) not in MODULES:
        return []
    reads = any(f"{target}.{a.name}" not in MODULES for a in node.names)
    return [target] if reads and target != importer else []


def top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported: top level, including inside top-level if/try blocks."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, (ast.If, ast.Try)):
            todo += node.body + node.orelse + getattr(node, "finalbody", []) + \
                [s for h in getattr(node, "handlers", []) for s in h.body]
    return found


def import_graph(hidden: bool) -> dict[str, set[str]]:
    """Module -> the teachkit modules it imports: at import time, or (hidden=True) also inside functions."""
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))] if hidden \
            else top_level_imports(tree)
        graph[name] = {m for node in nodes for t in resolve(name, node) for m in loaded_with(name, t)} | \
            {m for node in nodes for m in names_read_from(name, node)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search with colours)."""
    state, stack = {}, []

    def visit(m: str) -> list[str] | None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        state[m] = "done"
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_cycle_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("hidden", [False, True], ids=["at-import", "with-imports-in-functions"])
def test_no_import_cycles(hidden):
    assert find_cycle(import_graph(hidden)) is None


def late_imports() -> list[tuple[str, str, int]]:
    """(module, function, line) of every teachkit import inside a function or class."""
    found = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and resolve(name, node):
                    found.append((name, fn.name, node.lineno))
    return sorted(set(found))


def test_no_teachkit_imports_inside_functions():
    late = [(m, f, line) for m, f, line in late_imports() if (m, f) not in ALLOWED_LATE_IMPORTS]
    assert late == [], "import at module level (a cycle shows a module in the wrong place): " + repr(late)


def private_crossings() -> list[str]:
    """`from teachkit.x import _y`, and `m._y` where `m` is a teachkit module reached through an imported name
    (`x._y`, `teachkit.x._y`, `I.x._y`), across module boundaries."""
    found = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and (targets := resolve(name, node)):
                found += [f"{name}: from {targets[0]} import {a.name}" for a in getattr(node, "names", [])
                          if isinstance(node, ast.ImportFrom) and is_private(a.name)]
                aliases |= bound_modules(targets[0], node)
        found += [f"{name}: {mod}.{node.attr}" for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and is_private(node.attr)
                  and (mod := module_path(node.value, aliases)) in MODULES]
    return sorted(set(found))


def is_private(attr: str) -> bool:
    return attr.startswith("_") and not attr.startswith("__")


def bound_modules(target: str, node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """Local name -> teachkit module it binds: `import teachkit.x` binds `teachkit`, `import teachkit.x as m` binds
    `m`, `from teachkit import x` binds `x`."""
    if isinstance(node, ast.ImportFrom):
        return {a.asname or a.name: f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES}
    return {a.asname or a.name.split(".")[0]: a.name if a.asname else a.name.split(".")[0]
            for a in node.names if a.name in MODULES}


def module_path(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """The dotted path of `a.b.c` with the imported name `a` replaced by its module, or None if `a` is not one."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute) and (base := module_path(node.value, aliases)):
        return f"{base}.{node.attr}"
    return None


def test_no_private_names_across_modules():
    assert private_crossings() == []


@pytest.mark.parametrize("module", ["teachkit.data", "teachkit.optim", "teachkit.learner"])
def test_core_modules_import_no_matplotlib(module):
    code = f"import sys, {module}; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", f"importing {module} loads matplotlib"
