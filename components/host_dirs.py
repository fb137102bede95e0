"""Host directories the stack owns: created at deploy time when missing, owned by the role's user.

``workspace.project_dir`` (and the git-ignored session store inside it) and
``model.cache_dir`` are the stack's own; a missing one is created (mode 0750, the
project 0755) and, when Pulumi runs as root, handed to the UID:GID that uses it.
Nothing is created during a preview.

The project is also bound read-only into the executors, which run as their own UIDs:
its directory must let others in (``o+rx``), or the executors refuse to start.
:func:`check_project_readable` says so before any container is created.
"""

from __future__ import annotations

import os
from pathlib import Path

from stacks.settings import UserIds

SESSION_STORE = Path(".opencode-sandbox")


def ensure_directory(path: Path, owner: UserIds, mode: int = 0o750) -> None:
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=mode)
        directory.chmod(mode)  # mkdir's mode passes through the umask
        if os.geteuid() == 0:
            os.chown(directory, owner.uid, owner.gid)


def ensure_session_store(project_dir: Path, owner: UserIds) -> None:
    """<project>/.opencode-sandbox, holding OpenCode's sessions, ignored by git."""
    store = project_dir / SESSION_STORE
    ensure_directory(store / "data", owner)
    ignore = store / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# OpenCode's sessions (opencode-sandbox): not part of the project\n*\n")
        if os.geteuid() == 0:
            os.chown(ignore, owner.uid, owner.gid)


def check_project_readable(project_dir: Path) -> None:
    """Raise ValueError, naming the setting and the fix, when executors could not enter the project."""
    mode = project_dir.stat().st_mode
    if mode & 0o005 != 0o005:
        raise ValueError(
            f"workspace.project_dir {project_dir} has mode {mode & 0o777:o}: the executors (their own UIDs) "
            "read the project through a read-only bind and need o+rx on it. Fix: chmod o+rx "
            f"{project_dir} (files they should read need o+r too; the usual umask 022 gives both)"
        )
