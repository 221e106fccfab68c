"""The library's structure: the import graph follows the data-flow layers, only the store
writes SQL, and importing the alert layer does not load DuckDB.

Layers, lowest first (a module may import its own layer and the ones below, never above):

    errors, events, redact, _figure  ->  data  ->  features, signals  ->  models, backtest
    ->  store  ->  monitoring, risk  ->  alerts  ->  live  ->  service  ->  pipeline, cli, testing

``monitoring`` and ``risk`` decide what is worth an alert and build ``Alert`` records (plain
values from ``events``, the bottom layer); they hand them to an ``AlertDispatcher`` they are
given. ``alerts`` (formats, sinks, the manager) sits above them and delivers (recording what
it sent through the store). Imports inside functions count: a lazy import is still a
dependency. A subpackage not in the table fails the test until it is given a layer.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "alphatrade_lab"

LAYERS: dict[str, int] = {
    "": 0, "errors": 0, "events": 0, "redact": 0, "_figure": 0,
    "data": 1,
    "features": 2, "signals": 2, "sentiment": 2,
    "models": 3, "backtest": 3, "rl": 3,
    "store": 4,
    "monitoring": 5, "risk": 5,
    "alerts": 6,
    "live": 7,
    "service": 8,
    "pipeline": 9, "cli": 9, "testing": 9,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _component(module: str) -> str:
    """The layer key of a module: its subpackage or top-level module ('' for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _resolve(name: str) -> str:
    """``alphatrade_lab.x.y`` (a module, or a name in one) as the module it loads."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str, tree: ast.AST) -> list[tuple[str, int]]:
    """Every alphatrade_lab module ``module`` imports, with the line: ``import``,
    ``from ... import`` (relative too, at any depth in the file), ``atl.<sub>`` attribute
    access on an imported ``alphatrade_lab``, and ``import_module("alphatrade_lab...")``."""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "alphatrade_lab":
                    roots.add(alias.asname or alias.name)
                if alias.name.startswith("alphatrade_lab"):
                    found.append((_resolve(alias.name), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "alphatrade_lab":
                continue
            for alias in node.names:
                found.append((_resolve(f"{source}.{alias.name}"), node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", None)) == "import_module" and node.args:
            arg = node.args[0]
            text = arg.value if isinstance(arg, ast.Constant) else None
            if isinstance(text, str) and text.startswith("alphatrade_lab."):
                found.append((_resolve(text), node.lineno))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in roots):
            found.append((_resolve(f"alphatrade_lab.{node.attr}"), node.lineno))
    return [(m, line) for m, line in found if m]


GRAPH = {m: imports_of(m, ast.parse(p.read_text(encoding="utf-8"), str(p)))
         for m, p in MODULES.items()}


def test_every_subpackage_has_a_layer():
    unknown = sorted({_component(m) for m in MODULES} - set(LAYERS))
    assert not unknown, (f"give {unknown} a layer in LAYERS (tests/test_architecture.py) and "
                         "in the design's layer list")


def test_the_graph_sees_lazy_relative_and_attribute_imports():
    src = ("import alphatrade_lab as atl\n"
           "def f():\n"
           "    from alphatrade_lab.store import LabStore\n"
           "    from ..alerts import manager\n"
           "    return atl.monitoring.psi\n")
    got = {m for m, _ in imports_of("alphatrade_lab.backtest.portfolio", ast.parse(src))}
    assert got == {"alphatrade_lab", "alphatrade_lab.store", "alphatrade_lab.alerts.manager",
                   "alphatrade_lab.monitoring"}
    graph = {"alphatrade_lab.backtest.portfolio": imports_of(
        "alphatrade_lab.backtest.portfolio", ast.parse(src))}
    assert [t for _, t, _ in upward_imports(graph)] == [
        "alphatrade_lab.store", "alphatrade_lab.alerts.manager", "alphatrade_lab.monitoring"]


def upward_imports(graph: dict[str, list[tuple[str, int]]]) -> list[tuple[str, str, int]]:
    """``(module, target, line)`` of every import of a higher layer, in line order."""
    out = []
    for module, targets in graph.items():
        here = _component(module)
        if here == "":
            continue  # the root package loads subpackages on attribute access, by design
        out += [(module, t, line) for t, line in sorted(set(targets), key=lambda x: x[::-1])
                if LAYERS.get(_component(t), -1) > LAYERS.get(here, 99)]
    return out


def test_no_module_imports_a_higher_layer():
    upward = [f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} ({_component(m)}, layer "
              f"{LAYERS[_component(m)]}) imports {t} ({_component(t)}, layer "
              f"{LAYERS[_component(t)]})" for m, t, line in upward_imports(GRAPH)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_subpackages_form_no_cycle():
    edges: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        a = _component(module)
        if a == "":
            continue
        edges.setdefault(a, set()).update(
            b for b in (_component(t) for t, _ in targets) if b not in ("", a))
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])


_WRITE_SQL = re.compile(r"^\s*\(?\s*(INSERT|UPDATE|DELETE|MERGE|UPSERT|TRUNCATE|CREATE|DROP"
                        r"|ALTER|COPY|ATTACH|DETACH|IMPORT|EXPORT)\b", re.IGNORECASE)
_SQL_CALLS = {"execute", "executemany", "sql", "query", "register"}
# read-only DuckDB access: the safe connection (settings, SELECTs) and the bar loader
_SQL_READERS = {"alphatrade_lab.data.duckdb_io", "alphatrade_lab.data.io"}


def _strings(node: ast.AST) -> list[str]:
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.append(n.value)
        elif isinstance(n, ast.JoinedStr):
            out.append("".join(v.value for v in n.values
                               if isinstance(v, ast.Constant) and isinstance(v.value, str)))
    return out


def test_sql_is_written_only_by_the_store():
    offenders = []
    for module, path in MODULES.items():
        if _component(module) == "store":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _SQL_CALLS):
                continue
            statements = [s for arg in node.args for s in _strings(arg)]
            writes = [s for s in statements if _WRITE_SQL.match(s)]
            if writes:
                offenders.append(f"{where}:{node.lineno} runs {writes[0].strip()[:40]!r}")
            elif (module not in _SQL_READERS and node.func.attr != "query"
                  and any(re.search(r"\bSELECT\b|\bFROM\b", s, re.IGNORECASE)
                          for s in statements)):
                offenders.append(f"{where}:{node.lineno} runs SQL outside the store and the "
                                 "read-only loaders")
        for imp in ast.walk(tree):
            if (isinstance(imp, ast.Import | ast.ImportFrom) and module not in _SQL_READERS
                    and any((getattr(imp, "module", None) or a.name).split(".")[0]
                            in ("duckdb", "psycopg", "psycopg2", "sqlalchemy")
                            for a in imp.names)):
                offenders.append(f"{where}:{imp.lineno} imports a database driver; write "
                                 "through LabStore.record_* instead")
    assert not offenders, "\n".join(offenders)


def test_the_sql_check_catches_a_write():
    tree = ast.parse('con.execute(f"INSERT INTO trades SELECT * FROM {view}")')
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call))
    assert _WRITE_SQL.match(_strings(call.args[0])[0])
    assert not _WRITE_SQL.match("SELECT * FROM trades WHERE note = 'insert'")


@pytest.mark.parametrize("module", ["alphatrade_lab.alerts", "alphatrade_lab.monitoring",
                                    "alphatrade_lab.risk"])
@pytest.mark.slow
def test_importing_a_layer_above_the_store_does_not_load_duckdb(module):
    code = (f"import sys, {module}\n"
            "loaded = sorted(m for m in sys.modules\n"
            "                if m == 'duckdb' or m.startswith('alphatrade_lab.store'))\n"
            "print(loaded)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]", f"import {module} loaded {out.stdout.strip()}"


def test_kernel_modules_are_imported_as_nb_or_subpackage_nb():
    """One naming rule for kernel modules: a subpackage's own ``kernels`` is ``nb``, another
    subpackage's is ``<subpackage>_nb`` (``features_nb``, ``backtest_nb``)."""
    wrong = []
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("alphatrade_lab")):
                continue
            for alias in node.names:
                if alias.name != "kernels":
                    continue
                want = "nb" if node.module == package else node.module.rpartition(".")[2] + "_nb"
                if alias.asname != want:
                    wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports "
                                 f"{node.module}.kernels as {alias.asname}, not {want}")
    assert not wrong, "\n".join(wrong)
