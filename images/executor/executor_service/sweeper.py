"""Leaving nothing behind after a job: ending its leftover processes and emptying the writable places.

Two ways to find a job's leftovers, chosen once at start (see ``isolation.IsolationMode``):

* ``InitSweeper`` (container mode; the service is PID 1 of the container's PID namespace): every
  process of the service's UID but PID 1 is ended, with one exception: a process exec'd from outside
  the container (parent 0: ``docker exec``) that is **not dumpable**. That is the healthcheck, a
  static execute-only binary (launcher/healthcheck.c), non-dumpable from its first instruction; no
  job can read or write it, so it runs nothing but its own code, and sparing it keeps the sweep from
  killing a healthcheck that happens to run while a job ends. No job can forge the exception: a job
  cannot create a process with parent 0 (its processes descend from PID 1), and it cannot take over
  one (seccomp refuses ptrace and process_vm_writev; the launcher's Landlock domain refuses opening
  /proc/<pid>/mem for writing). Anything else a job could touch — its own processes, and any
  dumpable `docker exec` of the UID, such as an operator's shell, whose memory and environment a job
  could read — is killed. (Exec into an executor as another UID, e.g. ``docker exec -u 0``: no job
  can signal or read those.) When anything is left, ``kill(-1, SIGSTOP)`` first freezes every process
  of our UID at once, so a fork bomb cannot outrun the walk over /proc; the spared processes get
  SIGCONT back a moment later.
  The caller may also name processes to spare by PID (``spare``): the fork server (zygote.py), a child
  of the service that runs no job code and that no job can reach (see the README). Spared by the PID
  the service got when it started it, never by anything a job can set; its PID stays its own while it
  is unreaped, and the sweep is what reaps the service's children, so when the sweep reaps a spared
  process it stops sparing that PID at once and reports it (a job could be given the PID next).
* ``SessionSweeper`` (development mode, not PID 1): only the processes in the job's session are
  ended. A job that calls setsid() escapes it: development only, never for untrusted code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path

#: How long the sweep may take before the service declares itself unusable.
SWEEP_DEADLINE_S = 10.0
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_UNLINK_BATCH = 4096


class CleanupFailed(RuntimeError):
    """Something a job left behind could not be removed: the container must not take more jobs."""


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    session: int
    state: str
    #: The owner of /proc/<pid>/environ: the process's UID while it is dumpable, root once it is not
    #: (or for another user's process); -1 if it vanished while being read.
    proc_owner: int = -1


def read_process_table(proc: str = "/proc") -> dict[int, ProcessInfo]:
    """All processes visible in ``proc`` (racy by nature: entries come and go while it reads)."""
    table = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", "rb") as handle:
                raw = handle.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
        fields = raw[raw.rindex(b")") + 2 :].split()
        pid = int(name)
        try:
            # Not /proc/<pid> itself: the kernel gives that directory the task's UID either way.
            owner = os.stat(f"{proc}/{name}/environ").st_uid
        except (FileNotFoundError, ProcessLookupError):
            owner = -1
        table[pid] = ProcessInfo(
            pid=pid, state=fields[0].decode(), ppid=int(fields[1]), session=int(fields[3]), proc_owner=owner
        )
    return table


def spared_by_the_sweep(info: ProcessInfo, uid: int) -> bool:
    """Exec'd from outside (parent 0) and not a dumpable process of ``uid``: nothing a job can control.

    A zombie exec'd from outside is spared too: it runs nothing, and its parent outside reaps it.
    """
    return info.ppid == 0 and (info.proc_owner != uid or info.state == "Z")


def _kill(pid: int, sig: int) -> bool:
    """Send ``sig``; False when the process is not ours to signal (another UID)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    return True


class InitSweeper:
    """Ends every process of our UID but PID 1 and the spared ones (see the module's docstring).

    Only valid when this process is PID 1 of its own PID namespace."""

    def __init__(self, proc: str = "/proc"):
        if os.getpid() != 1:
            # kill(-1) from anywhere else would reach every process of this UID on the machine.
            raise RuntimeError("InitSweeper needs the service to be PID 1 of its PID namespace")
        self.proc = proc

    def end_leftovers(self, job_pid: int | None = None, spare: frozenset[int] = frozenset()) -> set[int]:
        """Kill every job process; returns those of ``spare`` found dead (and reaped) meanwhile."""
        deadline = time.monotonic() + SWEEP_DEADLINE_S
        foreign: set[int] = set()  # of another UID (a root `docker exec` and its children): not ours to end
        spared, gone = set(spare), set()
        while True:
            gone |= self._reap_ready_children(spared)
            if not self._job_processes(foreign, spared):
                return gone  # the common case: one walk over a near-empty /proc, no signal sent
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGSTOP)  # freeze all at once: nothing forks while we look
            try:
                leftovers = self._job_processes(foreign, spared)
                for info in leftovers:
                    if info.state != "Z" and not _kill(info.pid, signal.SIGKILL):
                        foreign.add(info.pid)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(-1, signal.SIGCONT)  # the spared (non-dumpable) `docker exec` processes go on
            if time.monotonic() > deadline:
                remaining = sorted(info.pid for info in leftovers)[:20]
                raise CleanupFailed(f"job processes still alive after {SWEEP_DEADLINE_S:g}s: {remaining}")
            # Killed processes turn zombies, are handed to PID 1 as their parents die, and get reaped.
            time.sleep(0.001)

    def _job_processes(self, foreign: set[int], spared: set[int]) -> list[ProcessInfo]:
        table = read_process_table(self.proc)
        uid = os.geteuid()
        return [
            info
            for info in table.values()
            if info.pid != 1
            and info.pid not in foreign
            and info.ppid not in foreign
            and info.pid not in spared
            and not spared_by_the_sweep(info, uid)
        ]

    @staticmethod
    def _reap_ready_children(spared: set[int]) -> set[int]:
        """Reap every finished child; a spared one leaves ``spared`` (its PID is free now) and is returned."""
        gone: set[int] = set()
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return gone
            if pid == 0:
                return gone
            if pid in spared:
                spared.discard(pid)
                gone.add(pid)


class SessionSweeper:
    """Development mode: ends the processes of the job's session (the job's first process started it)."""

    def __init__(self, proc: str = "/proc"):
        self.proc = proc

    def end_leftovers(self, job_pid: int | None = None, spare: frozenset[int] = frozenset()) -> set[int]:
        """Kill the job's session (``spare`` is never in it: the fork server has a session of its own)."""
        if job_pid is None:
            return set()
        deadline = time.monotonic() + SWEEP_DEADLINE_S
        me = os.getpid()
        while True:
            table = read_process_table(self.proc)
            alive = [
                p.pid
                for p in table.values()
                if p.session == job_pid and p.pid != me and p.pid not in spare and p.state != "Z"
            ]
            if not alive:
                return set()
            for pid in alive:
                _kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise CleanupFailed(f"job processes still alive after {SWEEP_DEADLINE_S:g}s: {sorted(alive)[:20]}")
            time.sleep(0.001)


def empty_directory(path: Path | str) -> None:
    """Remove everything inside ``path`` (not ``path`` itself) without following symlinks.

    Runs only when no job process is alive, so nothing changes under it. Iterative and holding one
    directory fd at a time, because a job can nest directories far deeper than recursion or the
    fd limit allow; directories the job made unreadable or unwritable are chmod-ed back first.
    """
    fd = os.open(path, _DIR_FLAGS)
    pending: list[list[str]] = [_unlink_files(fd)]
    descended: list[str] = []
    try:
        while True:
            if pending[-1]:
                name = pending[-1].pop()
                child = _open_subdirectory(fd, name)
                os.close(fd)
                fd = child
                descended.append(name)
                pending.append(_unlink_files(fd))
                continue
            pending.pop()
            if not descended:
                return
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(descended.pop(), dir_fd=fd)
    finally:
        os.close(fd)


def _open_subdirectory(parent_fd: int, name: str) -> int:
    mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
    if stat.S_IMODE(mode) & 0o700 != 0o700:
        os.chmod(name, 0o700, dir_fd=parent_fd)
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


def _unlink_files(dir_fd: int) -> list[str]:
    """Unlink every non-directory in ``dir_fd``; return the names of its subdirectories."""
    subdirectories: set[str] = set()
    while True:
        os.lseek(dir_fd, 0, os.SEEK_SET)
        removed = 0
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subdirectories.add(entry.name)
                    continue
                os.unlink(entry.name, dir_fd=dir_fd)
                removed += 1
                if removed >= _UNLINK_BATCH:
                    break
        # Unlinking while the directory is being read may skip entries: rescan until a pass finds none.
        if removed == 0:
            return sorted(subdirectories)


def wipe(paths: list[Path]) -> None:
    """Empty every existing directory in ``paths``. Raises CleanupFailed."""
    for path in paths:
        if not path.is_dir():
            continue
        try:
            empty_directory(path)
        except OSError as exc:
            raise CleanupFailed(f"could not empty {path}: {exc}") from exc
