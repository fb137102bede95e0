"""Each layer imports only what is below it: the kernel nothing of the project, the pack the kernel alone.

Read from the source (every import statement, also those inside functions), not from sys.modules,
so a lazy import cannot hide a dependency on a layer above.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from sandbox_model.paths import REPO_ROOT

STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}

#: What each layer may import besides the standard library and itself.
ALLOWED: dict[str, frozenset[str]] = {
    "sandbox_model": frozenset(),
    "stacks": frozenset({"sandbox_model", "pydantic", "pulumi"}),
    "components": frozenset({"sandbox_model", "stacks", "pulumi", "pulumi_docker"}),
    "policies": frozenset({"sandbox_model", "pulumi_policy"}),
    "operate": frozenset({"sandbox_model", "stacks", "components", "docker", "requests", "yaml", "pydantic"}),
}
#: Everything outside tests/ that is Python: none of it may import tests.
NOT_TESTS = (
    "sandbox_model",
    "stacks",
    "components",
    "policies",
    "operate",
    "harness",
    "bench",
    "images",
    "scripts",
    "__main__.py",
)


def python_files(top: str) -> list[Path]:
    path = REPO_ROOT / top
    if path.is_file():
        return [path]
    files = [p for p in path.rglob("*.py") if ".venv" not in p.parts]
    if top == "scripts":  # its Python scripts have no suffix
        files += [p for p in path.iterdir() if p.is_file() and p.read_bytes().startswith(b"#!/usr/bin/env python3")]
    return files


def imported_tops(path: Path) -> set[str]:
    tops = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            tops |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return tops


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_what_is_below_it(layer):
    allowed = STDLIB | ALLOWED[layer] | {layer}
    wrong = {str(path.relative_to(REPO_ROOT)): sorted(imported_tops(path) - allowed) for path in python_files(layer)}
    wrong = {name: tops for name, tops in wrong.items() if tops}
    assert not wrong, f"{layer}/ may import only {sorted(ALLOWED[layer])} and the standard library: {wrong}"


def test_nothing_outside_tests_imports_tests():
    wrong = [
        str(path.relative_to(REPO_ROOT))
        for top in NOT_TESTS
        for path in python_files(top)
        if "tests" in imported_tops(path)
    ]
    assert not wrong, f"these import from tests/ (move what they need to harness/): {wrong}"


def test_nothing_patches_sys_path():
    patched = []
    for top in (*NOT_TESTS, "tests"):
        for path in python_files(top):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in {"insert", "append", "extend"}
                    and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "path"
                    and isinstance(node.value.value, ast.Name)
                    and node.value.value.id == "sys"
                ):
                    patched.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert not patched, f"sys.path is patched here (the project is installed editable instead): {patched}"
