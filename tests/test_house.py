"""The house rules of the package (issue 16), checked on the source tree itself:

- every module of ``src/usrad`` has a row in docs/architecture.md's module table and a layer in its layer table,
  and nothing is listed there that does not exist;
- imports point one way: a module imports only from its own layer or lower ones, with no import cycle;
- no ``usrad`` import inside a function (the way cycles are dodged), no private name used across modules;
- no module over 400 lines and no function over 80 lines;
- every module has a docstring saying its concept.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "usrad"
DOC = ROOT / "docs" / "architecture.md"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), filename=str(path)) for name, path in MODULES.items()}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _absolute(name: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` in module ``name`` reads from."""
    if not node.level:
        return node.module or ""
    base = name.split(".") if _is_package(name) else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str, tree: ast.AST):
    """(node, imported usrad module) for every import of a usrad module in ``tree``; ``from pkg import mod``
    counts as importing ``pkg.mod`` when that is a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "usrad":
                    yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(name, node)
            if source.split(".")[0] != "usrad":
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                yield node, full if full in MODULES else source


def _function_nodes(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _doc_rows(heading: str) -> list[list[str]]:
    """The table rows (cells) of the docs/architecture.md section ``heading``."""
    text = DOC.read_text()
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, f"docs/architecture.md has no section '## {heading}'"
    rows = [line for line in match.group(1).splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    return [c for c in cells[2:]]  # header and separator rows


def _layers() -> dict[str, int]:
    """Module (or package prefix) -> layer number, from the section '## Layers' (rows: ``| n | name | modules |``,
    modules as `usrad.x`, a package's submodules as `usrad.x.*`)."""
    out = {}
    for cells in _doc_rows("Layers"):
        for module in re.findall(r"`(usrad[\w.*]*)`", cells[2]):
            out[module] = int(cells[0])
    return out


def _layer_of(module: str, layers: dict[str, int]) -> int | None:
    if module in layers:
        return layers[module]
    parts = module.split(".")
    for k in range(len(parts) - 1, 0, -1):
        star = ".".join(parts[:k]) + ".*"
        if star in layers:
            return layers[star]
    return None


def test_every_module_has_one_row_in_the_architecture_doc():
    listed = [re.findall(r"`(usrad[\w.]*)`", cells[0]) for cells in _doc_rows("Modules")]
    names = [m[0] for m in listed if m]
    assert sorted(set(MODULES) - set(names)) == [], "modules without a row in docs/architecture.md ## Modules"
    assert sorted(set(names) - set(MODULES)) == [], "rows of docs/architecture.md ## Modules naming no module"
    assert len(names) == len(set(names)), "a module has two rows"


def test_every_module_has_a_layer_and_imports_point_down():
    layers = _layers()
    assert sorted(m for m in MODULES if _layer_of(m, layers) is None) == [], "modules without a layer"
    assert sorted(m for m in layers if m.rstrip(".*") not in MODULES) == [], "layers name modules that don't exist"
    upward = []
    for name, tree in TREES.items():
        for node, target in _imports(name, tree):
            if target in MODULES and not name.startswith(target + ".") and target != "usrad":
                if _layer_of(target, layers) > _layer_of(name, layers):
                    upward.append(f"{name} (layer {_layer_of(name, layers)}) imports {target} "
                                  f"(layer {_layer_of(target, layers)}), line {node.lineno}")
    assert upward == []


def test_no_import_cycle():
    graph = {name: set() for name in MODULES}
    for name, tree in TREES.items():
        for node in tree.body:  # module-level imports only: the ones that run when the module is imported
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for _, target in _imports(name, ast.Module(body=[node], type_ignores=[])):
                    if target in MODULES and target != name and not name.startswith(target + "."):
                        graph[name].add(target)
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


#: Modules allowed to import inside functions, and why. Only the command line, which nothing imports (so no cycle
#: can hide there): each command imports its modules when it runs, so `usrad --help` need not load scikit-learn.
LAZY_IMPORTS = {"usrad.cli": "each command imports what it runs; --help and --version stay fast"}


def test_no_usrad_import_inside_a_function():
    local = [f"{name}.{fn.name} line {node.lineno}: {target}"
             for name, tree in TREES.items() if name not in LAZY_IMPORTS for fn in _function_nodes(tree)
             for node, target in _imports(name, fn)]
    assert local == []


def test_the_command_line_starts_without_the_heavy_libraries():
    """What the cli's exception buys: importing it loads none of the modelling or imaging libraries."""
    code = ("import sys, usrad.cli; heavy = sorted(m for m in ('sklearn', 'xgboost', 'radiomics', 'matplotlib', "
            "'SimpleITK') if m in sys.modules); print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(SRC)})
    assert out.stdout.strip() == ""
    assert not any(m in LAZY_IMPORTS for m in _imported_by_others()), "a lazily importing module is imported"


def test_reading_the_workflow_loads_no_modelling_or_imaging_library():
    """Every Snakemake parse (the workstation's and every cluster job's) reads rules/common.smk and validates the
    config: with the default config it loads none of the heavy libraries (3.0 s instead of 7.3 s per parse)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "snakemake", "--list-rules"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "evaluate_task" in proc.stdout, proc.stderr[-2000:]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "usrad.config" in loaded  # the config was validated
    assert loaded & {"sklearn", "xgboost", "radiomics", "matplotlib", "SimpleITK", "usrad.plan", "usrad.models"} == set()


def _imported_by_others() -> set[str]:
    return {target for name, tree in TREES.items() for _, target in _imports(name, tree) if target != name}


def test_no_private_name_across_modules():
    found = []
    for name, tree in TREES.items():
        imported_modules = {}
        for node, target in _imports(name, tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{name} line {node.lineno}: from {target} import {alias.name}")
                    if f"{_absolute(name, node)}.{alias.name}" in MODULES:
                        imported_modules[alias.asname or alias.name] = target
            else:
                for alias in node.names:
                    imported_modules[alias.asname or alias.name.split(".")[0]] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in imported_modules and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.append(f"{name} line {node.lineno}: {node.value.id}.{node.attr}")
    assert found == []


def test_modules_and_functions_are_short():
    long_modules = {name: n for name, path in MODULES.items()
                    if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    long_functions = {f"{name}.{fn.name}": fn.end_lineno - fn.lineno + 1 for name, tree in TREES.items()
                      for fn in _function_nodes(tree) if fn.end_lineno - fn.lineno + 1 > MAX_FUNCTION_LINES}
    assert long_modules == {}
    assert long_functions == {}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_says_its_concept(name):
    assert ast.get_docstring(TREES[name]), f"{MODULES[name]} has no module docstring"


def test_the_checks_can_fail(tmp_path):
    """The AST helpers find what they look for (a check that cannot fail is a defect)."""
    tree = ast.parse("import usrad.models\nfrom .x import _private\ndef f():\n    from usrad import cohort\n")
    MODULES_BACKUP = dict(MODULES)
    MODULES["usrad.fake"] = tmp_path / "fake.py"
    try:
        found = [target for _, target in _imports("usrad.fake", tree)]
        local = [target for fn in _function_nodes(tree) for _, target in _imports("usrad.fake", fn)]
    finally:
        MODULES.clear()
        MODULES.update(MODULES_BACKUP)
    assert found == ["usrad.models", "usrad.x", "usrad.cohort"]
    assert local == ["usrad.cohort"]
