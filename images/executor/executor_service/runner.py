"""Running one job: a fresh directory, a limited process tree, captured output, then a clean slate.

Jobs are serialized (FIFO) per container: one job owns the container's processes and scratch
space at a time, which is what lets the sweep after it remove *everything*.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import selectors
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio

from executor_service import isolation
from executor_service.isolation import IsolationMode
from executor_service.jobs import LANGUAGES, JobResult, JobSpec
from executor_service.prestart import FORK_HOOK, WAITING_HOOK, WaitingInterpreter, write_hook
from executor_service.settings import Settings
from executor_service.sweeper import CleanupFailed, InitSweeper, SessionSweeper, wipe
from executor_service.zygote import MODULE_NAME as ZYGOTE_MODULE
from executor_service.zygote import ForkedJob, Zygote, ZygoteFailed

log = logging.getLogger(__name__)

#: The job's PATH; the interpreters are looked up on it once, at start.
JOB_PATH = "/usr/local/bin:/usr/bin:/bin"
#: Per-process open files a job may have.
JOB_NOFILE = 1024
#: Writable places a container job could leave data in besides the work root.
CONTAINER_SCRATCH_DIRS = (Path("/tmp"), Path("/dev/shm"), Path("/dev/mqueue"))
#: Device files a job may open for writing (besides its scratch directories); the launcher's Landlock
#: domain refuses every other file, all of /proc above all (oom_score_adj, /proc/<pid>/mem).
JOB_WRITABLE_DEVICES = tuple(Path("/dev", name) for name in ("null", "zero", "full", "random", "urandom", "tty"))
#: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): the same number on x86_64 and aarch64.
_SYS_LANDLOCK_CREATE_RULESET = 444
#: Landlock's signal and abstract-socket scoping: what keeps forked jobs off the fork server (zygote.py).
FORK_LANDLOCK_ABI = 6
_START_MODES = {
    "fork": "forked by a fork server",
    "python": "in an interpreter started after the previous job's sweep",
    "none": "cold",
}
_READ_CHUNK = 65536
#: After the job's processes are gone, how long to wait for its pipes to report end of file.
_DRAIN_GRACE_S = 2.0


class JobStartFailed(RuntimeError):
    """The job's interpreter could not be started."""


class ExecutorUnavailable(RuntimeError):
    """A cleanup failed earlier: this container must not run another job (restart it)."""


def job_environment(job_dir: Path) -> dict[str, str]:
    """A job's whole environment: nothing of the service's (its token above all) gets through."""
    return {
        "PATH": JOB_PATH,
        "HOME": str(job_dir),
        "TMPDIR": str(job_dir),
        "LANG": "C.UTF-8",
        # Output printed before a deadline kill must not be lost in a buffer.
        "PYTHONUNBUFFERED": "1",
    }


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 without Landlock (or with the syscall filtered)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return max(0, libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))


@dataclass(frozen=True)
class JobLimits:
    """What the launcher (launcher/job_launch.c) sets on a job before its interpreter starts."""

    nproc: int
    cpu_seconds: int
    nofile: int
    address_space_bytes: int  # 0: unlimited

    @classmethod
    def for_job(cls, settings: Settings, timeout_s: float) -> JobLimits:
        memory = settings.job_memory_mb * 1024 * 1024 if settings.job_memory_mb else 0
        # One second above the deadline: RLIMIT_CPU is a backstop behind the wall-clock kill.
        return cls(settings.job_nproc, math.ceil(timeout_s) + 1, JOB_NOFILE, memory)

    def launch_argv(self, launcher: Path, program: list[str], writable: tuple[Path, ...] = ()) -> list[str]:
        numbers = (self.nproc, self.cpu_seconds, self.nofile, self.address_space_bytes)
        allowed = [arg for path in writable for arg in ("-w", str(path))]
        return [str(launcher), *map(str, numbers), *allowed, "--", *program]


class _CappedOutput:
    def __init__(self, cap: int):
        self.cap = cap
        self.data = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass
class _Pipes:
    """The service's ends of a job's stdin/stdout/stderr, read and written without blocking."""

    selector: selectors.BaseSelector
    stdout: _CappedOutput
    stderr: _CappedOutput
    outputs: dict[int, _CappedOutput] = field(default_factory=dict)
    stdin: IO[bytes] | None = None
    stdin_data: memoryview = memoryview(b"")

    def pump(self, timeout: float | None) -> bool:
        """Move data for up to ``timeout`` seconds; True once a watched exit fd reported."""
        exited = False
        for key, _events in self.selector.select(timeout):
            fd = key.fd
            if key.data == "exit":
                exited = True
                self.selector.unregister(fd)
            elif key.data == "stdin":
                self._write_stdin(fd)
            else:
                self._read(fd)
        return exited

    def open_outputs(self) -> bool:
        return any(fd in self.outputs for fd in self._registered())

    def _registered(self) -> list[int]:
        return [key.fd for key in self.selector.get_map().values()]

    def _read(self, fd: int) -> None:
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return
        if chunk:
            self.outputs[fd].feed(chunk)
        else:
            self.selector.unregister(fd)

    def _write_stdin(self, fd: int) -> None:
        try:
            written = os.write(fd, self.stdin_data[:_READ_CHUNK])
        except BlockingIOError:
            return
        except BrokenPipeError:  # the job does not read its stdin: fine
            written = len(self.stdin_data)
        self.stdin_data = self.stdin_data[written:]
        if not self.stdin_data:
            self.close_stdin()

    def close_stdin(self) -> None:
        """End of input for the job (all of it written, or the job is over)."""
        if self.stdin is None or self.stdin.closed:
            return
        if self.stdin.fileno() in self._registered():
            self.selector.unregister(self.stdin.fileno())
        self.stdin.close()


class JobRunner:
    def __init__(self, settings: Settings, mode: IsolationMode):
        self.settings = settings
        self.mode = mode
        self.sweeper = InitSweeper() if mode is IsolationMode.CONTAINER else SessionSweeper()
        self.work_root = settings.work_root
        self.job_dir = self.work_root / "job"
        if mode is IsolationMode.CONTAINER:
            # Everything writable in the container; in development only the work root is ours to empty.
            extra = [d for d in CONTAINER_SCRATCH_DIRS if d != self.work_root]
            self.scratch_dirs = [self.work_root, *extra]
        else:
            self.scratch_dirs = [self.work_root]
        #: Where a job may open files for writing (launcher -w); everything else is refused to it.
        self.job_writable = (*self.scratch_dirs, *JOB_WRITABLE_DEVICES)
        self.interpreters: dict[str, str] = {}
        self.unusable_reason: str | None = None
        self._lock = anyio.Lock()
        self.jobs_run = 0
        #: How Python jobs start (EXECUTOR_PRESTART, settled by prepare(), which falls back when the kernel
        #: or the image lack what a mode needs): "fork" (forked by the fork server, zygote.py), "python"
        #: (an interpreter started after the last sweep becomes the job, prestart.py) or "none" (cold).
        self.python_start: str = settings.prestart
        self.zygote_module = settings.job_launcher.parent / ZYGOTE_MODULE
        self._user_site: Path | None = None  # where Python looks for usercustomize, under the job dir
        self._precompiled_hook = False
        self._waiting: WaitingInterpreter | None = None  # "python": the next Python job's process
        self._zygote: Zygote | None = None  # "fork": the fork server
        self._creator: threading.Thread | None = None  # starting one of them, after a sweep and a wipe
        #: How each job started: "fork", "warm" (handed to a waiting interpreter) or "cold"; tests read it.
        self.last_start: str | None = None

    def prepare(self) -> None:
        """Checks and a clean slate before the first job. Raises isolation.StartupError."""
        for language in LANGUAGES.values():
            found = shutil.which(language.interpreter, path=JOB_PATH)
            if found is None:
                raise isolation.StartupError(f"no {language.interpreter!r} on the job PATH {JOB_PATH}")
            self.interpreters[language.name] = found
        abi = landlock_abi()
        if abi < 1:
            raise isolation.StartupError(
                "the kernel offers no Landlock (Linux 5.13+ with landlock in its LSM list): without it a job "
                "could lower its oom_score_adj and steer the OOM killer onto the service"
            )
        launcher = self.settings.job_launcher
        if not launcher.is_file() or not os.access(launcher, os.X_OK):
            raise isolation.StartupError(f"EXECUTOR_JOB_LAUNCHER {launcher} is not an executable file")
        if not self.work_root.is_dir() or not os.access(self.work_root, os.W_OK | os.X_OK):
            raise isolation.StartupError(
                f"EXECUTOR_WORK_ROOT {self.work_root} is not a writable directory (the stack mounts a tmpfs there)"
            )
        self.sweeper.end_leftovers()
        wipe(self.scratch_dirs)
        self.python_start = self._settle_python_start(abi)
        if self.python_start != "none":
            self._start_creator()

    def _settle_python_start(self, abi: int) -> str:
        wanted = self.settings.prestart
        if wanted != "none":
            self._user_site = self._find_user_site("python")
        if self._user_site is None:
            settled = "none"
        elif wanted == "fork" and abi < FORK_LANDLOCK_ABI:
            log.warning(
                "EXECUTOR_PRESTART=fork needs Landlock ABI %d (signal scoping); this kernel has %d: "
                "falling back to python",
                FORK_LANDLOCK_ABI,
                abi,
            )
            settled = "python"
        elif wanted == "fork" and not self.zygote_module.is_file():
            log.warning("EXECUTOR_PRESTART=fork: no fork server module %s: falling back to python", self.zygote_module)
            settled = "python"
        else:
            settled = wanted
        log.info("Python jobs start %s (EXECUTOR_PRESTART=%s, Landlock ABI %d)", _START_MODES[settled], wanted, abi)
        return settled

    def _find_user_site(self, language: str) -> Path | None:
        """The user site directory a job's Python imports usercustomize from; None: prestart off."""
        probe = (
            "import site, sys; print(site.ENABLE_USER_SITE); print(site.getusersitepackages()); "
            "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"
        )
        try:
            out = subprocess.run(
                [self.interpreters[language], "-c", probe],
                env=job_environment(self.job_dir),
                cwd="/",
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.splitlines()
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("no pre-started interpreters: probing %s failed: %s", language, exc)
            return None
        site_dir = Path(out[1]) if len(out) == 3 and out[0] == "True" else None
        # Bytecode made by the service's Python loads in the job's when both have the same bytecode magic.
        self._precompiled_hook = len(out) == 3 and out[2] == importlib.util.MAGIC_NUMBER.hex()
        if site_dir is None or self.job_dir not in site_dir.parents:
            log.warning("no pre-started interpreters: %s has no user site beneath the job dir (%s)", language, out)
            return None
        return site_dir

    def close(self) -> None:
        """Stop a waiting interpreter or the fork server (tests; in a container they die with the service)."""
        self._join_creator()
        for process in (self._waiting, self._zygote):
            if process is not None:
                process.discard()
                self._sweep(process.proc.pid)
                wipe(self.scratch_dirs)
        self._waiting = self._zygote = None

    def _start_creator(self) -> None:
        # On a thread: the result of the job just done goes back without waiting for the next start.
        self._creator = threading.Thread(target=self._create_waiting, name="prestart", daemon=True)
        self._creator.start()

    def _join_creator(self) -> None:
        if self._creator is not None:
            self._creator.join()
            self._creator = None

    def _create_waiting(self) -> None:
        """Start the next job's interpreter ("python") or a fork server ("fork"), replacing a fork server that
        must go. Called only after a sweep and a wipe: nothing of any job exists."""
        old, self._zygote = self._zygote, None
        if old is not None:
            old.discard()  # it ran no job code and has no child left: nothing else to end
        user_site = self._user_site
        if user_site is None or self.unusable_reason is not None:
            return
        hook = FORK_HOOK if self.python_start == "fork" else WAITING_HOOK
        try:
            proc, control = self._launch_waiting(hook, user_site)
        except (OSError, subprocess.SubprocessError) as exc:
            with contextlib.suppress(CleanupFailed):
                wipe(self.scratch_dirs)  # else the next job wipes first (see _fresh_job_dir)
            log.warning("could not pre-start the next Python job's interpreter (the next job starts cold): %s", exc)
            return
        hook_dir = self.job_dir / ".local"
        if self.python_start != "fork":
            self._waiting = WaitingInterpreter("python", proc, control, hook_dir)
            return
        zygote = Zygote("python", proc, control, hook_dir)
        try:
            if zygote.wait_ready():
                zygote.remove_hook()  # read: no job must find it
                self._zygote = zygote
                return
            why = zygote.diagnostics() or "it did not report ready"
        except OSError as exc:
            why = str(exc)
        zygote.discard()
        log.warning("the fork server did not start (Python jobs start cold until the next try): %s", why)
        with contextlib.suppress(CleanupFailed):
            self._sweep(zygote.pid)
            wipe(self.scratch_dirs)

    def _launch_waiting(self, hook: str, user_site: Path) -> tuple[subprocess.Popen[bytes], socket.socket]:
        """``python3 <job dir>/main.py`` started as a job's interpreter is, with ``hook`` in ``user_site`` (the
        job's Python user site, ``self._user_site``)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.job_dir.mkdir(mode=0o700)
            source = hook.format(fd=theirs.fileno(), user_site=str(user_site), module=str(self.zygote_module))
            write_hook(user_site, source, self._precompiled_hook)
            # The longest CPU limit a job may have; the job's own is set at the hand-over or by the fork.
            limits = JobLimits.for_job(self.settings, self.settings.max_timeout_s)
            script = self.job_dir / LANGUAGES["python"].script_name  # written per job; Python opens it after site
            argv = limits.launch_argv(
                self.settings.job_launcher, [self.interpreters["python"], str(script)], self.job_writable
            )
            proc = subprocess.Popen(
                argv,
                cwd=self.job_dir,
                env=job_environment(self.job_dir),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return proc, ours

    def _spared(self) -> frozenset[int]:
        """What the sweep must not end: the fork server, by the PID of the service's own child."""
        zygote = self._zygote
        return frozenset() if zygote is None or zygote.broken else frozenset({zygote.pid})

    def _sweep(self, job_pid: int | None) -> None:
        reaped = self.sweeper.end_leftovers(job_pid, self._spared())
        if self._zygote is not None and self._zygote.pid in reaped:
            self._zygote.mark_dead()  # it died: never spared again, replaced after this job

    async def run(self, spec: JobSpec) -> JobResult:
        """Run ``spec`` once every earlier job has finished and been cleaned up after."""
        async with self._lock:
            if self.unusable_reason is not None:
                raise ExecutorUnavailable(self.unusable_reason)
            # Not abandoned on cancel: a disconnected client still waits for the sweep to finish.
            return await anyio.to_thread.run_sync(self._run_and_sweep, spec)

    def _run_and_sweep(self, spec: JobSpec) -> JobResult:
        try:
            return self._run(spec)
        except CleanupFailed as exc:
            self.unusable_reason = f"cleanup after a job failed: {exc}"
            log.error("%s; refusing further jobs", self.unusable_reason)
            raise ExecutorUnavailable(self.unusable_reason) from exc
        finally:
            self.jobs_run += 1
            if self.unusable_reason is None:
                self._after_job()  # after the sweep and wipe of _run: nothing of this job is left

    def _after_job(self) -> None:
        if self.python_start == "python":
            self._start_creator()
        elif self.python_start == "fork":
            zygote = self._zygote
            if zygote is None or not zygote.usable() or zygote.jobs >= self.settings.fork_jobs:
                self._start_creator()

    def _run(self, spec: JobSpec) -> JobResult:
        try:
            proc, started = self._start(spec)
            return self._execute(spec, proc, started)
        finally:
            wipe(self.scratch_dirs)

    def _start(self, spec: JobSpec) -> tuple[subprocess.Popen[bytes] | ForkedJob, float]:
        """The job's first process, running: forked by the fork server or handed to the waiting interpreter
        if there is one and it fits, else a cold start."""
        self._join_creator()  # one being started has not read its hook yet: no job may run before it has
        workdir = self._workdir(spec)
        zygote = self._zygote
        if zygote is not None and spec.language.name == "python":
            forked = self._fork(zygote, spec, workdir)
            if forked is not None:
                return forked
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            handed = self._hand_over(waiting, spec, workdir) if waiting.language == spec.language.name else None
            if handed is not None:
                return handed
            # Another language, or it failed: ended like a job's leftovers, then a clean slate.
            waiting.discard()
            self._sweep(waiting.proc.pid)
            wipe(self.scratch_dirs)
        return self._start_cold(spec, workdir)

    def _workdir(self, spec: JobSpec) -> Path:
        """The job's working directory: its scratch directory, or the one it names (checked as a cold
        start's chdir would: the same UID, and Landlock leaves directory changes alone)."""
        if spec.workdir is None:
            return self.job_dir
        workdir = Path(spec.workdir)
        if not workdir.is_absolute() or not workdir.is_dir() or not os.access(workdir, os.X_OK):
            raise JobStartFailed(
                f"could not start the {spec.language.name} job: its working directory {workdir} is not an "
                "absolute path of a directory it can enter"
            )
        return workdir

    def _fresh_job_dir(self) -> None:
        """An empty job directory (one left by a pre-start that failed half-way is emptied first)."""
        if self.job_dir.exists():
            if not any(self.job_dir.iterdir()):
                return  # the fork server's, its hook removed
            wipe(self.scratch_dirs)
        self.job_dir.mkdir(mode=0o700)

    def _fork(self, zygote: Zygote, spec: JobSpec, workdir: Path) -> tuple[ForkedJob, float] | None:
        """The job forked by ``zygote`` (``self._zygote``); None when it could not (then it is ended)."""
        if zygote.usable():
            self._fresh_job_dir()
            (self.job_dir / spec.language.script_name).write_bytes(spec.source)
            limits = JobLimits.for_job(self.settings, spec.timeout_s)
            try:
                forked = self._forked(zygote, limits.cpu_seconds, workdir, spec.stdin is not None)
            except ZygoteFailed:
                pass
            else:
                self.last_start = "fork"
                return forked
        # It died, hangs or answered wrongly: ended, then a clean slate; a new one is started after this job.
        self._zygote = None
        zygote.discard()
        self._sweep(None)  # a forked process still waiting for its go, if any
        wipe(self.scratch_dirs)
        return None

    @staticmethod
    def _forked(zygote: Zygote, cpu_seconds: int, workdir: Path, has_stdin: bool) -> tuple[ForkedJob, float]:
        """Fresh pipes, the child's ends sent to the fork server with the job (ours kept), and the clock."""
        stdin = os.pipe2(os.O_CLOEXEC) if has_stdin else (-1, -1)
        stdout, stderr = os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)
        started = time.monotonic()
        try:
            job = zygote.fork(cpu_seconds, workdir, stdin[0], stdout[1], stderr[1])
        except BaseException:
            for fd in (stdin[1], stdout[0], stderr[0]):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            for fd in (stdin[0], stdout[1], stderr[1]):
                if fd >= 0:
                    os.close(fd)
        job.stdin = open(stdin[1], "wb", buffering=0) if has_stdin else None  # noqa: SIM115 - closed with the job
        job.stdout, job.stderr = open(stdout[0], "rb", buffering=0), open(stderr[0], "rb", buffering=0)  # noqa: SIM115
        return job, started

    def _hand_over(
        self, waiting: WaitingInterpreter, spec: JobSpec, workdir: Path
    ) -> tuple[subprocess.Popen[bytes], float] | None:
        """The job to the waiting interpreter ("python"); None when it cannot take it (the caller ends it)."""
        try:
            if not waiting.wait_ready():
                return None
            waiting.remove_hook()
            (self.job_dir / spec.language.script_name).write_bytes(spec.source)
            limits = JobLimits.for_job(self.settings, spec.timeout_s)
            started = time.monotonic()
            waiting.hand_over(limits.cpu_seconds, spec.stdin is not None, workdir)
        except OSError as exc:
            log.warning("could not hand the job to the waiting interpreter (%s): starting cold", exc)
            return None
        self.last_start = "warm"
        return waiting.proc, started

    def _start_cold(self, spec: JobSpec, workdir: Path) -> tuple[subprocess.Popen[bytes], float]:
        self._fresh_job_dir()
        script = self.job_dir / spec.language.script_name
        script.write_bytes(spec.source)
        limits = JobLimits.for_job(self.settings, spec.timeout_s)
        argv = limits.launch_argv(
            self.settings.job_launcher, [self.interpreters[spec.language.name], str(script)], self.job_writable
        )
        started = time.monotonic()
        try:
            # No preexec_fn, so Popen can vfork: forking the whole service would cost ms per job.
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env=job_environment(self.job_dir),
                stdin=subprocess.DEVNULL if spec.stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise JobStartFailed(f"could not start the {spec.language.name} job: {exc}") from exc
        self.last_start = "cold"
        return proc, started

    def _execute(self, spec: JobSpec, proc: subprocess.Popen[bytes] | ForkedJob, started: float) -> JobResult:
        with selectors.DefaultSelector() as selector:
            with proc:  # closes the pipes on the way out
                try:
                    pipes = self._watch(proc, spec, selector)
                    timed_out = self._wait_for_exit(proc, pipes, started + spec.timeout_s)
                    duration_ms = (time.monotonic() - started) * 1000
                finally:
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait()  # reap the job's first process before the sweep reaps anything else
                    self._sweep(proc.pid)
                self._drain(pipes)
        stdout, stderr = pipes.stdout, pipes.stderr
        code = proc.returncode
        if code is None:  # proc.wait() above reaped it, or raised
            raise RuntimeError(f"job process {proc.pid} has no exit status after it was waited for")
        result = JobResult(
            exit_code=code if code >= 0 else 128 - code,
            stdout=stdout.text(),
            stderr=stderr.text(),
            duration_ms=round(duration_ms, 3),
            timed_out=timed_out,
            truncated=stdout.truncated or stderr.truncated,
        )
        log.info(
            "job %s (%s start): exit %d in %.1f ms%s%s (stdout %d B, stderr %d B)",
            spec.language.name,
            self.last_start,
            result.exit_code,
            result.duration_ms,
            ", timed out" if timed_out else "",
            ", truncated" if result.truncated else "",
            stdout.total,
            stderr.total,
        )
        return result

    @staticmethod
    def _watch(proc: subprocess.Popen[bytes] | ForkedJob, spec: JobSpec, selector: selectors.BaseSelector) -> _Pipes:
        pipes = _Pipes(
            selector, stdout=_CappedOutput(spec.max_output_bytes), stderr=_CappedOutput(spec.max_output_bytes)
        )
        for stream, capture in ((proc.stdout, pipes.stdout), (proc.stderr, pipes.stderr)):
            if stream is None:  # both start with stdout and stderr pipes (_start_cold, _launch_waiting, _forked)
                raise RuntimeError(f"job process {proc.pid} has no output pipe")
            fd = stream.fileno()
            os.set_blocking(fd, False)
            pipes.outputs[fd] = capture
            selector.register(fd, selectors.EVENT_READ, "output")
        if proc.stdin is not None:
            pipes.stdin, pipes.stdin_data = proc.stdin, memoryview(spec.stdin or b"")
            if pipes.stdin_data:
                os.set_blocking(proc.stdin.fileno(), False)
                selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "stdin")
            else:
                pipes.close_stdin()
        return pipes

    @staticmethod
    def _wait_for_exit(proc: subprocess.Popen[bytes] | ForkedJob, pipes: _Pipes, deadline: float) -> bool:
        """Pump output until the job's first process exits (False) or the deadline passes (True).

        The first process's exit ends the job even while a background child still holds the
        pipes open; the sweep then ends that child.
        """
        if isinstance(proc, ForkedJob):
            exit_fd = os.dup(proc.pidfd)
        else:
            try:
                exit_fd = os.pidfd_open(proc.pid)
            except OSError:  # no pidfd (old kernel or filtered): poll instead
                exit_fd = None
        if exit_fd is not None:
            pipes.selector.register(exit_fd, selectors.EVENT_READ, "exit")
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return proc.poll() is None
                if pipes.pump(remaining if exit_fd is not None else min(remaining, 0.01)):
                    return False
                if exit_fd is None and proc.poll() is not None:
                    return False
        finally:
            if exit_fd is not None:
                if exit_fd in pipes._registered():
                    pipes.selector.unregister(exit_fd)
                os.close(exit_fd)

    @staticmethod
    def _drain(pipes: _Pipes) -> None:
        """Collect what the job wrote before it ended; every writer is gone, so EOF comes at once."""
        pipes.close_stdin()
        grace_until = time.monotonic() + _DRAIN_GRACE_S
        while pipes.open_outputs():
            remaining = grace_until - time.monotonic()
            if remaining <= 0:
                log.warning("job output pipes still open %.0fs after its processes ended", _DRAIN_GRACE_S)
                return
            pipes.pump(remaining)
