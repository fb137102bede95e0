"""The code passes the project's linters and type checks (pyproject.toml configures them), so CI enforces them.

The same commands run as pre-commit hooks (.pre-commit-config.yaml); here they run over the whole tree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sandbox_model.paths import REPO_ROOT

BIN = Path(sys.executable).parent  # ruff, mypy, shellcheck and pre-commit are test requirements


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
    return [name for name in listed.stdout.decode().split("\0") if name and (REPO_ROOT / name).is_file()]


def shell_scripts() -> list[str]:
    """Every tracked shell script: a *.sh file, or a file whose first line starts a POSIX shell or bash."""
    scripts = []
    for name in tracked_files():
        path = REPO_ROOT / name
        with path.open("rb") as file:
            first = file.readline(200)
        if name.endswith(".sh") or (
            first.startswith(b"#!") and first.rstrip().split(b"/")[-1].split(b" ")[-1] in {b"sh", b"bash"}
        ):
            scripts.append(name)
    return scripts


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def assert_clean(result: subprocess.CompletedProcess, fix: str) -> None:
    assert result.returncode == 0, f"{' '.join(result.args)} failed (fix: {fix}):\n{result.stdout}{result.stderr}"


def test_ruff_finds_nothing():
    assert_clean(run(str(BIN / "ruff"), "check", "."), "`.venv/bin/ruff check --fix .`, then the rest by hand")


def test_the_code_is_formatted():
    assert_clean(run(str(BIN / "ruff"), "format", "--check", "."), "`.venv/bin/ruff format .`")


def test_mypy_finds_nothing():
    assert_clean(run(str(BIN / "mypy")), "the errors above (pyproject.toml's [tool.mypy] lists the packages)")


def test_there_are_shell_scripts_to_check():
    scripts = shell_scripts()
    assert {"scripts/test", ".ci/run", "images/workspace/opencode-guard.sh"} <= set(scripts), scripts


@pytest.mark.parametrize("script", shell_scripts())
def test_shellcheck_finds_nothing(script):
    assert_clean(run(str(BIN / "shellcheck"), "--external-sources", script), f"the findings in {script}")


def test_the_pre_commit_hooks_are_valid():
    assert_clean(
        run(str(BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml"), "the configuration error above"
    )
