"""The fork server (a zygote): one waiting job interpreter that forks every Python job (EXECUTOR_PRESTART=fork).

The runner starts it as it starts any job's interpreter (job-launch: the job's limits, oom_score_adj,
Landlock domain and seccomp filter; the job's environment, a session of its own, pipes) with the fork
hook (prestart.FORK_HOOK) in its user site: it stops inside its start-up, in ``site``, where
launcher/zygote.c takes over. For each Python job the service sends it the job's CPU limit, working
directory and stdio fds; it forks, and the child (a new nested, signal-scoped Landlock domain; the
job's RLIMIT_CPU; its own session; the job's fds on 0-2) leaves the hook as a cold start's interpreter
leaves ``site`` and runs ``main.py``. The fork server itself never runs job code and stays the same
between jobs: it hands the service a pidfd of the job's process and its wait status once it has
reaped it. The service waits on that pidfd, kills through it at the deadline, and spares the fork
server's PID (which it knows as its own child's) in the sweep. See the README for why no job can
reach it, and through it the next job.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import select
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

from executor_service.prestart import WaitingInterpreter

log = logging.getLogger(__name__)

#: The compiled launcher/zygote.c, installed next to the job launcher.
MODULE_NAME = "executor_zygote.so"
#: How long the fork server may take to answer a request, or to report a job's status once it has ended.
REPLY_TIMEOUT_S = 5.0
#: After the fork server died during a job: how long the job's process may take to be handed to the
#: service (PID 1 inherits it) so that the service can reap it itself.
_ORPHAN_WAIT_S = 0.5
_MESSAGE_MAX = 64


class ZygoteFailed(RuntimeError):
    """The fork server did not answer as it must: it is discarded and the job starts cold."""


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


@dataclass
class Zygote(WaitingInterpreter):
    """The fork server's process and the service's end of its control socket (SOCK_SEQPACKET)."""

    #: Jobs forked so far; the runner replaces the fork server after EXECUTOR_FORK_JOBS of them.
    jobs: int = 0
    #: Dead (reaped by the sweep, or found dead) or misbehaving: never used again, never spared.
    broken: bool = False
    _pidfd: int = field(default=-1, repr=False)

    def __post_init__(self) -> None:
        # The service's own unreaped child: this pidfd is that process, whatever its PID becomes.
        self._pidfd = os.pidfd_open(self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def usable(self) -> bool:
        """Alive, not misbehaving, and with nothing unasked for on its socket."""
        if self.broken or _readable(self._pidfd, 0) or _readable(self.control.fileno(), 0):
            self.broken = True
        return not self.broken

    def fork(self, cpu_seconds: int, workdir: Path, stdin: int, stdout: int, stderr: int) -> ForkedJob:
        """Start a job's process with these fds as its 0-2 (the caller keeps and closes its copies)."""
        self.jobs += 1
        mode = "n" if stdin < 0 else "p"
        request = f"J {cpu_seconds} {mode} ".encode() + os.fsencode(workdir)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC) if stdin < 0 else -1
        try:
            socket.send_fds(self.control, [request], [null if stdin < 0 else stdin, stdout, stderr])
            reply, fds = self._receive(expect_fds=True)
        except OSError as exc:
            raise self._failed(f"could not send it the job: {exc}") from exc
        finally:
            if null >= 0:
                os.close(null)
        if reply.startswith(b"P ") and len(fds) == 1:
            return ForkedJob(self, int(reply[2:]), fds[0])
        for fd in fds:
            os.close(fd)
        if reply.startswith(b"E "):
            raise self._failed(f"it could not fork: {os.strerror(int(reply[2:]))}")
        raise self._failed(f"it answered {reply!r}")

    def status_of(self, job: ForkedJob) -> int | None:
        """The wait status of ``job``'s process once the fork server has reaped it; None if it cannot say."""
        try:
            reply, fds = self._receive(expect_fds=False)
        except (OSError, ZygoteFailed) as exc:
            self._failed(f"no status for job process {job.pid}: {exc}")
            return None
        if reply.startswith(b"X ") and not fds:
            return int(reply[2:])
        self._failed(f"it reported {reply!r} for job process {job.pid}")
        return None

    def _receive(self, expect_fds: bool) -> tuple[bytes, list[int]]:
        if not _readable(self.control.fileno(), REPLY_TIMEOUT_S):
            raise ZygoteFailed(f"no answer within {REPLY_TIMEOUT_S:g}s")
        reply, fds, _flags, _address = socket.recv_fds(
            self.control, _MESSAGE_MAX, 1 if expect_fds else 0, socket.MSG_CMSG_CLOEXEC
        )
        if not reply:
            raise ZygoteFailed("it has gone")
        return reply, fds

    def _failed(self, why: str) -> ZygoteFailed:
        self.broken = True
        log.warning("the fork server (pid %d) failed: %s", self.pid, why)
        return ZygoteFailed(why)

    def diagnostics(self) -> str:
        """What it wrote to its own stderr (nothing, unless its start failed), without waiting for more."""
        stream = self.proc.stderr
        if stream is None or stream.closed:
            return ""
        os.set_blocking(stream.fileno(), False)
        try:
            return (os.read(stream.fileno(), 4096) or b"").decode(errors="replace").strip()
        except BlockingIOError:
            return ""

    def mark_dead(self) -> None:
        """The sweep reaped it: its PID may belong to anything now."""
        self.broken = True
        self.proc.returncode = self.proc.returncode if self.proc.returncode is not None else -signal.SIGKILL

    def discard(self) -> None:
        """Kill and reap it (through its pidfd: never a process that got its PID). Once is enough."""
        self.broken = True
        if self._pidfd < 0:
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        if self.proc.returncode is None:
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED)
            self.proc.returncode = -signal.SIGKILL
        os.close(self._pidfd)
        self._pidfd = -1
        super().discard()


class ForkedJob:
    """A job's first process forked by the fork server, for JobRunner._execute as a Popen would be."""

    def __init__(self, zygote: Zygote, pid: int, pidfd: int):
        self.zygote = zygote
        self.pid = pid
        self.pidfd = pidfd
        self.returncode: int | None = None
        # The service's pipe ends, set by the runner.
        self.stdin: io.FileIO | None = None
        self.stdout: io.FileIO | None = None
        self.stderr: io.FileIO | None = None

    def poll(self) -> int | None:
        if self.returncode is None and _readable(self.pidfd, 0):
            self.wait()
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def wait(self) -> int:
        """Its exit code (negative: the signal that ended it), once it has ended."""
        if self.returncode is not None:
            return self.returncode
        if not _readable(self.pidfd, REPLY_TIMEOUT_S):  # called after kill(): it is a matter of moments
            self.kill()
        status = self.zygote.status_of(self)
        if status is None:
            status = self._reap_orphan()
        self.returncode = -signal.SIGKILL if status is None else os.waitstatus_to_exitcode(status)
        return self.returncode

    def _reap_orphan(self) -> int | None:
        """The fork server died (or hangs): end it; its child, this job's process, passes to PID 1 (the
        service, in a container), which can then reap it. Elsewhere its status is lost."""
        self.zygote.discard()
        self.kill()
        waited = 0.0
        while True:
            try:
                result = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOHANG)
            except ChildProcessError:
                result = None
            if result is not None:
                return _wait_status(result)
            if waited >= _ORPHAN_WAIT_S:
                log.error("job process %d: its exit status was lost with the fork server", self.pid)
                return None
            select.select([], [], [], 0.01)
            waited += 0.01

    def __enter__(self) -> ForkedJob:
        return self

    def __exit__(self, *exc) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


def _wait_status(result: os.waitid_result) -> int:
    """waitid()'s result as the wait status waitpid() would have given."""
    if result.si_code == os.CLD_EXITED:
        return (result.si_status & 0xFF) << 8
    return result.si_status & 0x7F
