"""The house in three layers (docs/architecture.md), checked on the code itself.

Every import of the package, function-local ones included, is read with
``ast``: none may point to a higher layer, and the module graph has no
circle. No module of the package, its experiments or its benchmarks assigns
to another module's attribute (a global that another module sets): they hand
parts in instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jax_translate"

# The layers, bottom to top, by module prefix; a module's layer is its longest prefix.
LAYERS = {
    # the vocabulary: schema, catalog, conventions, and the utilities everything uses
    "jax_translate": 0,
    # the pure libraries, which know nothing of run folders
    "jax_translate.data": 1,
    "jax_translate.models": 1,
    "jax_translate.training": 2,
    # how a sweep runs (engine, devices, checkpoints), over what a step computes
    "jax_translate.runtime": 3,
    "jax_translate.evaluation": 3,
    # the jobs, which own run folders, and the command that calls them
    "jax_translate.jobs": 4,
    "jax_translate.cli": 4,
}
LAYER_NAMES = {0: "vocabulary", 1: "data/models", 2: "training", 3: "runtime/evaluation",
               4: "jobs"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def imported_modules(module: str, tree: ast.AST) -> set[str]:
    """The package's modules ``module`` imports, anywhere in its code."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:  # a name inside a module: the module
                name = name.rpartition(".")[0]
            if name.startswith("jax_translate") and name != module:
                found.add(name)
    return found


GRAPH = {m: imported_modules(m, ast.parse(p.read_text())) for m, p in MODULES.items()}


def test_the_graph_is_read():
    """The reader sees what it should: real arrows, local imports included."""
    assert "jax_translate.training.methods" in GRAPH["jax_translate.jobs.sweep"] or \
        "jax_translate.training.methods" in GRAPH["jax_translate.jobs.run_folder"]
    assert "jax_translate.config" in GRAPH["jax_translate.training.members"]
    assert "jax_translate.data.builders" in GRAPH["jax_translate.data.dataset"]  # a local import
    assert layer("jax_translate.catalog") == 0 and layer("jax_translate.jobs.sweep") == 4


def test_no_import_points_up_a_layer():
    upward = [f"{m} ({LAYER_NAMES[layer(m)]}) -> {t} ({LAYER_NAMES[layer(t)]})"
              for m, targets in sorted(GRAPH.items()) for t in sorted(targets)
              if layer(t) > layer(m)]
    assert not upward, "imports up a layer:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each strongly connected group of modules (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v); on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop(); on_stack.discard(w); group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_no_import_circle():
    circles = _cycles(GRAPH)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _module_names(tree: ast.AST, folder: Path) -> set[str]:
    """Names a file binds to modules: of the package, or its own siblings (benchmarks)."""
    siblings = {p.stem for p in folder.glob("*.py")}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("jax_translate") or a.name in siblings:
                    names.add((a.asname or a.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jax_translate"):
            for a in node.names:
                if f"{node.module}.{a.name}" in MODULES:
                    names.add(a.asname or a.name)
    return names


def foreign_assignments(path: Path) -> list[str]:
    """``module.attr = ...``, ``module.attr[k] = ...`` and ``type(x).attr = ...`` in a file,
    as ``file:line: target``."""
    tree = ast.parse(path.read_text())
    modules = _module_names(tree, path.parent)
    found = []
    for node in ast.walk(tree):
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        for target in targets:
            while isinstance(target, ast.Subscript):
                target = target.value
            if not isinstance(target, ast.Attribute):
                continue
            owner = target.value
            if ((isinstance(owner, ast.Name) and owner.id in modules)
                    or (isinstance(owner, ast.Call) and getattr(owner.func, "id", "") == "type")):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(target)}")
    return found


SOURCES = sorted([*PACKAGE.rglob("*.py"), *(ROOT / "experiments").rglob("*.py"),
                  *(ROOT / "benchmarks").glob("*.py"), ROOT / "tests" / "conftest.py"])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_sets_another_modules_attribute(path):
    assert not foreign_assignments(path)


def test_the_assignment_finder_finds_a_patch(tmp_path):
    (tmp_path / "sibling.py").write_text("")
    patch = tmp_path / "patch.py"
    patch.write_text("from jax_translate.training import methods\nimport sibling\n"
                     "methods._update = None\nsibling.OVERRIDES['x'] = 1\n"
                     "type(m).generator_net = property(lambda self: None)\nlocal = {}\n"
                     "local['x'] = 1\nmethods.Method(cfg).cfg\n")
    assert [f.split(": ")[1] for f in foreign_assignments(patch)] == [
        "methods._update", "sibling.OVERRIDES", "type(m).generator_net"]


def test_the_training_step_and_the_runtime_live_apart():
    """Issue 38: training/ holds what a step computes, runtime/ how a sweep runs."""
    runtime = {p.stem for p in (PACKAGE / "runtime").glob("*.py")} - {"__init__"}
    assert {"engine", "sharding", "distributed", "checkpoints", "eta", "flops"} <= runtime
    assert not runtime & {p.stem for p in (PACKAGE / "training").glob("*.py")}
    assert not any(t.startswith("jax_translate.runtime") for m, targets in GRAPH.items()
                   if m.startswith("jax_translate.training") for t in targets)


def test_train_sweep_fits_in_a_head():
    """Issue 38: the sweep job stays a short function over the library (docstring
    included)."""
    tree = ast.parse((PACKAGE / "jobs" / "sweep.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train_sweep")
    assert node.end_lineno - node.lineno + 1 <= 60
