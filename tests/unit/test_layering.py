"""The package's imports follow the layering, with no cycles (issue 12, part 3).

Every ``import``/``from ... import`` of a ``trimtab`` module in ``src/trimtab`` is read with
:mod:`ast` -- at module level, inside functions and under ``if TYPE_CHECKING:`` alike, since
an import moved into a function still ties the two modules together. Each module belongs to a
layer by its first name below ``trimtab`` (``trimtab.engine.kernel`` -> ``engine``); the layers,
bottom up, are :data:`LAYERS`. A module may import its own layer or lower ones, never a higher
one. On top of that, the import graph has no cycle (between modules, and between the packages
of one layer) and no module imports a private (``_name``) name from another package.

The order follows DESIGN.md "Where the structure goes next" with two choices made explicit:
``data`` sits below ``config`` (config validates series names and quality bands against the
data catalog; the data layer reads no config), and ``live`` < ``portfolio`` < ``audit`` <
the report modules among the layer the design lists as one ("live, portfolio, audit,
report"). ``python -m`` entry points (``__main__`` modules) are command lines: layer ``cli``.

Run as a script (``python tests/unit/test_layering.py``) it prints the package-level graph.
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "trimtab"

#: Bottom up. A name is a subpackage or a top-level module of ``trimtab``; names on one row
#: are one layer (they may import each other, without cycles).
LAYERS: list[tuple[str, ...]] = [
    ("keys", "timeutil", "diagnostics"),        # leaf helpers: no trimtab imports
    ("errors", "secrets"),                      # error types; credentials and redaction
    ("runs",),                                  # run directories: ids, ownership locks
    ("rules",),                                 # the expression language
    ("metrics", "templates"),                   # the two registries: metrics, position templates
    ("data",),                                  # catalog, feed, market view, signals
    ("config",),                                # YAML models, loading, cross-checks
    ("accounting",),                            # book, fills, attribution
    ("venues",),                                # pricing, simulated venues, rewards
    ("planner",),                               # targets -> plans
    ("engine",),                                # the kernel shared by backtest and live
    ("live",),                                  # live runner, feeds, adapters, execution
    ("portfolio",),                             # portfolios of strategies, drift baskets
    ("audit",),                                 # static findings (audits portfolios too)
    ("summary", "summary_models", "compare", "explain", "diagram", "ruletest", "schema"),  # reports
    ("research",),                              # sweeps and walk-forward over many backtests
    ("reports",),                               # charts and HTML reports of runs and sweeps
    ("console",),                               # the operator console: REST API and pages over run dirs
    ("cli",),                                   # the command line (and every __main__)
]
RANK = {name: k for k, names in enumerate(LAYERS) for name in names}


@dataclass(frozen=True)
class Import:
    src: str     # importing module, dotted
    dst: str     # imported module, dotted (a submodule when ``from pkg import submodule``)
    name: str | None  # the name taken by ``from ... import name``
    file: str    # path relative to src/
    line: int
    where: str   # "module", "function" or "type-checking"

    def at(self) -> str:
        return f"{self.file}:{self.line}"


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str, src: Path = SRC) -> bool:
    base = src.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _context(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    where = "module"
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return "function"
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            where = "type-checking"
    return where


def imports(src: Path = SRC) -> list[Import]:
    """Every import of a trimtab module in ``src``/trimtab, resolved to absolute dotted names."""
    out: list[Import] = []
    for path in sorted((src / "trimtab").rglob("*.py")):
        mod = module_name(path, src)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        rel = str(path.relative_to(src.parent))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "trimtab":
                        out.append(Import(mod, alias.name, None, rel, node.lineno, _context(node, parents)))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "trimtab":
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    dst = sub if _is_module(sub, src) else target
                    out.append(Import(mod, dst, None if dst == sub else alias.name, rel, node.lineno,
                                      _context(node, parents)))
    return out


def layer_of(module: str) -> str:
    """``trimtab.engine.kernel`` -> ``engine``; any ``__main__`` -> ``cli``; ``trimtab`` -> ``trimtab``."""
    parts = module.split(".")
    if parts[-1] == "__main__":
        return "cli"
    return parts[1] if len(parts) > 1 else "trimtab"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # recursion depth is bounded by the module count (~200)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def package_graph(found: list[Import]) -> dict[str, set[str]]:
    g: dict[str, set[str]] = defaultdict(set)
    for i in found:
        a, b = layer_of(i.src), layer_of(i.dst)
        if a != b:
            g[a].add(b)
    return g


# --------------------------------------------------------------------------- the checks
def upward(found: list[Import]) -> list[str]:
    """One line per import statement that imports a higher layer."""
    bad = []
    for i in found:
        a, b = layer_of(i.src), layer_of(i.dst)
        if a == "trimtab" or b == "trimtab" or a == b:
            continue
        if RANK.get(b, -1) > RANK.get(a, -1):
            bad.append(f"{i.at()}: {i.src} ({a}) imports {i.dst} ({b}) [{i.where}]")
    return list(dict.fromkeys(bad))  # one line per import statement, not per imported name


def module_cycles(found: list[Import]) -> list[str]:
    """Each cycle between modules, then the imports that close it (file:line)."""
    g: dict[str, set[str]] = defaultdict(set)
    for i in found:
        if i.src != i.dst:
            g[i.src].add(i.dst)
    lines = []
    for comp in cycles(g):
        members = set(comp)
        lines.append(" <-> ".join(comp))
        lines += list(dict.fromkeys(f"    {i.at()}: {i.src} imports {i.dst} [{i.where}]" for i in found
                                    if i.src in members and i.dst in members and i.src != i.dst))
    return lines


def package_cycles(found: list[Import]) -> list[str]:
    """Each cycle between packages (possible only within one layer), then its imports."""
    lines = []
    for comp in cycles(package_graph(found)):
        lines.append(" <-> ".join(comp))
        lines += list(dict.fromkeys(f"    {i.at()}: {i.src} imports {i.dst}" for i in found
                                    if layer_of(i.src) in comp and layer_of(i.dst) in comp
                                    and layer_of(i.src) != layer_of(i.dst)))
    return lines


def private_imports(found: list[Import]) -> list[str]:
    """``from other_package... import _name``: one line each."""
    return [f"{i.at()}: {i.src} imports {i.name} from {i.dst}" for i in found
            if i.name and i.name.startswith("_") and not i.name.startswith("__")
            and layer_of(i.src) != layer_of(i.dst)]


# --------------------------------------------------------------------------- the tests
IMPORTS = imports()


def test_the_walk_sees_the_package():
    # A broken walk (wrong root, relative imports unresolved) would pass every check below.
    assert len({i.src for i in IMPORTS}) > 50
    assert any(i.src == "trimtab.engine.kernel" and i.dst == "trimtab.accounting.book" for i in IMPORTS)
    assert any(i.where == "function" for i in IMPORTS)


def test_every_package_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" and p.stem not in ("__init__", "__main__")) or (p / "__init__.py").is_file()}
    missing = sorted(names - set(RANK))
    assert not missing, f"place these in LAYERS of {Path(__file__).name}: {', '.join(missing)}"


def test_no_import_against_the_layering():
    bad = upward(IMPORTS)
    assert not bad, "imports against the layering (lower layers never import higher ones):\n" + "\n".join(bad)


def test_no_import_cycle_between_modules():
    found = module_cycles(IMPORTS)
    assert not found, "import cycles between modules:\n" + "\n".join(found)


def test_no_import_cycle_between_packages():
    found = package_cycles(IMPORTS)
    assert not found, "import cycles between packages:\n" + "\n".join(found)


def test_no_private_name_imported_across_packages():
    bad = private_imports(IMPORTS)
    assert not bad, "private names used across packages (make them public in the right layer):\n" + "\n".join(bad)


def test_the_checks_catch_what_they_claim(tmp_path):
    # A made-up package with one of each fault, the upward import hidden in a function.
    files = {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/feed.py": "def load():\n    from ..engine.kernel import Engine\n    return Engine\n",
        "engine/__init__.py": "",
        "engine/kernel.py": "from ..data import feed\nfrom ..data.feed import _secret\nclass Engine: ...\n",
        "engine/a.py": "from .b import x\n",
        "engine/b.py": "from . import a\nx = 1\n",
    }
    for name, text in files.items():
        (tmp_path / "src" / "trimtab" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / "trimtab" / name).write_text(text)
    found = imports(tmp_path / "src")
    assert upward(found) == ["src/trimtab/data/feed.py:2: trimtab.data.feed (data) imports trimtab.engine.kernel (engine) [function]"]
    heads = [line for line in module_cycles(found) if not line.startswith(" ")]
    assert heads == ["trimtab.data.feed <-> trimtab.engine.kernel", "trimtab.engine.a <-> trimtab.engine.b"]
    assert package_cycles(found)[0] == "data <-> engine"
    assert private_imports(found) == ["src/trimtab/engine/kernel.py:2: trimtab.engine.kernel imports _secret from trimtab.data.feed"]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []
    assert layer_of("trimtab.portfolio.__main__") == "cli"
    assert RANK["data"] < RANK["accounting"] < RANK["venues"] < RANK["planner"] < RANK["engine"] < RANK["live"] < RANK["cli"]


if __name__ == "__main__":
    g = package_graph(IMPORTS)
    for name in sorted(g, key=lambda n: (RANK.get(n, -1), n)):
        sys.stdout.write(f"{name} -> {', '.join(sorted(g[name], key=lambda n: (RANK.get(n, -1), n)))}\n")
