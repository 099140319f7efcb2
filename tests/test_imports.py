"""The package's import graph, read from the source (AST): no cycles, and torch only where models
run.

Every module of every installed package (``[tool.setuptools] packages`` in pyproject.toml,
including ``imagenet_hard.builders`` which lives in ``builders/``) is parsed; an edge is an import
of another ``imagenet_hard`` module. Module-level imports run when a module is imported; imports in
a function body run when it is called; ``if TYPE_CHECKING:`` blocks never run and are skipped.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Where torch may be imported at module level: judging, scoring and model code.
TORCH_ALLOWED = ("imagenet_hard.judges", "imagenet_hard.score", "imagenet_hard.models",
                 "imagenet_hard.submissions", "imagenet_hard.mining.engine",
                 "imagenet_hard.mining.decode",
                 "imagenet_hard.corruptions.torch_backend")


def _modules() -> dict[str, tuple[Path, bool]]:
    """module name → (file, is a package) for every module the distribution installs."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")   # tomllib needs Python 3.11
    listed = re.search(r"^packages\s*=\s*\[(.*?)\]", text, re.M | re.S).group(1)
    out = {}
    for package in re.findall(r'"([\w.]+)"', listed):
        spec = importlib.util.find_spec(package)
        assert spec and spec.submodule_search_locations, f"{package} is not importable"
        folder = Path(next(iter(spec.submodule_search_locations)))
        for file in sorted(folder.glob("*.py")):
            name = package if file.stem == "__init__" else f"{package}.{file.stem}"
            out[name] = (file, file.stem == "__init__")
    return out


MODULES = _modules()


def _target(module: str, is_pkg: bool, node) -> list[str]:
    """The imagenet_hard modules an import statement names (submodules where they exist)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = module.split(".") if is_pkg else module.split(".")[:-1]
        if node.level:
            base = base[:len(base) - node.level + 1]
            pkg = ".".join(base + ([node.module] if node.module else []))
        else:
            pkg = node.module or ""
        names = [f"{pkg}.{a.name}" if f"{pkg}.{a.name}" in MODULES else pkg for a in node.names]
    out = []
    for name in names:
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in MODULES and name != module:
            out.append(name)
    return out


def _is_type_checking(node) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.Module):
    """(import node, at module level?) for every import that can run."""
    def walk(node, top: bool):
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, top
            inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef |
                                           ast.Lambda)
            yield from walk(child, inner)
    yield from walk(tree, True)


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, bool]]:
    top: dict[str, set[str]] = {m: set() for m in MODULES}
    every: dict[str, set[str]] = {m: set() for m in MODULES}
    torch_top: dict[str, bool] = {}
    for name, (file, is_pkg) in MODULES.items():
        tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
        torch_top[name] = False
        for node, at_top in _imports(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            absolute = isinstance(node, ast.Import) or not node.level
            if at_top and absolute and any((m or "").split(".")[0] == "torch" for m in mods):
                torch_top[name] = True
            for target in _target(name, is_pkg, node):
                every[name].add(target)
                if at_top:
                    top[name].add(target)
    return top, every, torch_top


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


TOP, EVERY, TORCH_TOP = _graph()


def test_the_walk_sees_the_whole_package():
    assert {"imagenet_hard.cli.group", "imagenet_hard.bench.mine", "imagenet_hard.builders.sample",
            "imagenet_hard.mining.runs"} <= set(MODULES)
    assert "imagenet_hard.mining" in TOP["imagenet_hard.review.store"]


def test_every_subpackage_is_installed():
    folders = {".".join(p.parent.relative_to(ROOT).parts)
               for p in (ROOT / "imagenet_hard").rglob("__init__.py")}
    assert folders <= set(MODULES), f"not in pyproject's packages: {sorted(folders - set(MODULES))}"


def test_no_import_cycle_at_module_level():
    assert _cycle(TOP) is None, " → ".join(_cycle(TOP))


def test_no_import_cycle_counting_imports_inside_functions():
    assert _cycle(EVERY) is None, " → ".join(_cycle(EVERY))


def test_torch_at_module_level_only_in_judging_scoring_and_model_code():
    importers = sorted(m for m, yes in TORCH_TOP.items() if yes)
    outside = [m for m in importers if not m.startswith(TORCH_ALLOWED)]
    assert not outside, f"torch imported at module level outside model code: {outside}"


@pytest.mark.parametrize("cycle", [["a", "b", "a"]])
def test_the_cycle_finder_finds_cycles(cycle):
    assert _cycle({"a": {"b"}, "b": {"a"}}) == cycle
    assert _cycle({"a": {"b"}, "b": set()}) is None
