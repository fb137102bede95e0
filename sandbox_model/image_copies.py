"""The files the images carry copies of, because an image's build context is its own directory.

- Kernel modules an image's code imports: ``executor_contract.py`` (the executor's settings) and
  ``bearer_gate.py`` (the executor's and the conductor's token check), copied byte for byte.
- The conductor's ``requirements.lock``: the executor's, so both images install one audited set of
  versions (its only difference is the ``-r images/<image>/requirements.in`` it names); the two
  ``requirements.in`` files must pin the same.

The originals are the kernel module and ``images/executor/requirements.lock``. After editing one:
``.venv/bin/python scripts/sync-contract --write``. Without ``--write`` (as a pre-commit hook or
in CI) it only checks, and so does tests/docs/test_contract_copies.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox_model.paths import IMAGES_DIR, REPO_ROOT

KERNEL_DIR = REPO_ROOT / "sandbox_model"
EXECUTOR_DIR = IMAGES_DIR / "executor"
CONDUCTOR_DIR = IMAGES_DIR / "conductor"


@dataclass(frozen=True)
class Copy:
    original: Path
    copy: Path
    #: (old, new) text replaced in the original to give the copy; none: byte for byte.
    replace: tuple[str, str] | None = None

    def expected(self) -> bytes:
        data = self.original.read_bytes()
        if self.replace is None:
            return data
        old, new = self.replace
        return data.replace(old.encode(), new.encode())

    def stale(self) -> bool:
        return not self.copy.is_file() or self.copy.read_bytes() != self.expected()


COPIES = (
    Copy(KERNEL_DIR / "executor_contract.py", EXECUTOR_DIR / "executor_service" / "executor_contract.py"),
    Copy(KERNEL_DIR / "bearer_gate.py", EXECUTOR_DIR / "executor_service" / "bearer_gate.py"),
    Copy(KERNEL_DIR / "bearer_gate.py", CONDUCTOR_DIR / "conductor_service" / "bearer_gate.py"),
    Copy(
        EXECUTOR_DIR / "requirements.lock",
        CONDUCTOR_DIR / "requirements.lock",
        replace=("-r images/executor/requirements.in", "-r images/conductor/requirements.in"),
    ),
)


def requirement_lines(path: Path) -> list[str]:
    """A requirements file's requirements: without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def problems() -> list[str]:
    """What is out of date, each with its fix; empty when every copy matches."""
    found = [
        f"{copy.copy.relative_to(REPO_ROOT)} differs from {copy.original.relative_to(REPO_ROOT)}. "
        "Fix: .venv/bin/python scripts/sync-contract --write"
        for copy in COPIES
        if copy.stale()
    ]
    executor_in, conductor_in = EXECUTOR_DIR / "requirements.in", CONDUCTOR_DIR / "requirements.in"
    if requirement_lines(executor_in) != requirement_lines(conductor_in):
        found.append(
            f"{conductor_in.relative_to(REPO_ROOT)} pins other versions than "
            f"{executor_in.relative_to(REPO_ROOT)}, whose lock the conductor shares. Fix: pin the same, "
            "recompile images/executor/requirements.lock, then scripts/sync-contract --write"
        )
    return found


def write() -> list[Path]:
    """Refresh every stale copy; returns those written."""
    written = []
    for copy in COPIES:
        if copy.stale():
            copy.copy.write_bytes(copy.expected())
            written.append(copy.copy)
    return written
