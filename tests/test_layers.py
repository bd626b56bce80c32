"""The package's layers import downwards only, and no module imports itself round a cycle.

    version, progress, locking  <  artifacts  <  config  <  data, models  <  approaches  <  analysis  <  study  <  cli

A module may import its own subpackage and any lower layer; `data` and `models` stand side by side and do not
import each other. `llmclf/__init__.py` is the lazy facade over everything and is left out.
"""

import ast
from pathlib import Path

import llmclf

PACKAGE = Path(llmclf.__file__).resolve().parent
RANK = {"version": 0, "progress": 0, "locking": 0, "artifacts": 0.25, "config": 0.5,
        "data": 1, "models": 1, "approaches": 2, "analysis": 3, "study": 4, "cli": 5}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        if rel.parts == ("__init__",):
            continue
        yield ".".join(("llmclf", *rel.parts)).removesuffix(".__init__"), path


def _imports(module: str, path: Path) -> set[str]:
    """Every llmclf module imported anywhere in the file (top level or inside functions), absolute names."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "llmclf"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "llmclf":
                target = node.module
            else:
                continue
            out.add(target)
            if node.module is None or node.level and node.module is None:
                out |= {f"{target}.{a.name}" for a in node.names}
    return {t for t in out if t != "llmclf"}


def _layer(module: str) -> str:
    return module.split(".")[1]


def test_every_module_has_a_layer():
    unknown = sorted({_layer(m) for m, _ in _modules()} - set(RANK))
    assert not unknown, f"modules outside the layer map {RANK}: {unknown}; add them to the map in this test"


def test_imports_go_down_only():
    upward = []
    for module, path in _modules():
        mine = _layer(module)
        for target in _imports(module, path):
            theirs = _layer(target)
            if theirs == mine:
                continue
            if RANK[theirs] >= RANK[mine]:
                upward.append(f"{module} imports {target} ({mine} -> {theirs})")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = {m: set() for m, _ in _modules()}
    for module, path in _modules():
        graph[module] = {t for t in _imports(module, path) if t in graph and t != module}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_check_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ..study.runner import run_study\n")
    assert _imports("llmclf.data.bad", bad) == {"llmclf.study.runner"}
