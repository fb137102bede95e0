"""A job's interpreter started before the job: Python, waiting inside its own start-up.

The runner starts a Python job's process exactly as a cold job starts (the launcher: limits,
oom_score_adj 1000, Landlock, seccomp; the job's environment, cwd, session, pipes) before there is a
job: ``python3 <job dir>/main.py``. Python initializes itself, imports ``site``, and ``site`` imports
``usercustomize`` from the user site directory, which for a job is beneath its ``HOME`` (the job
directory): the runner put a small hook there, and gave the process a socket as an extra fd. The hook
takes its directory off ``sys.path`` and waits; it leaves by raising ``ImportError`` for
``usercustomize`` — which ``site`` ignores, as it ignores a missing ``usercustomize`` in every cold
start. Python then opens ``main.py`` and runs it as it runs any script: same argv, ``sys.path``,
``__main__``, tracebacks, exit codes, and no frame of the hook above the job's. Two hooks:

* ``FORK_HOOK`` (EXECUTOR_PRESTART=fork): the process is the fork server (zygote.py) and never leaves
  the hook itself; launcher/zygote.c forks it per job, and each child leaves the hook as the job.
* ``WAITING_HOOK`` (EXECUTOR_PRESTART=python): the process *becomes* the next job. It is started after a
  job's sweep and wipe; when the job comes, the runner writes ``main.py``, sets the job's RLIMIT_CPU and
  sends its stdin mode and working directory: the hook puts ``/dev/null`` on fd 0 if the job has no stdin,
  changes to the working directory and leaves. Nothing of an earlier job can reach it (it is created after
  that job's processes are killed and its files removed), and nothing of the next job exists before it
  is handed over (the sweep after that job ends it with everything else).
"""

from __future__ import annotations

import importlib.util
import logging
import marshal
import os
import resource
import select
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from executor_service.sweeper import empty_directory

log = logging.getLogger(__name__)

#: What both hooks (usercustomize.py) start with. They import nothing Python has not loaded already (io,
#: os, sys, _imp; the fork hook also the built-in gc, which it takes off sys.modules again) and leave
#: nothing behind: their module fails to import (removed from sys.modules), their directory leaves
#: sys.path and the importer cache. ``_stdin_for_fd0`` gives the job a ``sys.stdin``
#: made for what fd 0 is now (/dev/null), as a cold start makes it.
_HOOK_START = """\
def _stdin_for_fd0(io, sys):
    old = sys.stdin
    buffer = io.open(0, "rb", closefd=False)
    buffer.raw.name = "<stdin>"
    new = io.TextIOWrapper(buffer, encoding=old.encoding, errors=old.errors, newline="\\n",
                           line_buffering=old.line_buffering, write_through=old.write_through)
    new.mode = "r"
    sys.stdin = sys.__stdin__ = new
def _leave_user_site(sys, user_site):
    if user_site in sys.path:
        sys.path.remove(user_site)
    sys.path_importer_cache.pop(user_site, None)
"""
_HOOK_END = """\
_executor_wait()
raise ImportError("executor hand-over done", name="usercustomize")
"""

#: EXECUTOR_PRESTART=python: the waiting interpreter becomes the job. It reports ready and blocks in
#: read(); the service's one message is p (stdin is a pipe) or n (/dev/null), then the working directory.
WAITING_HOOK = (
    _HOOK_START
    + """\
def _executor_wait():
    import io, os, sys
    fd = {fd}
    _leave_user_site(sys, {user_site!r})
    os.write(fd, b"R")
    go = os.read(fd, 8192)
    os.close(fd)
    if go[:1] not in (b"p", b"n") or not go[1:2] == b"/":  # the service went away: never run anything
        os._exit(125)
    try:
        os.chdir(go[1:])
    except OSError as exc:  # site would print it and go on: the job must not run elsewhere
        os.write(2, ("executor-prestart: " + str(exc) + "\\n").encode())
        os._exit(125)
    if go[:1] == b"n":
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        _stdin_for_fd0(io, sys)
"""
    + _HOOK_END
)

#: EXECUTOR_PRESTART=fork: the fork server (zygote.py). serve() (launcher/zygote.c, loaded by its path, so
#: never from sys.path and never into sys.modules) forks a process per job and returns only in that
#: process, with the job's stdio, working directory and confinement in place: True when stdin is /dev/null.
#: Before, gc.freeze() puts the server's objects out of the collector's reach: no collection in a job (the
#: one at its exit above all) walks them, which would write, so copy, nearly every page it shares with the
#: server (a forked print(1) in an executor: 2.8 ms p50 with the freeze, 3.8 ms without). The README says what
#: it changes.
FORK_HOOK = (
    _HOOK_START
    + """\
def _executor_wait():
    import _imp, gc, io, sys
    _leave_user_site(sys, {user_site!r})
    del sys.modules["gc"]
    gc.collect()
    gc.freeze()
    spec = sys.modules["_frozen_importlib"].ModuleSpec("executor_zygote", None, origin={module!r})
    if _imp.create_dynamic(spec).serve({fd}):
        _stdin_for_fd0(io, sys)
"""
    + _HOOK_END
)

#: How long a job waits for the pre-started interpreter to report ready before starting cold.
READY_TIMEOUT_S = 5.0


@dataclass
class WaitingInterpreter:
    """A pre-started job process (see the module docstring) and the service's end of its socket."""

    language: str
    proc: subprocess.Popen
    control: socket.socket
    hook_dir: Path  # <job dir>/.local: removed before the hand-over
    created: float = field(default_factory=time.monotonic)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """True once the hook has reported; False when it died or took too long."""
        ready, _, _ = select.select([self.control], [], [], timeout)
        if not ready:
            return False
        try:
            return self.control.recv(1) == b"R"
        except OSError:
            return False

    def hand_over(self, cpu_seconds: int, has_stdin: bool, workdir: Path) -> None:
        """Let it run the job: the job's own CPU limit (lowered from the longest a job may ask), then go."""
        resource.prlimit(self.proc.pid, resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        self.control.sendall((b"p" if has_stdin else b"n") + os.fsencode(workdir))
        self.control.close()

    def remove_hook(self) -> None:
        if self.hook_dir.is_dir():
            empty_directory(self.hook_dir)
            os.rmdir(self.hook_dir)

    def discard(self) -> None:
        """Kill it unused (the caller then sweeps and wipes as after any job)."""
        self.control.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def write_hook(user_site: Path, source: str, precompiled: bool) -> None:
    """A hook (``WAITING_HOOK`` or ``FORK_HOOK``, formatted). ``precompiled`` (the job's Python is the
    service's version): as bytecode, ``usercustomize.pyc``, which Python loads without compiling it or
    writing a ``__pycache__``; else as source."""
    user_site.mkdir(mode=0o700, parents=True)
    if precompiled:
        code = compile(source, str(user_site / "usercustomize.py"), "exec", dont_inherit=True, optimize=0)
        # A sourceless .pyc: magic number, then flags and a source stamp that Python does not check here.
        (user_site / "usercustomize.pyc").write_bytes(importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code))
    else:
        (user_site / "usercustomize.py").write_text(source)
