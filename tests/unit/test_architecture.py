"""The package's shape, read from its source with `ast` (nothing is imported).

Every `import` and `from … import` under warehouse/ counts, at module level or inside a
function (a function-local import still ties the two modules together; it only hides the
knot until the function runs). Each is resolved to the warehouse module or package it
names: `from warehouse.sql import queries` → warehouse.sql.queries, `from warehouse.sinks
import open_sinks` → warehouse.sinks (the package's __init__). Importing a submodule also
runs its package's __init__, but that implicit edge is not counted: a package that
re-exports its submodules would otherwise be a cycle with each of them.

Rules:
  * no import cycles between modules (the cycle is printed with file:line of each import);
  * nothing outside warehouse/cli imports warehouse.cli (the CLI is the top of the tree);
  * only warehouse/defs imports dagster;
  * no SQL built with f-strings outside warehouse/sql (identifiers come from allowlists,
    values are bound parameters): an f-string whose literal parts hold a statement keyword.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "warehouse"
SQL_KEYWORD = re.compile(r"\b(SELECT|INSERT|DELETE|CREATE|ALTER|DROP|UPDATE)\b")


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported warehouse module or package, or the top-level name of another package
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = modules()


def _resolve(name: str) -> str | None:
    """The longest warehouse module/package `name` starts with (`warehouse.sql.queries.load` → …queries)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from ..sql import y
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            names = [f"{base}.{a.name}" for a in node.names] if base.split(".")[0] == "warehouse" else [base]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            target = _resolve(name) if top == "warehouse" else top
            if target and target != module:
                yield Import(module, target, path, node.lineno)


ALL_IMPORTS = [imp for module, path in MODULES.items() for imp in imports(module, path)]


def graph() -> dict[str, dict[str, Import]]:
    """module → {imported warehouse module → its first import}."""
    g: dict[str, dict[str, Import]] = {m: {} for m in MODULES}
    for imp in ALL_IMPORTS:
        if imp.target in MODULES:
            g[imp.source].setdefault(imp.target, imp)
    return g


def strongly_connected(g: dict[str, dict[str, Import]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively; only components of two or more modules (no self-imports: skipped above)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    counter = 0
    for root in sorted(g):
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(g[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(comp)
    return out


def cycle_path(g: dict[str, dict[str, Import]], comp: set[str]) -> list[Import]:
    """One concrete cycle through the component: the shortest way from its first module back to it."""
    start = min(comp)
    prev: dict[str, Import] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w, imp in sorted(g[v].items()):
            if w not in comp:
                continue
            if w == start:
                path = [imp]
                while path[0].source != start:
                    path.insert(0, prev[path[0].source])
                return path
            if w not in prev:
                prev[w] = imp
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


def describe(path: list[Import]) -> str:
    return " → ".join([path[0].source, *(f"{i.target} ({i.where()})" for i in path)])


def test_the_reader_resolves_imports_the_way_python_does() -> None:
    """The resolver itself, on imports the code base uses (a wrong resolver finds no cycles)."""
    g = graph()
    assert "warehouse.cli.common" in g["warehouse.cli.main"]  # from warehouse.cli.common import X
    assert "warehouse.sql.engines" in g["warehouse.cli.data"]  # function-local: from warehouse.sql.engines import …
    assert "warehouse.analytics" in g["warehouse.cli.query"]  # from warehouse import analytics → the package
    assert "warehouse.sql.queries" in g["warehouse.cli.query"]  # from warehouse.sql import queries → the module
    demo = {"a": {"b": Import("a", "b", PACKAGE / "a.py", 1)}, "b": {"c": Import("b", "c", PACKAGE / "b.py", 2)},
            "c": {"a": Import("c", "a", PACKAGE / "c.py", 3)}, "d": {"a": Import("d", "a", PACKAGE / "d.py", 4)}}  # fmt: skip
    assert strongly_connected(demo) == [{"a", "b", "c"}]
    assert (
        describe(cycle_path(demo, {"a", "b", "c"}))
        == "a → b (warehouse/a.py:1) → c (warehouse/b.py:2) → a (warehouse/c.py:3)"
    )


def test_no_import_cycles() -> None:
    g = graph()
    cycles = [describe(cycle_path(g, c)) for c in strongly_connected(g)]
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_nothing_below_the_cli_imports_it() -> None:
    bad = [f"{i.where()} imports {i.target}" for i in ALL_IMPORTS
           if i.target.startswith("warehouse.cli") and not i.source.startswith("warehouse.cli")]  # fmt: skip
    assert not bad, bad


def test_cli_command_modules_import_only_common_and_output() -> None:
    """main.py assembles the command modules; they share common.py and output.py, nothing else of cli/."""
    shared = {"warehouse.cli", "warehouse.cli.common", "warehouse.cli.output"}
    bad = [f"{i.where()} imports {i.target}" for i in ALL_IMPORTS
           if i.source.startswith("warehouse.cli.") and i.source != "warehouse.cli.main"
           and i.target.startswith("warehouse.cli") and i.target not in shared]  # fmt: skip
    assert not bad, bad


def test_only_defs_imports_dagster() -> None:
    bad = [f"{i.where()} imports {i.target}" for i in ALL_IMPORTS
           if (i.target == "dagster" or i.target.startswith("dagster_")) and not i.source.startswith("warehouse.defs")]  # fmt: skip
    assert not bad, bad


def fstring_sql() -> dict[str, list[str]]:
    """path → `line: text` of each f-string outside warehouse/sql whose literal parts hold a statement keyword."""
    out: dict[str, list[str]] = {}
    for path in MODULES.values():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("warehouse/sql/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
                if SQL_KEYWORD.search(text):
                    out.setdefault(rel, []).append(f"{node.lineno}: {text[:80]!r}")
    return out


def test_the_fstring_sql_check_finds_what_it_should() -> None:
    sample = ast.parse('f"SELECT * FROM wh.{table}"; f"selected {n} rows"; f"INSERT INTO {t} VALUES"')
    hits = [n for n in ast.walk(sample) if isinstance(n, ast.JoinedStr)
            and SQL_KEYWORD.search("".join(v.value for v in n.values if isinstance(v, ast.Constant)))]  # fmt: skip
    assert len(hits) == 2


def test_no_sql_built_with_fstrings_outside_sql() -> None:
    found = fstring_sql()
    assert not found, "\n".join(f"{p}:{hit}" for p, hits in sorted(found.items()) for hit in hits)


ENGINE_CLASSES = {"DuckDBEngine", "ClickHouseEngine", "QuestDBEngine"}


def test_no_isinstance_on_engine_classes_outside_the_adapters() -> None:
    """Callers ask capability flags (Engine.transactional, …), never which class they hold."""
    found = []
    for path in MODULES.values():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("warehouse/sql/engines/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
                names = (
                    {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)} if len(node.args) > 1 else set()
                )
                if names & ENGINE_CLASSES:
                    found.append(f"{rel}:{node.lineno}")
    assert not found, found


def test_no_environment_reads_outside_the_settings() -> None:
    """Configuration comes from warehouse/config.py (pydantic-settings); nothing else reads os.environ."""
    found = []
    for path in MODULES.values():
        rel = path.relative_to(ROOT).as_posix()
        if rel == "warehouse/config.py":
            continue
        text = path.read_text(encoding="utf-8")
        for lineno, line in enumerate(text.splitlines(), 1):
            if ("os.environ.get(" in line or "os.getenv(" in line or "os.environ[" in line) and "# env: " not in line:
                found.append(f"{rel}:{lineno}: {line.strip()[:90]}")
    assert not found, "\n".join(found)
