"""The package's stages, bottom to top: each module imports only its own stage and the stages below it,
there are no import cycles, no module uses another's private names, and the commands that only read
the store start without the heavy libraries.

The map is built from ``STAGES`` and the files on disk, so a module outside every stage fails, and
imports inside functions count as much as those at the top of a file.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mmwork"
# bottom to top; a stage may import itself and those before it. The package's own __init__ (lazy
# shortcuts) and __main__ sit above them all, and no module imports them.
STAGES = ["core", "store", "datasets", "features", "search", "models", "evaluation", "apps", "cli"]
TOP = {"mmwork", "mmwork.__main__"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _stage(module: str) -> int | None:
    """The position of ``module``'s stage in STAGES (len(STAGES) for the top), None if it has none."""
    if module in TOP:
        return len(STAGES)
    head = module.split(".")[1]
    return STAGES.index(head) if head in STAGES else None


def _resolve(module: str, name: str | None) -> str:
    """The mmwork module an import names: ``from mmwork.search import knn`` -> ``mmwork.search.knn``."""
    if name and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    return module


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported mmwork module, line) for every import in the file, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "mmwork"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] == "mmwork":
                found += [(_resolve(base, alias.name), node.lineno) for alias in node.names]
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_stage():
    assert not [m for m in MODULES if _stage(m) is None], f"place these modules in one of {STAGES}"


@pytest.mark.parametrize("module", sorted(set(MODULES) - TOP))
def test_imports_go_only_downward(module):
    mine = _stage(module)
    bad = [f"line {line}: {target}" for target, line in GRAPH[module]
           if target in TOP or (_stage(target) or 0) > mine]
    assert not bad, f"{module} ({STAGES[mine]}) imports from above or from the mmwork facade: {bad}"


def test_no_import_cycles():
    graph = {m: {t for t, _ in GRAPH[m] if t in MODULES and t != m} for m in MODULES}
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def _private_uses(module: str, path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    aliases = {}  # local name -> the mmwork module it is bound to
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mmwork") and not node.level:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    bad.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                target = _resolve(node.module, alias.name)
                if target in MODULES:
                    aliases[alias.asname or alias.name] = target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mmwork") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and aliases[node.value.id] != module and node.attr.startswith("_") and not node.attr.startswith("__")):
            bad.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return bad


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_cross_modules(module):
    bad = _private_uses(module, MODULES[module])
    assert not bad, f"{module} uses another module's private names: {bad}"


def test_the_layer_test_sees_what_it_guards(tmp_path):
    """The checks above would catch an upward import inside a function and a private name."""
    source = "def f():\n    from mmwork.apps import demo\n    from mmwork.search.knn import _Pool\n    return demo\n"
    path = tmp_path / "fake.py"
    path.write_text(source)
    assert ("mmwork.apps.demo", 2) in _imports("mmwork.core.fake", path)
    assert _private_uses("mmwork.core.fake", path) == ["line 3: from mmwork.search.knn import _Pool"]


HEAVY = ("torch", "dask", "sklearn", "scipy")
PROBE = ("import sys\nfrom mmwork.cli import main\n"
         "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
         "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & set(%r)))\n")


def _run(args: list[str], env: dict) -> tuple[str, set[str]]:
    """The command's output, and which of the heavy libraries (and pandas) it imported."""
    out = subprocess.run([sys.executable, "-c", PROBE % ((HEAVY + ("pandas",)),), *args], capture_output=True,
                         text=True, env=env, timeout=120)
    *printed, loaded = out.stdout.splitlines() or [""]
    assert loaded.startswith("LOADED"), out.stdout + out.stderr
    return "\n".join(printed), set(ast.literal_eval(loaded[len("LOADED "):]))


@pytest.fixture
def tiny_store(tmp_path):
    import os

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    folder = tmp_path / "processed" / "tiny"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"item_id": ["a", "b", "c"], "title": ["A", "B", "C"]}), folder / "items.parquet")
    vectors = np.eye(3, 4, dtype=np.float32) + 0.1
    (folder / "features").mkdir()
    pq.write_table(pa.table({"item_id": ["a", "b", "c"],
                             "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 4)}),
                   folder / "features" / "text.parquet")
    return os.environ | {"MMWORK_DATA": str(tmp_path)}


def test_query_and_similar_start_without_the_heavy_libraries(tiny_store):
    """They import no model or cluster library. pandas is the one exception, and not by choice:
    pyarrow imports it when it is installed, at the first array it builds."""
    printed, loaded = _run(["query", "tiny", "items", "--limit", "2", "--json"], tiny_store)
    assert [row["title"] for row in json.loads(printed)] == ["A", "B"]
    assert loaded <= {"pandas"}
    printed, loaded = _run(["similar", "tiny", "a", "--features", "text:vector", "--k", "1", "--json"], tiny_store)
    assert [(row["item_id"], row["title"]) for row in json.loads(printed)] == [("b", "B")]  # b, c tie: by id
    assert loaded <= {"pandas"}
    printed, _ = _run(["similar", "tiny", "a", "--features", "text:vector", "--k", "2"], tiny_store)
    assert printed.split("\n")[1].split() == ["1", "b", "0.193548", "B"]  # cos = 0.24 / 1.24
