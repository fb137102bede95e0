"""Read-only access to the project: files and directories inside it only, and its git status.

A path is relative to the project. ``..`` components and absolute paths are refused; symbolic links
are resolved and must stay inside the project, and the resolved path is then opened one component at a
time with ``O_NOFOLLOW`` from the project's own directory descriptor, so a link swapped in between
(the agent writes the project) fails instead of leading out.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_READ_BYTES = 512 * 1024
MAX_LIST_ENTRIES = 2000
#: git never runs a program the project's config names (fsmonitor, hooks), never writes (no optional
#: locks), and trusts the project, which belongs to another UID (safe.directory).
GIT_OVERRIDES = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.untrackedCache=false")
GIT_TIMEOUT_S = 20


class PathRefused(ValueError):
    pass


def _relative_parts(root: Path, path: str) -> tuple[str, ...]:
    if "\0" in path:
        raise PathRefused("the path contains a NUL byte")
    pure = PurePosixPath(path or ".")
    if pure.is_absolute():
        raise PathRefused(f"{path!r} is absolute: give a path relative to the project")
    if ".." in pure.parts:
        raise PathRefused(f"{path!r} contains '..': give a path inside the project")
    real_root = os.path.realpath(root)
    resolved = os.path.realpath(os.path.join(real_root, *pure.parts))
    if resolved != real_root and not resolved.startswith(real_root + os.sep):
        raise PathRefused(f"{path!r} leads outside the project (a symbolic link)")
    return PurePosixPath(os.path.relpath(resolved, real_root)).parts if resolved != real_root else ()


def _open(root: Path, path: str, *, directory: bool) -> int:
    parts = _relative_parts(root, path)
    fd = os.open(os.path.realpath(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            if not last or directory:
                flags |= os.O_DIRECTORY
            else:
                flags |= os.O_NONBLOCK  # a FIFO must not block the open
            try:
                next_fd = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                raise PathRefused(f"{path!r} does not exist in the project") from None
            except (NotADirectoryError, OSError) as exc:
                raise PathRefused(f"{path!r} cannot be opened inside the project: {exc.strerror}") from None
            os.close(fd)
            fd = next_fd
        return fd
    except BaseException:
        os.close(fd)
        raise


@dataclass(frozen=True)
class FileText:
    path: str
    size: int
    text: str
    truncated: bool


def read_file(root: Path, path: str, max_bytes: int = MAX_READ_BYTES) -> FileText:
    fd = _open(root, path, directory=False)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PathRefused(f"{path!r} is not a regular file")
        data = os.read(fd, max_bytes + 1) if info.st_size else b""
        chunks = [data]
        while len(data) and sum(map(len, chunks)) <= max_bytes:
            data = os.read(fd, max_bytes + 1)
            chunks.append(data)
        content = b"".join(chunks)
    finally:
        os.close(fd)
    return FileText(
        path=path,
        size=info.st_size,
        text=content[:max_bytes].decode("utf-8", errors="replace"),
        truncated=len(content) > max_bytes,
    )


def list_files(
    root: Path, path: str = ".", recursive: bool = False, max_entries: int = MAX_LIST_ENTRIES
) -> tuple[list[str], bool]:
    """Entries under ``path`` (relative to the project; directories end in ``/``; ``.git`` skipped)."""
    fd = _open(root, path, directory=True)
    base = PurePosixPath(*_relative_parts(root, path)) if _relative_parts(root, path) else PurePosixPath()
    entries: list[str] = []
    try:
        for dirpath, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
            # A link to a directory is listed as what it is, a link (no "/"), and never entered.
            links = {d for d in dirnames if stat.S_ISLNK(os.stat(d, dir_fd=dirfd, follow_symlinks=False).st_mode)}
            filenames = [*filenames, *links]
            dirnames[:] = sorted(d for d in dirnames if d != ".git" and d not in links)
            here = base / PurePosixPath(dirpath)
            for name in dirnames:
                entries.append(f"{here / name}/")
            for name in sorted(filenames):
                entries.append(str(here / name))
            if len(entries) > max_entries or not recursive:
                break
    finally:
        os.close(fd)
    entries = [e[2:] if e.startswith("./") else e for e in entries]
    return entries[:max_entries], len(entries) > max_entries


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "safe.directory",
        "GIT_CONFIG_VALUE_0": str(root),
    }
    return subprocess.run(
        ["git", *GIT_OVERRIDES, "-C", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=False,
    )


def git_status(root: Path, commits: int = 10) -> dict:
    inside = _git(root, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return {"git": False, "detail": (inside.stderr.strip() or "not a git repository")[:2000]}
    status = _git(root, "--no-optional-locks", "status", "--porcelain=v1", "--branch", "--untracked-files=normal")
    log = _git(root, "log", f"-n{commits}", "--date=iso-strict", "--format=%h%x09%ad%x09%an%x09%s")
    lines = status.stdout.splitlines()
    branch = lines[0][3:] if lines and lines[0].startswith("## ") else ""
    recent = []
    for line in log.stdout.splitlines():
        commit, date, author, subject = (line.split("\t", 3) + ["", "", ""])[:4]
        recent.append({"commit": commit, "date": date, "author": author, "subject": subject})
    return {
        "git": True,
        "branch": branch,
        "changes": [line for line in lines if not line.startswith("## ")],
        "recent_commits": recent,
        "errors": (status.stderr + log.stderr).strip()[:2000],
    }
