"""Hostile jobs against a hardened executor container: after each, the service answers and the next job
finds a clean container (no leftover process, file or token).

One container takes every attack in turn (module scope), as a real executor takes job after job.
"""

from __future__ import annotations

import json
import time

import pytest

from executor_service.runner import FORK_LANDLOCK_ABI, landlock_abi
from tests.support.executor_probes import ATTEMPTS

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

#: The next job's view of the container, as JSON.
PROBE = r"""
import json, os
me = os.getpid()
processes = {}
for name in os.listdir("/proc"):
    # Not leftovers: PID 1, this job, and its parent (PID 1, or the fork server that forked it).
    if not name.isdigit() or int(name) in (1, me, os.getppid()):
        continue
    try:
        raw = open(f"/proc/{name}/stat", "rb").read()
        cmdline = open(f"/proc/{name}/cmdline", "rb").read()
    except OSError:
        continue
    ppid = int(raw[raw.rindex(b")") + 2:].split()[1])
    try:
        dumpable = os.stat(f"/proc/{name}/environ").st_uid == os.geteuid()  # root-owned once non-dumpable
    except FileNotFoundError:
        continue
    # The only exception: exec'd from outside (ppid 0) and non-dumpable, i.e. the healthcheck in progress.
    if ppid != 0 or dumpable:
        processes[name] = cmdline.replace(b"\0", b" ").decode(errors="replace")
def listing(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return None
print(json.dumps({
    "processes": processes,
    "tmp": listing("/tmp"),
    "job": listing("."),
    "shm": listing("/dev/shm"),
    "mqueue": listing("/dev/mqueue"),
    "env": dict(os.environ),
}))
"""


@pytest.fixture(scope="module")
def sandbox(make_network, start_executor, declared_executor):
    """The executor under attack, alone on an internal network (no route out), its declared healthcheck
    probing every second."""
    every_second = {
        **declared_executor.inputs["healthcheck"],
        "interval": "1s",
        "timeout": "5s",
        "retries": 3,
        "startPeriod": "0s",
    }
    return start_executor(make_network(internal=True), healthcheck=every_second)


def assert_pristine(sandbox) -> None:
    """The service is up and a new job sees nothing of the jobs before it (the fork server that forks it, its
    parent, is no job's: see test_a_job_cannot_reach_the_next_job_through_the_fork_server)."""
    assert sandbox.health().json() == {"status": "ok"}
    assert sandbox.state()["Status"] == "running"
    view = json.loads(sandbox.run("python", PROBE)["stdout"])
    assert view["processes"] == {}, "processes left over from an earlier job"
    assert view["tmp"] == ["job"]
    assert view["job"] == ["main.py"]
    assert view["shm"] == []
    assert view["mqueue"] in ([], None)
    assert set(view["env"]) == {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONUNBUFFERED"}
    assert sandbox.token not in json.dumps(view["env"])


def test_the_service_is_pid_1_unprivileged_on_a_read_only_image_without_setuid_files(sandbox):
    result = sandbox.run(
        "sh",
        "tr '\\0' ' ' < /proc/1/cmdline; echo\n"
        "grep -E '^(Uid|CapEff|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t' ' '\n"
        "find / -xdev -type f -perm /6000 2>/dev/null\n"
        "touch /opt/executor/app/planted 2>&1 | sed 's/.*: //'",
    )
    lines = result["stdout"].splitlines()
    uid = sandbox.container.attrs["Config"]["User"].split(":")[0]  # the stack's UID for this executor
    assert lines[0].strip() == "python3 -m executor_service"
    assert lines[1:6] == [
        f"Uid: {uid} {uid} {uid} {uid}",
        "CapPrm: 0000000000000000",
        "CapEff: 0000000000000000",
        "NoNewPrivs: 1",
        "Seccomp: 2",
    ]
    assert lines[6:] == ["Read-only file system"]  # and no setuid/setgid file listed before it
    assert_pristine(sandbox)


def test_a_fork_bomb_meets_the_process_limit_and_leaves_nothing(sandbox):
    result = sandbox.run(
        "python",
        "import os, time\n"
        "forks = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(300)\n"
        "            os._exit(0)\n"
        "        forks += 1\n"
        "except BlockingIOError:\n"
        "    print(forks)\n",
        timeout_s=10,
    )
    assert not result["timed_out"]
    env = dict(item.split("=", 1) for item in sandbox.container.attrs["Config"]["Env"])
    job_nproc = int(env["EXECUTOR_JOB_NPROC"])  # what the stack gives a job, below the container's ulimit
    assert 0 < int(result["stdout"]) < job_nproc  # minus the service's own tasks, counted per UID
    assert_pristine(sandbox)
    shell_bomb = sandbox.run("sh", "bomb() { bomb | bomb & }; bomb; sleep 3", timeout_s=2)
    assert shell_bomb["timed_out"]
    assert_pristine(sandbox)


def test_a_memory_bomb_is_what_the_oom_killer_takes(sandbox):
    result = sandbox.run(
        "python", "blocks = []\nwhile True:\n    blocks.append(bytearray(32 * 1024 * 1024))", timeout_s=30
    )
    assert result["exit_code"] == 137  # SIGKILL from the kernel, well before the deadline
    assert not result["timed_out"]
    assert sandbox.state()["Restarting"] is False
    assert_pristine(sandbox)


def test_filling_tmp_and_shm_is_undone_before_the_next_job(sandbox):
    result = sandbox.run(
        "sh",
        "dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>/dev/null\n"
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=100 2>/dev/null\n"
        "mkdir -p /tmp/locked/deeper && chmod 000 /tmp/locked\n"
        "ln -s /opt /dev/shm/link\n"
        "df -P /tmp /dev/shm | tail -n 2 | awk '{print $5}'",
        timeout_s=20,
    )
    assert result["stdout"].split() == ["100%", "100%"]
    usage = sandbox.run("sh", "df -P /tmp /dev/shm | tail -n 2 | awk '{print $3}'")["stdout"].split()
    assert all(int(kib) < 1024 for kib in usage), usage
    assert_pristine(sandbox)


def test_a_cpu_spin_is_killed_at_its_deadline_with_its_children(sandbox):
    result = sandbox.run("sh", "python3 -c 'while True: pass' &\npython3 -c 'while True: pass'", timeout_s=2)
    assert result["timed_out"] is True
    assert result["exit_code"] == 137
    assert 2000 <= result["duration_ms"] < 4000
    assert_pristine(sandbox)


def test_a_daemon_that_left_its_session_does_not_outlive_its_job(sandbox):
    result = sandbox.run(
        "python",
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        for fd in (0, 1, 2):\n"
        "            os.close(fd)\n"
        "        open('/dev/shm/daemon.pid', 'w').write(str(os.getpid()))\n"
        "        time.sleep(300)\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "while not os.path.exists('/dev/shm/daemon.pid'):\n"
        "    time.sleep(0.01)\n"
        "time.sleep(0.05)\n"
        "daemon = int(open('/dev/shm/daemon.pid').read())\n"
        "print(daemon, os.getsid(daemon) != os.getsid(0), os.path.exists(f'/proc/{daemon}'))\n",
    )
    daemon, own_session, running = result["stdout"].split()
    assert (own_session, running) == ("True", "True")  # it had escaped the job's session and was alive
    gone = sandbox.run("sh", f"test -e /proc/{daemon} && echo alive || echo gone")
    assert gone["stdout"] == "gone\n"
    assert_pristine(sandbox)


def test_jobs_cannot_kill_stop_or_signal_pid_1(sandbox):
    """With Landlock ABI 6 the job's scoped domain refuses every signal to a process outside it (EPERM);
    before, the kernel dropped them at PID 1 of the namespace and the service ignored a job's SIGTERM."""
    result = sandbox.run(
        "python",
        "import ctypes, os, signal\n"
        "refused = 0\n"
        "for sig in (signal.SIGSTOP, signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP,\n"
        "            signal.SIGQUIT, signal.SIGUSR1, signal.SIGSEGV):\n"
        "    try:\n"
        "        os.kill(1, sig)\n"
        "    except PermissionError:\n"
        "        refused += 1\n"
        "print(refused)\n"
        "# A forged 'from outside the container' SIGTERM (si_pid 0) through rt_sigqueueinfo.\n"
        "class SigInfo(ctypes.Structure):\n"
        "    _fields_ = [('signo', ctypes.c_int), ('errno', ctypes.c_int), ('code', ctypes.c_int),\n"
        "                ('pad', ctypes.c_int), ('pid', ctypes.c_int), ('uid', ctypes.c_int),\n"
        "                ('rest', ctypes.c_byte * 104)]\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "forged = SigInfo(signo=signal.SIGTERM, code=-1, pid=0, uid=0)\n"
        "SYS_rt_sigqueueinfo = {'x86_64': 129, 'aarch64': 138}[os.uname().machine]\n"
        "print(libc.syscall(SYS_rt_sigqueueinfo, 1, signal.SIGTERM, ctypes.byref(forged)))\n",
    )
    assert result["exit_code"] == 0, result["stderr"]
    refused, forged = result["stdout"].split()
    time.sleep(0.5)  # a stop or kill would have landed by now
    assert_pristine(sandbox)
    if landlock_abi() >= FORK_LANDLOCK_ABI:
        assert (refused, forged) == ("8", "-1")  # none reached the service
    else:
        assert (refused, forged) == ("0", "0") and "ignored signal 15" in sandbox.logs()


def test_jobs_cannot_read_the_service_process_or_find_the_token(sandbox):
    result = sandbox.run(
        "python",
        "import os\n"
        "for path in ('/proc/1/environ', '/proc/1/mem', '/proc/1/maps', '/proc/1/auxv', '/proc/1/fd'):\n"
        "    try:\n"
        "        os.listdir(path) if path.endswith('fd') else open(path, 'rb').read(64)\n"
        "        print(path, 'READABLE')\n"
        "    except PermissionError:\n"
        "        print(path, 'denied')\n"
        "for link in ('/proc/1/cwd', '/proc/1/root', '/proc/1/exe'):\n"
        "    try:\n"
        "        os.readlink(link)\n"
        "        print(link, 'READABLE')\n"
        "    except PermissionError:\n"
        "        print(link, 'denied')\n"
        "found = []\n"
        "for name in os.listdir('/proc'):\n"
        "    try:\n"
        "        found.append(open(f'/proc/{name}/environ', 'rb').read())\n"
        "    except OSError:\n"
        "        pass\n"
        f"print('token seen' if any({sandbox.token.encode()!r} in env for env in found) else 'token not seen')\n",
    )
    lines = result["stdout"].splitlines()
    assert [line.split()[1] for line in lines[:-1]] == ["denied"] * 8, lines
    assert lines[-1] == "token not seen"
    assert_pristine(sandbox)


def test_dangerous_syscalls_are_refused(sandbox):
    result = sandbox.run(
        "python",
        "import ctypes, errno, json, os\n"
        "numbers = {\n"
        "    'x86_64': {'ptrace': 101, 'unshare': 272, 'mount': 165, 'keyctl': 250, 'bpf': 321,\n"
        "               'io_uring_setup': 425, 'process_vm_readv': 310, 'perf_event_open': 298,\n"
        "               'userfaultfd': 323, 'setns': 308},\n"
        "    'aarch64': {'ptrace': 117, 'unshare': 97, 'mount': 40, 'keyctl': 219, 'bpf': 280,\n"
        "                'io_uring_setup': 425, 'process_vm_readv': 270, 'perf_event_open': 241,\n"
        "                'userfaultfd': 282, 'setns': 268},\n"
        "}[os.uname().machine]\n"
        "args = {'ptrace': (16, 1, 0, 0), 'unshare': (0x10000000,), 'mount': (b'none', b'/tmp', b'tmpfs', 0, 0),\n"
        "        'keyctl': (0, 0, 0), 'bpf': (0, 0, 0), 'io_uring_setup': (1, 0),\n"
        "        'process_vm_readv': (1, 0, 0, 0, 0, 0), 'perf_event_open': (0, 0, -1, -1, 0),\n"
        "        'userfaultfd': (0,), 'setns': (0, 0)}\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "outcome = {}\n"
        "for name, number in numbers.items():\n"
        "    ctypes.set_errno(0)\n"
        "    returned = libc.syscall(number, *args[name])\n"
        "    outcome[name] = errno.errorcode.get(ctypes.get_errno(), 'no error') if returned == -1 else 'succeeded'\n"
        "print(json.dumps(outcome))\n",
    )
    outcome = json.loads(result["stdout"])
    assert {name: code in ("EPERM", "ENOSYS") for name, code in outcome.items()} == dict.fromkeys(outcome, True), (
        outcome
    )
    assert_pristine(sandbox)


def test_there_is_no_way_out_of_the_network(sandbox, make_network, start_executor):
    # A host the sandbox must not reach: another executor on an ordinary bridge network of this suite.
    outside = start_executor(make_network(internal=False))
    assert outside.health().status_code == 200  # reachable from the host: a refusal below is isolation
    result = sandbox.run(
        "python",
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({outside.ip!r}, 8080), timeout=3)\n"
        "    print('connected')\n"
        "except OSError as exc:\n"
        "    print('blocked', type(exc).__name__)\n",
        timeout_s=10,
    )
    assert result["stdout"].startswith("blocked"), result
    assert_pristine(sandbox)


def test_the_healthcheck_is_never_caught_by_the_sweep_after_a_job(sandbox):
    """`docker exec` processes (the healthcheck) must survive the sweeps that end every job's leftovers."""
    until = time.monotonic() + 7  # Docker keeps the last five results; at 1 s intervals they all fall inside
    jobs = 0
    while time.monotonic() < until:
        sandbox.run("sh", "sleep 5 & sleep 5 & true")
        jobs += 1
    health = sandbox.state()["Health"]
    assert jobs > 20
    assert health["Status"] == "healthy"
    assert [entry["ExitCode"] for entry in health["Log"]] == [0] * len(health["Log"]), health["Log"]
    assert_pristine(sandbox)


def test_the_mcp_endpoint_serves_run_code_over_the_network(sandbox):
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}

    def rpc(method: str, params: dict, id_: int) -> dict:
        response = sandbox.http.post(
            "/mcp", json={"jsonrpc": "2.0", "id": id_, "method": method, "params": params}, headers=headers, timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json()["result"]

    info = rpc(
        "initialize",
        {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}},
        1,
    )
    assert info["serverInfo"]["name"] == "executor"
    environment = sandbox.container.attrs["Config"]["Env"]
    with_project = any(env.startswith("EXECUTOR_PROJECT_DIR=") for env in environment)
    project_tools = ["run_command", "run_tests"] if with_project else []
    assert [tool["name"] for tool in rpc("tools/list", {}, 2)["tools"]] == ["run_code", *project_tools]
    called = rpc("tools/call", {"name": "run_code", "arguments": {"language": "sh", "source": "echo via mcp"}}, 3)
    assert called["structuredContent"]["stdout"] == "via mcp\n"
    assert_pristine(sandbox)


def test_docker_stop_ends_the_service_promptly(make_network, start_executor):
    executor = start_executor(make_network(internal=True))
    started = time.monotonic()
    executor.container.stop(timeout=20)
    assert time.monotonic() - started < 5  # it left on SIGTERM, not on the SIGKILL 20 s later
    assert executor.state()["ExitCode"] == 0


# ---- the four holes of issue 12: each attack as a hostile job makes it, and what stops it -----------------

#: A hostile job that waits for a `docker exec` of the healthcheck to connect to it (it listens on the port
#: the healthcheck is pointed at), then tries what a job needs to steal the token or take the process over.
HEALTHCHECK_ATTACK = r"""
import contextlib, json, os, resource, signal, socket
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", PORT))
listener.listen(1)
listener.settimeout(20)
connection, _ = listener.accept()  # the healthcheck, exec'd from outside, is now waiting for our answer

def outcome(action):
    try:
        action()
        return "allowed"
    except PermissionError:
        return "denied"

me = os.getpid()
report = {"targets": {}, "token_seen": False, "token_variable_seen": False}
for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) in (1, me):
        continue
    try:
        raw = open(f"/proc/{name}/stat", "rb").read()
    except OSError:
        continue
    comm = raw[raw.index(b"(") + 1:raw.rindex(b")")].decode()
    ppid = int(raw[raw.rindex(b")") + 2:].split()[1])
    try:
        environ = open(f"/proc/{name}/environ", "rb").read()
        report["token_seen"] |= TOKEN in environ
        report["token_variable_seen"] |= b"EXECUTOR_TOKEN=" in environ
    except OSError:
        pass
    if ppid == 0 and comm == "healthcheck":
        pid = int(name)
        report["targets"][name] = {
            # root-owned /proc/<pid>/environ: not dumpable (exec'd from a file its user cannot read)
            "owner": os.stat(f"/proc/{pid}/environ").st_uid,
            "stop": outcome(lambda: os.kill(pid, signal.SIGSTOP)),
            "environ": outcome(lambda: open(f"/proc/{pid}/environ", "rb").read()),
            "mem_read": outcome(lambda: open(f"/proc/{pid}/mem", "rb").close()),
            "mem_write": outcome(lambda: os.close(os.open(f"/proc/{pid}/mem", os.O_RDWR))),
            "fd": outcome(lambda: os.listdir(f"/proc/{pid}/fd")),
            "prlimit": outcome(lambda: resource.prlimit(pid, resource.RLIMIT_NOFILE, (4, 4))),
            "renice": outcome(lambda: os.setpriority(os.PRIO_PROCESS, pid, 19)),
            "affinity": outcome(lambda: os.sched_setaffinity(pid, {0})),
        }
        with contextlib.suppress(PermissionError):
            os.kill(pid, signal.SIGCONT)
connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
connection.close()
print(json.dumps(report))
"""


def _exec_detached(container, command: list[str], environment: dict | None = None) -> str:
    """`docker exec` as Docker's healthcheck does it: the container's user and whole environment."""
    api = container.client.api
    exec_id = api.exec_create(container.id, command, environment=environment)["Id"]
    api.exec_start(exec_id, detach=True)
    return exec_id


def _wait_exec(container, exec_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        state = container.client.api.exec_inspect(exec_id)
        if not state["Running"] or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def test_no_executor_environment_holds_the_token_and_the_digest_opens_nothing(sandbox, declared_executor):
    """Hole 1, the stack's side: what every `docker exec` inherits holds only the token's SHA-256."""
    import hashlib

    declared = declared_executor.inputs["envs"]
    assert not [env for env in declared if env.startswith("EXECUTOR_TOKEN=")]
    assert [env.split("=", 1)[0] for env in declared if env.startswith("EXECUTOR_TOKEN_SHA256=")] == [
        "EXECUTOR_TOKEN_SHA256"
    ]
    environment = sandbox.container.attrs["Config"]["Env"]
    assert not any(sandbox.token in env for env in environment)
    digest = hashlib.sha256(sandbox.token.encode()).hexdigest()
    assert f"EXECUTOR_TOKEN_SHA256={digest}" in environment
    # Whoever reads the digest (from an environment, an image, a log) holds nothing that authenticates.
    presented = sandbox.http.post(
        "/v1/run", json={"language": "sh", "source": "true"}, headers={"Authorization": f"Bearer {digest}"}, timeout=30
    )
    assert presented.status_code == 401
    assert_pristine(sandbox)


@pytest.mark.parametrize("attempt", range(3))
def test_a_job_can_neither_read_nor_take_over_the_healthcheck(sandbox, attempt):
    """Holes 1 and 2: a job catches the healthcheck (exec'd as Docker does) while it waits for an answer, stops
    it, and tries its environment, its memory (read and write: the takeover) and its fds."""
    import threading

    port = 9100 + attempt
    source = HEALTHCHECK_ATTACK.replace("PORT", str(port)).replace("TOKEN", repr(sandbox.token.encode()))
    outcome = {}
    job = threading.Thread(target=lambda: outcome.update(sandbox.run("python", source, timeout_s=30)))
    job.start()
    deadline = time.monotonic() + 20
    while job.is_alive() and time.monotonic() < deadline:  # until the job listens: refused before that
        exec_id = _exec_detached(sandbox.container, ["/opt/executor/bin/healthcheck"], {"EXECUTOR_PORT": str(port)})
        if _wait_exec(sandbox.container, exec_id, 10)["ExitCode"] == 0:
            break
        time.sleep(0.1)
    job.join(60)
    assert outcome, "the hostile job did not finish"
    report = json.loads(outcome["stdout"])
    assert len(report["targets"]) == 1, report  # it found the healthcheck ...
    # ... non-dumpable: nothing of it can be read, written or borrowed; nor can its limits, priority or CPUs
    # be changed (job-launch's seccomp filter); with Landlock's signal scope it cannot even be paused.
    stop = "denied" if landlock_abi() >= FORK_LANDLOCK_ABI else "allowed"
    assert list(report["targets"].values()) == [
        {
            "owner": 0,
            "stop": stop,
            "environ": "denied",
            "mem_read": "denied",
            "mem_write": "denied",
            "fd": "denied",
            "prlimit": "denied",
            "renice": "denied",
            "affinity": "denied",
        }
    ], report
    assert report["token_seen"] is False
    assert report["token_variable_seen"] is False
    assert_pristine(sandbox)


def test_an_operators_docker_exec_as_the_jobs_uid_does_not_survive_the_next_job(sandbox):
    """Hole 2: a dumpable `docker exec` process of the jobs' UID (an operator's python, shell, ...) could be
    read and paused by a job; the sweep after the job ends it, so nothing a job could touch lives on."""
    exec_id = _exec_detached(sandbox.container, ["python3", "-c", "import time; time.sleep(120)"])
    time.sleep(1)
    attack = sandbox.run(
        "python",
        "import os, signal\n"
        "me = os.getpid()\n"
        "for name in os.listdir('/proc'):\n"
        "    if not name.isdigit() or int(name) in (1, me):\n"
        "        continue\n"
        "    raw = open(f'/proc/{name}/stat', 'rb').read()\n"
        "    if int(raw[raw.rindex(b')') + 2:].split()[1]) != 0 or b'(python3)' not in raw:\n"
        "        continue\n"
        "    pid = int(name)\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGSTOP)\n"
        "        print('stopped', pid)\n"
        "    except PermissionError:\n"
        "        print('refused to stop', pid)\n"
        "    for path, flags in (('environ', os.O_RDONLY), ('mem', os.O_RDONLY), ('mem', os.O_RDWR)):\n"
        "        try:\n"
        "            os.close(os.open(f'/proc/{pid}/{path}', flags))\n"
        "            print(path, 'opened')\n"
        "        except PermissionError:\n"
        "            print(path, 'refused')\n",
    )
    lines = attack["stdout"].splitlines()
    # The job found it; the same UID could pause it, but not through Landlock's signal scope (ABI 6).
    assert lines[0].startswith("refused to stop" if landlock_abi() >= FORK_LANDLOCK_ABI else "stopped"), attack
    # Dumpable, yet closed to the job: its Landlock domain also refuses ptrace-mode access to any process
    # outside it (so its environment, memory and fds), besides writing /proc.
    assert lines[1:] == ["environ refused", "mem refused", "mem refused"], attack
    state = _wait_exec(sandbox.container, exec_id, 10)
    assert state["Running"] is False, "the operator's exec survived the job that had stopped it"
    assert state["ExitCode"] in (137, -9), state
    assert_pristine(sandbox)


OOM_STEERING_ATTACK = r"""
import os, time
def lower():
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("0")
        return True
    except PermissionError:
        return False
lowered = lower()
children = []
for _ in range(CHILDREN):
    pid = os.fork()
    if pid == 0:
        lower()
        block = b"x" * (CHILD_MB << 20)  # resident: written, not just reserved
        time.sleep(8)
        os._exit(0)
    children.append(pid)
killed = sum(1 for pid in children if os.waitpid(pid, 0)[1] == 9)
print(lowered, open("/proc/self/oom_score_adj").read().strip(), killed)
"""


def test_no_job_can_steer_the_oom_killer_onto_the_service(sandbox):
    """Hole 3, ten times in a row: processes smaller than the service, together over the container's limit, each
    trying to set its oom_score_adj back down. The OOM kills must land on them, never on PID 1."""
    memory_mb = sandbox.container.attrs["HostConfig"]["Memory"] >> 20
    child_mb = 40  # below the service's own size, so only oom_score_adj decides whom the kernel takes
    children = memory_mb // child_mb + 2
    started = sandbox.state()["StartedAt"]
    restarts = sandbox.container.attrs["RestartCount"]
    source = OOM_STEERING_ATTACK.replace("CHILDREN", str(children)).replace("CHILD_MB", str(child_mb))
    for attempt in range(10):
        result = sandbox.run("python", source, timeout_s=30)  # a lost request (PID 1 killed) fails here
        lowered, score, killed = result["stdout"].split()
        assert (lowered, score) == ("False", "1000"), (attempt, result)
        assert int(killed) >= 1, (attempt, result)  # the container did reach its limit: the OOM killer ran
        state = sandbox.state()
        assert (state["Status"], state["StartedAt"], state["Restarting"]) == ("running", started, False), attempt
        sandbox.container.reload()
        assert sandbox.container.attrs["RestartCount"] == restarts, attempt
        assert_pristine(sandbox)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/run", b"[" * 100_000 + b"]" * 100_000),
        ("/v1/run", b'{"language": "python", "source": "x", "stdin": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("/v1/run", b'{"language": "python", "source": "print(1) # \\ud800"}'),
        ("/v1/run", b'{"language": "sh", "source": "cat", "stdin": "\\udfff"}'),
        (
            "/mcp",
            b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "run_code", "arguments": '
            b'{"language": "sh", "source": "x", "stdin": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}}",
        ),
        (
            "/mcp",
            b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "run_code", "arguments": '
            b'{"language": "sh", "source": "echo \\ud800"}}}',
        ),
    ],
)
def test_malformed_requests_get_a_4xx_with_a_message(sandbox, path, body):
    """Hole 4: nesting deeper than any parser recurses, a lone UTF-16 surrogate in the source or stdin."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    response = sandbox.http.post(path, content=body, headers=headers, timeout=30)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    answer = response.json()
    message = answer["error"] if path == "/v1/run" else answer["error"]["message"]
    assert isinstance(message, str) and message
    assert_pristine(sandbox)


# Warm starts. By default (EXECUTOR_PRESTART=fork) Python jobs are forked by the fork server (zygote.py), which
# waits in its own start-up all along: no job may signal, trace, limit, renice or otherwise reach it, and through
# it the next job. EXECUTOR_PRESTART=python starts the next job's interpreter after each sweep instead. Either
# must run a job exactly as a cold start would.

#: A hostile job against the service (PID 1) and, when it was forked, the fork server (its parent): the calls
#: the container's seccomp profile must allow (the service uses them) and the kernel allows the same UID.
LIMIT_THE_SERVICE = (
    ATTEMPTS
    + r"""
import json, os, resource, signal
report = {"parent": os.getppid()}
for name, pid in {"service": 1, "parent": os.getppid()}.items():
    for resource_name in ("RLIMIT_NOFILE", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_CPU"):
        limit = getattr(resource, resource_name)
        report[f"{name} {resource_name}"] = attempt(lambda: resource.prlimit(pid, limit, (4, 4)))
    report[f"{name} renice"] = attempt(lambda: os.setpriority(os.PRIO_PROCESS, pid, 19))
    report[f"{name} affinity"] = attempt(lambda: os.sched_setaffinity(pid, {0}))
    report[f"{name} stop"] = attempt(lambda: os.kill(pid, signal.SIGSTOP))
report["renice the UID"] = attempt(lambda: os.setpriority(os.PRIO_USER, 0, 19))
print(json.dumps(report))
"""
)
SERVICE_STATE = (
    "import os\nprint(open('/proc/1/limits').read(), os.getpriority(os.PRIO_PROCESS, 1),\n"
    "      os.sched_getaffinity(1) == os.sched_getaffinity(0))"
)


@pytest.mark.parametrize("start", ["forked", "cold"])
def test_no_job_can_change_the_limits_priority_or_cpus_of_the_service_or_the_fork_server(sandbox, cold_sandbox, start):
    """The reported hole: prlimit(1, RLIMIT_NOFILE, (4, 4)) made the service's next cleanup fail ("Too many open
    files") and the executor answer 503 for good. job-launch's seccomp filter refuses these calls unless they
    target the caller itself."""
    executor = sandbox if start == "forked" else cold_sandbox
    before = executor.run("python", SERVICE_STATE)["stdout"]
    report = json.loads(executor.run("python", LIMIT_THE_SERVICE)["stdout"])
    scoped = landlock_abi() >= FORK_LANDLOCK_ABI
    assert (report.pop("parent") != 1) == (start == "forked" and scoped)  # forked: the fork server
    expected = dict.fromkeys(report, "EPERM")
    if not scoped:  # no signal scope: the kernel drops signals to PID 1 (and the fork server is not there)
        expected["service stop"] = expected["parent stop"] = "allowed"
    assert report == expected
    assert_pristine(executor)  # the sweep and the wipe after it worked: no 503
    after = executor.run("python", SERVICE_STATE)["stdout"]
    assert after == before and after.endswith(" 0 True\n"), after


def parent_of_a_python_job(sandbox) -> int:
    """1 (the service) for a cold or pre-started job; the fork server's PID for a forked one."""
    return int(sandbox.run("python", "import os; print(os.getppid())")["stdout"])


def fork_server_pid(sandbox) -> int:
    """The fork server's PID, as a forked job sees it: its parent."""
    parent = parent_of_a_python_job(sandbox)
    assert parent != 1, "the job was not forked by the fork server"
    return parent


def wait_for_logs(executor, text: str, count: int) -> int:
    """How often ``text`` is in the container's log once it is there ``count`` times (Docker writes the log
    a moment after the service does), or after 10 s."""
    deadline = time.monotonic() + 10
    while (found := executor.logs().count(text)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_a_forked_job_can_neither_signal_trace_limit_renice_nor_read_the_fork_server(sandbox):
    from tests.support.executor_probes import ATTACK_THE_FORK_SERVER, expected_attack_outcome

    if landlock_abi() < FORK_LANDLOCK_ABI:
        pytest.skip(f"no fork server without Landlock ABI {FORK_LANDLOCK_ABI}")
    server = fork_server_pid(sandbox)
    report = json.loads(sandbox.run("python", ATTACK_THE_FORK_SERVER)["stdout"])
    assert report.pop("server") == server  # forked by it
    assert report == expected_attack_outcome(report, as_root=False)
    assert fork_server_pid(sandbox) == server  # alive, untouched, forking the next job
    assert_pristine(sandbox)


#: A job that leaves a daemon which, for five seconds, tries everything on every other process it finds (the
#: fork server above all: stop, prlimit, renice) and rewrites the next job's files; then reports what
#: it found while the job ran.
HUNT_THE_NEXT_JOB = r"""
import json, os, resource, signal, sys, time
me = os.getpid()
def others():
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (1, me):
            continue
        try:
            raw = open(f"/proc/{name}/stat", "rb").read()
            dumpable = os.stat(f"/proc/{name}/environ").st_uid == os.geteuid()
        except OSError:
            continue
        if int(raw[raw.rindex(b")") + 2:].split()[1]) != 0 or dumpable:  # not the healthcheck
            found[name] = raw.decode(errors="replace")
    return found
before = others()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for fd in (0, 1, 2):
            os.close(fd)
        job, me = me, os.getpid()
        site = sys.modules["site"].getusersitepackages()
        until = time.monotonic() + 5
        while time.monotonic() < until:
            for name in os.listdir("/proc"):
                if name.isdigit() and int(name) not in (1, me, job):  # every process but the job's own
                    pid = int(name)
                    for action in (lambda: os.kill(pid, signal.SIGSTOP),
                                   lambda: resource.prlimit(pid, resource.RLIMIT_NOFILE, (4, 4)),
                                   lambda: resource.prlimit(pid, resource.RLIMIT_CPU, (1, 1)),
                                   lambda: os.setpriority(os.PRIO_PROCESS, pid, 19)):
                        try:
                            action()
                        except OSError:
                            pass
            for path in ("/tmp/job/main.py", site + "/usercustomize.py"):
                try:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    open(path, "w").write("print('PWNED')\n")
                except OSError:
                    pass
        os._exit(0)
    os._exit(0)
os.wait()
time.sleep(0.3)
print(json.dumps({"before": before, "with_the_daemon": sorted(set(others()) - set(before)), "parent": os.getppid()}))
"""

#: The next job's view of its own limits, priority and process, to compare with a cold start's.
OWN_STATE = r"""
import json, os, resource
print(json.dumps({"limits": [resource.getrlimit(getattr(resource, name)) for name in sorted(dir(resource))
                             if name.startswith("RLIMIT_")],
                  "nice": os.getpriority(os.PRIO_PROCESS, 0), "cpus": sorted(os.sched_getaffinity(0)),
                  "parent_nice": os.getpriority(os.PRIO_PROCESS, os.getppid()),
                  "listing": sorted(os.listdir(".")), "output": "clean"}))
"""


@pytest.mark.parametrize("attempt", range(3))
def test_a_job_cannot_reach_the_next_job_through_the_fork_server(sandbox, cold_sandbox, attempt):
    forking = landlock_abi() >= FORK_LANDLOCK_ABI
    found = json.loads(sandbox.run("python", HUNT_THE_NEXT_JOB)["stdout"])
    assert (found["parent"] != 1) == forking
    if forking:
        # The fork server (its parent) is the one other process of the UID while a job runs.
        assert list(found["before"]) == [str(found["parent"])], found["before"]
    else:
        assert found["before"] == {}, "another process of the UID existed during the job (a waiting interpreter?)"
    assert len(found["with_the_daemon"]) == 1  # the daemon it left, nothing else
    # The next job: forked by the same, unstopped, unlimited fork server, in files the service wrote after
    # the sweep: what a cold start sees.
    result = sandbox.run("python", OWN_STATE, timeout_s=5)
    assert (result["exit_code"], result["timed_out"]) == (0, False), result
    if forking:
        assert fork_server_pid(sandbox) == found["parent"]  # the same one, unharmed
    assert json.loads(result["stdout"]) == json.loads(cold_sandbox.run("python", OWN_STATE, timeout_s=5)["stdout"])
    assert_pristine(sandbox)


def test_a_shell_job_cannot_touch_the_waiting_python(sandbox):
    """sh jobs start cold. The fork server goes on waiting beside one, out of its reach; a pre-started
    interpreter (python) is ended, and swept, before the shell starts."""
    sandbox.run("python", "pass")
    found = sandbox.run(
        "sh",
        "for p in /proc/[0-9]*; do\n"
        "  if grep -q main.py $p/cmdline 2>/dev/null; then\n"
        "    if kill -STOP ${p#/proc/} 2>/dev/null; then echo stopped; else echo refused; fi\n"
        "  fi\n"
        "done",
    )["stdout"]
    assert wait_for_logs(sandbox, "job sh (cold start)", 1) >= 1
    if landlock_abi() >= FORK_LANDLOCK_ABI:
        assert found == "refused\n"  # the fork server, and nothing else
        fork_server_pid(sandbox)  # it goes on forking
    else:
        assert found == ""
    assert_pristine(sandbox)


def _kill_from_an_exec(container, pid: int) -> None:
    """`docker exec` as the executors' UID (an operator; the OOM killer would do the same): outside any job's
    Landlock domain, so its signal reaches the fork server."""
    exec_id = container.client.api.exec_create(container.id, ["sh", "-c", f"kill -KILL {pid}"])
    container.client.api.exec_start(exec_id)
    assert container.client.api.exec_inspect(exec_id)["ExitCode"] == 0


def test_the_fork_server_killed_from_outside_is_replaced_and_no_job_notices(sandbox):
    import threading

    if landlock_abi() < FORK_LANDLOCK_ABI:
        pytest.skip(f"no fork server without Landlock ABI {FORK_LANDLOCK_ABI}")
    server = fork_server_pid(sandbox)
    _kill_from_an_exec(sandbox.container, server)
    result = sandbox.run("python", "import os, sys; print('after', os.getppid()); sys.exit(3)")
    assert (result["exit_code"], result["stdout"]) == (3, "after 1\n")  # cold: the service is its parent
    replacement = fork_server_pid(sandbox)
    assert replacement != server
    # Killed while its job runs: the service (PID 1) inherits the job's process and reaps it itself.
    killer = threading.Timer(0.5, _kill_from_an_exec, (sandbox.container, replacement))
    killer.start()
    result = sandbox.run("python", "import sys, time\nprint('running', flush=True)\ntime.sleep(1.5)\nsys.exit(5)")
    killer.join()
    assert (result["exit_code"], result["stdout"], result["timed_out"]) == (5, "running\n", False), result
    assert fork_server_pid(sandbox) not in (server, replacement)
    assert_pristine(sandbox)


@pytest.fixture(scope="module")
def cold_sandbox(make_network, start_executor):
    """An executor like `sandbox` that starts every job's interpreter when the job comes."""
    return start_executor(make_network(internal=True), environment={"EXECUTOR_PRESTART": "none"})


@pytest.fixture(scope="module")
def prestarting_sandbox(make_network, start_executor):
    """An executor like `sandbox` whose Python jobs run in an interpreter started after the previous sweep."""
    return start_executor(make_network(internal=True), environment={"EXECUTOR_PRESTART": "python"})


@pytest.mark.parametrize("mode", ["fork", "python"])
def test_a_warm_job_in_a_container_is_a_cold_job(sandbox, prestarting_sandbox, cold_sandbox, mode):
    from tests.support.executor_probes import CASES, PROBE

    warm_sandbox = sandbox if mode == "fork" else prestarting_sandbox
    start = {"fork": "fork", "python": "warm"}[mode] if landlock_abi() >= FORK_LANDLOCK_ABI else "warm"

    def outcome(executor, source, options):
        options = dict(options)
        if "cap" in options:
            options["max_output_bytes"] = options.pop("cap")
        result = executor.run("python", source, **options)
        result.pop("duration_ms")
        return result

    label = f"job python ({start} start)"
    warm_starts = wait_for_logs(warm_sandbox, label, 0)
    for stdin in (None, "input\n"):
        extra = {} if stdin is None else {"stdin": stdin}
        warm, cold = outcome(warm_sandbox, PROBE, extra), outcome(cold_sandbox, PROBE, extra)
        assert warm["exit_code"] == 0, warm["stderr"]
        warm_view, cold_view = json.loads(warm["stdout"]), json.loads(cold["stdout"])
        for view in (warm_view, cold_view):
            view["status"].pop("Uid"), view["status"].pop("Gid")  # each executor has its own UID
        assert warm_view == cold_view
    for case, (source, options) in CASES.items():
        assert outcome(warm_sandbox, source, options) == outcome(cold_sandbox, source, options), case
    assert wait_for_logs(warm_sandbox, label, warm_starts + 2 + len(CASES)) == warm_starts + 2 + len(CASES)  # all
    assert "warm start" not in cold_sandbox.logs() and "fork start" not in cold_sandbox.logs()
