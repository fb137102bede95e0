"""The images' copies of kernel files match their originals (sandbox_model/image_copies.py).

An image's build context is its own directory, so the executor contract and the bearer-token gate
are copied into the executor's and the conductor's packages, and the conductor installs the
executor's requirements.lock. After editing an original: ``.venv/bin/python scripts/sync-contract
--write`` (without ``--write`` it checks, e.g. as a pre-commit hook).
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from sandbox_model import image_copies
from sandbox_model.paths import REPO_ROOT


@pytest.mark.parametrize("copy", image_copies.COPIES, ids=lambda copy: str(copy.copy.relative_to(REPO_ROOT)))
def test_each_copy_matches_its_original(copy):
    assert not copy.stale(), (
        f"{copy.copy.relative_to(REPO_ROOT)} differs from {copy.original.relative_to(REPO_ROOT)}."
        " Fix: .venv/bin/python scripts/sync-contract --write"
    )


def test_the_images_pin_the_same_requirements():
    assert image_copies.problems() == []


def test_the_check_script_agrees():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "sync-contract")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("original", sorted({copy.original for copy in image_copies.COPIES if copy.replace is None}))
def test_a_copied_module_is_self_contained(original):
    """Standard library only, and no import of the rest of the kernel: the copy stands alone in its image."""
    tree = ast.parse(original.read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "." for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert [name for name in imported if name.split(".")[0] not in sys.stdlib_module_names | {"__future__"}] == []


def test_the_executor_image_states_the_contract_port():
    from sandbox_model import executor_contract

    dockerfile = (image_copies.EXECUTOR_DIR / "Dockerfile").read_text()
    assert f"EXPOSE {executor_contract.PORT}\n" in dockerfile
    assert f"{executor_contract.PORT_ENV}={executor_contract.PORT}" in dockerfile
    assert f'CMD ["{executor_contract.HEALTHCHECK}"]' in dockerfile
