"""The service process's own protections against the jobs it runs (which share its UID).

* PID 1 of the container (``init: false``, exec-form CMD): the kernel drops every signal sent to
  a PID-namespace init from inside the namespace when init leaves that signal at its default
  action, SIGKILL and SIGSTOP included. So the service installs no signal handlers (it resets
  Python's SIGINT handler and keeps uvicorn from installing its own): jobs cannot kill or stop it.
* The stop signals (SIGTERM, SIGINT) are instead *blocked* and collected by ``StopSignalWatcher``
  with sigwaitinfo(), which also reports the sender: ``docker stop`` signals from outside the
  namespace (si_pid 0, si_code SI_USER) and shuts the service down promptly; the same signal from a
  job carries the job's pid and is ignored. rt_sigqueueinfo cannot forge that (the kernel refuses
  si_code >= 0 between processes).
* Not dumpable: /proc/1/{environ,mem,maps,fd,...} turn root-owned, so jobs cannot read the service's
  memory (the token is not in it anyway: the service holds only its SHA-256, see settings.py).
"""

from __future__ import annotations

import ctypes
import enum
import logging
import os
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
SI_USER = 0
SI_KERNEL = 0x80
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})

_libc = ctypes.CDLL(None, use_errno=True)


class StartupError(RuntimeError):
    """The service must not start as configured; the message says why."""


class IsolationMode(enum.Enum):
    #: PID 1 of its own PID namespace: leftovers are found as descendants of PID 1.
    CONTAINER = "container"
    #: Anywhere else (tests, a developer's shell): leftovers are found by the job's session only.
    DEVELOPMENT = "development"

    @classmethod
    def detect(cls) -> IsolationMode:
        return cls.CONTAINER if os.getpid() == 1 else cls.DEVELOPMENT


def refuse_root() -> None:
    if os.getuid() == 0 or os.geteuid() == 0:
        raise StartupError(
            "refusing to run as UID 0: jobs share the service's UID; give the container a non-root "
            "user (the stack sets one per executor container)"
        )


def set_dumpable(dumpable: bool) -> None:
    if _libc.prctl(PR_SET_DUMPABLE, int(dumpable), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_DUMPABLE): {os.strerror(errno)}")


def is_dumpable() -> bool:
    return _libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1


def hold_stop_signals() -> None:
    """Block the stop signals in this (main) thread before any other thread starts, so all inherit it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python's KeyboardInterrupt handler
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def accepts_stop_signal(mode: IsolationMode, info: signal.struct_siginfo) -> bool:
    """Whether a collected stop signal comes from someone allowed to stop the service."""
    if mode is IsolationMode.DEVELOPMENT:
        return True
    return info.si_pid == 0 and info.si_code in (SI_USER, SI_KERNEL)


class StopSignalWatcher(threading.Thread):
    """Collects the blocked stop signals; calls ``on_stop`` for one from outside the container."""

    def __init__(self, mode: IsolationMode, on_stop: Callable[[], None]):
        super().__init__(name="stop-signal-watcher", daemon=True)
        self.mode = mode
        self.on_stop = on_stop

    def run(self) -> None:
        while True:
            info = signal.sigwaitinfo(STOP_SIGNALS)
            if accepts_stop_signal(self.mode, info):
                log.info("signal %d received: shutting down", info.si_signo)
                self.on_stop()
            else:
                log.warning("ignored signal %d from pid %d (a job?)", info.si_signo, info.si_pid)
