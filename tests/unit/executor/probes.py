"""Jobs that compare a warm start with a cold one (unit tests here, container tests against real executors).

Plain data: importable without the executor's package on the path.
"""

#: A job's whole view of itself, taken before it imports anything.
PROBE = r'''
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
'''

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
