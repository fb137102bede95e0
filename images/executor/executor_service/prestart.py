"""A job's interpreter started before the job: Python, waiting inside its own start-up.

After a job's sweep and wipe, the runner starts the *next* Python job's process exactly as a cold job
starts (the launcher: limits, oom_score_adj 1000, Landlock; the job's environment, cwd, session,
pipes): ``python3 <job dir>/main.py``. Python initializes itself, imports ``site``, and ``site``
imports ``usercustomize`` from the user site directory, which for a job is beneath its ``HOME`` (the
job directory): the runner put a small hook there (``HOOK``). The hook reports "ready" on a socket
passed as an extra fd and waits. When the job comes, the runner removes the hook's directory, writes
the job's source to ``main.py``, sets the job's RLIMIT_CPU and sends one byte: the hook closes the
socket, gives the job ``/dev/null`` as stdin if it has none, and raises ``ImportError`` for
``usercustomize`` — which ``site`` ignores, as it ignores a missing ``usercustomize`` in every cold
start. Python then opens ``main.py`` and runs it as it runs any script: same argv, ``sys.path``,
``__main__``, tracebacks, exit codes, and no frame of the hook above the job's.

Nothing of an earlier job can reach it: it is created after that job's processes are killed and its
files removed, and nothing of the next job exists before it is handed over (it *becomes* that job,
and the sweep after the job ends it with everything else).
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

#: usercustomize.py, formatted with the control socket's fd and the user site directory. It imports
#: nothing Python has not loaded already (os, io, sys), and leaves nothing behind: its module fails to
#: import (removed from sys.modules), its directory leaves sys.path and the importer cache.
HOOK = '''\
def _executor_wait():
    import io, os, sys
    fd, user_site = {fd}, {user_site!r}
    if user_site in sys.path:
        sys.path.remove(user_site)
    sys.path_importer_cache.pop(user_site, None)
    os.write(fd, b"R")
    go = os.read(fd, 1)
    os.close(fd)
    if go == b"n":  # no stdin: /dev/null, as a cold job has it, and sys.stdin made for it afresh
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        old = sys.stdin
        buffer = io.open(0, "rb", closefd=False)
        buffer.raw.name = "<stdin>"
        new = io.TextIOWrapper(buffer, encoding=old.encoding, errors=old.errors, newline="\\n",
                               line_buffering=old.line_buffering, write_through=old.write_through)
        new.mode = "r"
        sys.stdin = sys.__stdin__ = new
    elif go != b"p":  # the service went away (or sent nothing): never run anything
        os._exit(125)
_executor_wait()
raise ImportError("executor hand-over done", name="usercustomize")
'''

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

    def hand_over(self, cpu_seconds: int, has_stdin: bool) -> None:
        """Let it run the job: the job's own CPU limit (lowered from the longest a job may ask), then go."""
        resource.prlimit(self.proc.pid, resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        self.control.sendall(b"p" if has_stdin else b"n")
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


def write_hook(user_site: Path, fd: int, precompiled: bool) -> None:
    """The hook for a process that gets the socket as ``fd``. ``precompiled`` (the job's Python is the
    service's version): as bytecode, ``usercustomize.pyc``, which Python loads without compiling it or
    writing a ``__pycache__``; else as source."""
    user_site.mkdir(mode=0o700, parents=True)
    source = HOOK.format(fd=fd, user_site=str(user_site))
    if precompiled:
        code = compile(source, str(user_site / "usercustomize.py"), "exec", dont_inherit=True, optimize=0)
        # A sourceless .pyc: magic number, then flags and a source stamp that Python does not check here.
        (user_site / "usercustomize.pyc").write_bytes(importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code))
    else:
        (user_site / "usercustomize.py").write_text(source)
