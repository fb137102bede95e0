"""Hostile jobs against a hardened executor container: after each, the service answers and the next job
finds a clean container (no leftover process, file or token).

One container takes every attack in turn (module scope), as a real executor takes job after job.
"""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.docker

#: The next job's view of the container, as JSON.
PROBE = r"""
import json, os
me = os.getpid()
processes = {}
for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) in (1, me):
        continue
    try:
        raw = open(f"/proc/{name}/stat", "rb").read()
        cmdline = open(f"/proc/{name}/cmdline", "rb").read()
    except OSError:
        continue
    ppid = int(raw[raw.rindex(b")") + 2:].split()[1])
    if ppid != 0:  # ppid 0: started by `docker exec` (the healthcheck), not by a job
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

HEALTHCHECK_EVERY_SECOND = {  # the stack's healthcheck input, probing every second
    "tests": ["CMD", "python3", "-m", "executor_service.healthcheck"],
    "interval": "1s",
    "timeout": "5s",
    "retries": 3,
    "startPeriod": "0s",
}


@pytest.fixture(scope="module")
def sandbox(make_network, start_executor):
    """The executor under attack, alone on an internal network (no route out)."""
    return start_executor(make_network(internal=True), healthcheck=HEALTHCHECK_EVERY_SECOND)


def assert_pristine(sandbox) -> None:
    """The service is up and a new job sees nothing of the jobs before it."""
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
    result = sandbox.run(
        "python",
        "import ctypes, os, signal\n"
        "for sig in (signal.SIGSTOP, signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP,\n"
        "            signal.SIGQUIT, signal.SIGUSR1, signal.SIGSEGV):\n"
        "    os.kill(1, sig)\n"
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
    time.sleep(0.5)  # a stop or kill would have landed by now
    assert_pristine(sandbox)
    assert "ignored signal 15" in sandbox.logs()


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
    assert [tool["name"] for tool in rpc("tools/list", {}, 2)["tools"]] == ["run_code"]
    called = rpc("tools/call", {"name": "run_code", "arguments": {"language": "sh", "source": "echo via mcp"}}, 3)
    assert called["structuredContent"]["stdout"] == "via mcp\n"
    assert_pristine(sandbox)


def test_docker_stop_ends_the_service_promptly(make_network, start_executor):
    executor = start_executor(make_network(internal=True))
    started = time.monotonic()
    executor.container.stop(timeout=20)
    assert time.monotonic() - started < 5  # it left on SIGTERM, not on the SIGKILL 20 s later
    assert executor.state()["ExitCode"] == 0
