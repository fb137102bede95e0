"""Jobs that compare a warm start with a cold one (unit tests here, container tests against real executors).

Plain data: importable without the executor's package on the path.
"""

#: A job's whole view of itself, taken before it imports anything.
PROBE = r"""
_globals = sorted(globals())
import sys
_modules = sorted(sys.modules)
_importers = sorted(sys.path_importer_cache)
import json, os, resource, stat
def depth():
    frame, count = sys._getframe(), 0
    while frame is not None:
        frame, count = frame.f_back, count + 1
    return count
def stream(s):
    return [repr(s), s.encoding, s.errors, s.line_buffering, s.write_through, getattr(s.buffer, "raw", s.buffer).name, s.seekable(),
            stat.S_IFMT(os.fstat(s.fileno()).st_mode)]
try:
    open("/proc/self/oom_score_adj", "w").write("0")
    lowered = "written"
except OSError as exc:
    lowered = type(exc).__name__
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
print(json.dumps({
    "globals": _globals, "modules": _modules, "importers": _importers,
    "main": [__file__, type(__loader__).__name__, __loader__.name, __loader__.path, repr(__spec__), __cached__,
             __doc__, __name__, __package__, __annotations__],
    "argv": sys.argv, "orig_argv": sys.orig_argv, "path": sys.path, "flags": repr(sys.flags),
    "executable": sys.executable, "cwd": os.getcwd(), "env": dict(os.environ), "umask": os.umask(0o22),
    "rlimits": {name: resource.getrlimit(getattr(resource, name)) for name in dir(resource)
                if name.startswith("RLIMIT_")},
    "fds": sorted(os.listdir("/proc/self/fd")),
    "stdin": stream(sys.stdin) + [sys.stdin.read()], "stdout": stream(sys.stdout), "stderr": stream(sys.stderr),
    "same_stdin": sys.stdin is sys.__stdin__,
    "cmdline": open("/proc/self/cmdline", "rb").read().decode(),
    "status": {key: status[key].strip() for key in
               ("Uid", "Gid", "Groups", "SigBlk", "SigIgn", "SigCgt", "NoNewPrivs", "Seccomp", "CapEff", "Threads")},
    "oom_score_adj": open("/proc/self/oom_score_adj").read(), "lowering_it": lowered,
    "session_leader": os.getsid(0) == os.getpid(), "group_leader": os.getpgrp() == os.getpid(),
    "depth": depth(), "recursion_limit": sys.getrecursionlimit(),
    "listing": sorted(os.listdir(".")), "user_site": os.path.exists(sys.modules["site"].USER_SITE),
}))
"""

#: Endings and failures whose result (exit code, output, flags) must not depend on how the job started.
CASES = {
    "exit_3": ("import sys; sys.exit(3)", {}),
    "exit_text": ("print('a'); import sys; sys.exit('bye')", {}),
    "traceback": ("def f():\n    1 / 0\nf()\n", {}),
    "keyboard_interrupt": ("import atexit; atexit.register(print, 'at exit')\nraise KeyboardInterrupt\n", {}),
    "sigterm": ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", {}),
    "syntax_error": ("def (:\n", {}),
    "excepthook": (
        "import sys, traceback\n"
        "sys.excepthook = lambda t, v, tb: print('hook', t.__name__, [f.name for f in traceback.extract_tb(tb)])\n"
        "def g():\n    raise OSError('x')\ng()\n",
        {},
    ),
    "recursion": (
        "import sys\nsys.setrecursionlimit(200)\nn = 0\ndef r():\n    global n\n    n += 1\n    r()\n"
        "try:\n    r()\nexcept RecursionError:\n    print(n)\n",
        {},
    ),
    "docstring": ('"""the doc"""\nprint(__doc__, __name__)', {}),
    "stdin": ("import sys; print(sys.stdin.read().upper(), end='')", {"stdin": "hello\nworld\n"}),
    "empty_stdin": ("import sys; print(repr(sys.stdin.read()), sys.stdin.seekable())", {"stdin": ""}),
    "cpu_deadline": ("while True: pass", {"timeout_s": 0.5}),
    "sleep_deadline": ("import time; print('started', flush=True); time.sleep(30)", {"timeout_s": 0.5}),
    "output_cap": ("print('x' * 10000); import sys; print('y' * 300, file=sys.stderr)", {"cap": 100}),
    "cpu_limit": ("import resource; print(resource.getrlimit(resource.RLIMIT_CPU))", {"timeout_s": 3}),
    "background_child": ("import subprocess; subprocess.Popen(['sleep', '30']); print('parent done')", {}),
    "file_of_the_job": ("print(open(__file__).read().splitlines()[0])", {}),
}

#: The start of the hostile jobs: ``attempt(action)`` gives "allowed" or the name of the errno it raised;
#: ``syscall(number, *args)`` makes a raw system call, raising OSError on failure.
ATTEMPTS = r"""
import ctypes, errno
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
def syscall(number, *args):
    ctypes.set_errno(0)
    if _libc.syscall(ctypes.c_long(number), *(ctypes.c_long(arg) for arg in args)) == -1:
        raise OSError(ctypes.get_errno(), "")
"""

#: A job that tries everything a process of the same UID could do to its parent, the fork server (a forked job's
#: parent); prints what each attempt gave ("allowed" or the errno's name) and the parent's PID ("server").
ATTACK_THE_FORK_SERVER = (
    ATTEMPTS
    + r"""
import json, os, resource, signal
server = os.getppid()
PTRACE = {"x86_64": 101, "aarch64": 117}[os.uname().machine]
def pidfd_kill():
    fd = os.pidfd_open(server)
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)
report = {
    "kill": attempt(lambda: os.kill(server, signal.SIGKILL)),
    "stop": attempt(lambda: os.kill(server, signal.SIGSTOP)),
    "probe_signal": attempt(lambda: os.kill(server, 0)),
    "pidfd_kill": attempt(pidfd_kill),
    "process_group": attempt(lambda: os.killpg(os.getpgid(server), signal.SIGKILL)),
    "prlimit_nofile": attempt(lambda: resource.prlimit(server, resource.RLIMIT_NOFILE, (4, 4))),
    "prlimit_cpu": attempt(lambda: resource.prlimit(server, resource.RLIMIT_CPU, (1, 1))),
    "prlimit_as": attempt(lambda: resource.prlimit(server, resource.RLIMIT_AS, (1 << 20, 1 << 20))),
    "prlimit_nproc": attempt(lambda: resource.prlimit(server, resource.RLIMIT_NPROC, (1, 1))),
    "renice": attempt(lambda: os.setpriority(os.PRIO_PROCESS, server, 19)),
    "renice_user": attempt(lambda: os.setpriority(os.PRIO_USER, 0, 19)),
    "affinity": attempt(lambda: os.sched_setaffinity(server, {0})),
    "scheduler": attempt(lambda: os.sched_setscheduler(server, os.SCHED_BATCH, os.sched_param(0))),
    "ptrace_attach": attempt(lambda: syscall(PTRACE, 16, server, 0, 0)),
    "ptrace_seize": attempt(lambda: syscall(PTRACE, 0x4206, server, 0, 0)),
    "mem": attempt(lambda: os.close(os.open(f"/proc/{server}/mem", os.O_RDWR))),
    "environ": attempt(lambda: open(f"/proc/{server}/environ", "rb").read()),
    "maps": attempt(lambda: open(f"/proc/{server}/maps").read()),
    "reading_its_limits": attempt(lambda: resource.prlimit(server, resource.RLIMIT_NOFILE)),
}
# Its fds (the control socket above all): their numbers are listed as for any process of the UID, but
# none can be opened or followed.
for fd in os.listdir(f"/proc/{server}/fd"):
    report[f"open_fd_{fd}"] = attempt(lambda: os.close(os.open(f"/proc/{server}/fd/{fd}", os.O_RDONLY)))
    report[f"link_fd_{fd}"] = attempt(lambda: os.readlink(f"/proc/{server}/fd/{fd}"))
report["server"] = server
print(json.dumps(report))
"""
)


def expected_attack_outcome(report: dict, as_root: bool) -> dict:
    """What ATTACK_THE_FORK_SERVER must get: EPERM for signals, ptrace, limits, priority and scheduling
    (Landlock's scope and ptrace rule, job-launch's seccomp filter), EACCES for files of /proc, and only
    reading its limits. As root (these unit tests on a host), Landlock lets ptrace-mode reads of an
    enclosing domain's process through; the executors' UIDs are never 0."""
    expected = {
        name: "EACCES" if name in ("mem", "environ", "maps") or "_fd_" in name else "EPERM"
        for name in report
        if name != "server"
    }
    expected["reading_its_limits"] = "allowed"
    if as_root:
        expected.update(environ="allowed", maps="allowed")
    return expected
