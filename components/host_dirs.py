"""Host directories the stack owns: created at deploy time when missing, owned by the role's user.

``workspace.project_dir`` (and the git-ignored session store inside it) and
``model.cache_dir`` are the stack's own; a missing one is created with mode 0750
and, when Pulumi runs as root, handed to the UID:GID that uses it. Nothing is
created during a preview.
"""

from __future__ import annotations

import os
from pathlib import Path

from stacks.settings import UserIds

SESSION_STORE = Path(".opencode-sandbox")


def ensure_directory(path: Path, owner: UserIds) -> None:
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o750)
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
