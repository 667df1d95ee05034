"""The packages' layering: no import cycle inside ``tasks/``, and ``models/`` free of data code.

Imports are read from the source (``ast``), counting those inside functions and
``importlib.import_module`` calls: a name built at run time counts as importing every
module of its package. What may import what:

* ``models/`` imports neither ``tasks/`` nor ``pretrain_lm/``: a model learns what it must
  check of a task from the ``TaskInfo`` handed to ``check_task``;
* ``tasks/`` imports of ``models/`` only ``models.characters`` (ELMo's character ids, the
  input format the character CNNs own), and nothing of ``pretrain_lm/``;
* inside ``tasks/`` the imports form no cycle: the registry of named tasks imports the
  family modules, which look their tasks up in ``tasks.lookup``;
* the library ``pretrain_lm/`` does not import its tools (``pretrain_lm/tools/``), except
  ``pretrained.py``, which converts HF / TF BERT checkpoints with ``tools.interop``.
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _modules(package: str) -> dict[str, str]:
    folder = os.path.join(ROOT, *package.split("."))
    return {package if f == "__init__.py" else f"{package}.{f[:-3]}": os.path.join(folder, f)
            for f in sorted(os.listdir(folder)) if f.endswith(".py")}


def _all_modules() -> set[str]:
    return {m for package in ("models", "tasks", "pretrain_lm", "pretrain_lm.tools",
                              "benchmarks")
            for m in _modules(package)}


def _imports(module: str, path: str, known: set[str]) -> set[str]:
    """Every module ``module`` imports: ``from a import b`` is ``a.b`` if that is a module
    in ``known``, else ``a``; ``import_module`` of a computed name is ``<package>.*``."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            names |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                      for a in node.names}
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args):
            arg = node.args[0]
            names.add(arg.value if isinstance(arg, ast.Constant) else f"{package}.*")
    return names


def _graph(package: str) -> dict[str, set[str]]:
    modules, known = _modules(package), _all_modules()
    graph = {}
    for module, path in modules.items():
        deps = set()
        for name in _imports(module, path, known):
            if name == f"{package}.*":
                deps |= set(modules)
            elif name in modules:
                deps.add(name)
        graph[module] = deps - {module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_cycles_through_function_level_imports():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    graph = _graph("tasks")
    assert "tasks.registry" in graph["tasks"]  # imported inside a function
    assert {"tasks.glue", "tasks.tagging"} <= graph["tasks.registry"]


def test_tasks_has_no_import_cycle():
    cycle = _cycle(_graph("tasks"))
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("package,allowed", [
    ("models", set()),
    ("tasks", {"models.characters"}),
])
def test_packages_import_only_what_their_layer_may(package, allowed):
    forbidden = {"models": ("tasks", "pretrain_lm", "benchmarks"),
                 "tasks": ("models", "pretrain_lm", "benchmarks")}[package]

    known = _all_modules()
    wrong = {}
    for module, path in _modules(package).items():
        bad = sorted(n for n in _imports(module, path, known)
                     if n.split(".")[0] in forbidden and n not in allowed)
        if bad:
            wrong[module] = bad
    assert not wrong, f"imports across the layers: {wrong}"


def test_the_library_does_not_import_its_tools():
    known = _all_modules()
    assert "pretrain_lm.tools.reproduce" in known
    wrong = {}
    for module, path in _modules("pretrain_lm").items():
        tools = {n for n in _imports(module, path, known)
                 if n.startswith("pretrain_lm.tools")}
        if module == "pretrain_lm.pretrained":
            tools -= {"pretrain_lm.tools.interop"}
        if tools:
            wrong[module] = sorted(tools)
    assert not wrong, f"library modules importing tools: {wrong}"
