"""launcher/job_launch.c, the program that puts a job's limits on it before its code runs."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.support.executor_probes import ATTEMPTS


def launch(launcher, *args: str, blocked: bool = False) -> subprocess.CompletedProcess:
    def block_stop_signals():  # what the service's threads carry into their children
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})

    return subprocess.run(
        [str(launcher), *args],
        capture_output=True,
        text=True,
        timeout=20,
        preexec_fn=block_stop_signals if blocked else None,
    )


def test_limits_unblocked_signals_and_oom_preference_reach_the_program(job_launcher):
    probe = (
        "import resource as r, signal\n"
        "print([r.getrlimit(x) for x in (r.RLIMIT_NPROC, r.RLIMIT_CPU, r.RLIMIT_CORE, r.RLIMIT_NOFILE, r.RLIMIT_AS)])\n"
        "print(open('/proc/self/oom_score_adj').read().strip())\n"
        "print(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))\n"
    )
    done = launch(
        job_launcher,
        "33",
        "7",
        "512",
        str(300 * 1024 * 1024),
        "--",
        "/usr/bin/env",
        "python3",
        "-c",
        probe,
        blocked=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"[(33, 33), (7, 8), (0, 0), (512, 512), ({300 * 1024 * 1024}, {300 * 1024 * 1024})]",
        "1000",
        "[]",
    ]


def test_address_space_zero_leaves_it_unlimited(job_launcher):
    done = launch(job_launcher, "33", "7", "512", "0", "--", "/bin/sh", "-c", "ulimit -v")
    assert done.stdout == "unlimited\n"


def test_the_program_gets_its_arguments_untouched(job_launcher):
    done = launch(
        job_launcher, "33", "7", "512", "0", "--", "/bin/sh", "-c", 'printf "%s|" "$@"', "sh", "a b", "--", ""
    )
    assert done.stdout == "a b|--||"


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("33", "7", "512", "0", "/bin/true"),  # no "--"
        ("33", "7", "512", "0", "--"),  # no program
        ("33", "7", "512", "0", "-w", "/tmp", "/bin/true"),  # no "--" after the writable paths
        ("33", "7", "512", "0", "-w", "--", "/bin/true"),  # -w without a path
        ("-1", "7", "512", "0", "--", "/bin/true"),
        ("33", "7x", "512", "0", "--", "/bin/true"),
        ("0", "7", "512", "0", "--", "/bin/true"),
        ("33", "0", "512", "0", "--", "/bin/true"),
    ],
)
def test_bad_arguments_run_nothing(job_launcher, args):
    done = launch(job_launcher, *args)
    assert done.returncode == 125
    assert done.stderr.startswith("job-launch: usage:")


def test_a_missing_program_is_reported(job_launcher):
    done = launch(job_launcher, "33", "7", "512", "0", "--", "/nonexistent/program")
    assert done.returncode == 125
    assert done.stderr == "job-launch: /nonexistent/program: No such file or directory\n"


def test_the_job_may_write_beneath_its_writable_paths_only(job_launcher, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    script = (
        f"echo in > {allowed}/file && echo wrote-allowed\n"
        f"echo out > {tmp_path}/outside 2>/dev/null || echo refused-outside\n"
        "echo x > /dev/null && echo wrote-dev-null\n"
        "echo to-stdout > /dev/stdout\n"  # a pipe, reached through /proc/self/fd: allowed
    )
    done = launch(
        job_launcher, "33", "7", "512", "0", "-w", str(allowed), "-w", "/dev/null", "--", "/bin/sh", "-c", script
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["wrote-allowed", "refused-outside", "wrote-dev-null", "to-stdout"]
    assert not (tmp_path / "outside").exists()


def test_the_job_cannot_lower_its_oom_score_or_write_any_process_memory(job_launcher, tmp_path):
    """The OOM-steering attack: a job sets its oom_score_adj back down; and a takeover through /proc/<pid>/mem."""
    probe = (
        "import os, subprocess\n"
        "for value in ('-1000', '0', '999'):\n"
        "    try:\n"
        "        with open('/proc/self/oom_score_adj', 'w') as f:\n"
        "            f.write(value)\n"
        "        print('lowered', value)\n"
        "    except PermissionError:\n"
        "        print('refused', value)\n"
        "print(open('/proc/self/oom_score_adj').read().strip())\n"
        "child = subprocess.Popen(['sleep', '30'])\n"
        "for path in (f'/proc/{child.pid}/mem', f'/proc/{child.pid}/oom_score_adj', '/proc/self/mem'):\n"
        "    try:\n"
        "        os.close(os.open(path, os.O_RDWR))\n"
        "        print('opened', path)\n"
        "    except PermissionError:\n"
        "        print('refused')\n"
        "child.kill()\n"
    )
    done = launch(
        job_launcher, "33", "7", "512", "0", "-w", str(tmp_path), "--", "/usr/bin/env", "python3", "-c", probe
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "refused -1000",
        "refused 0",
        "refused 999",
        "1000",
        "refused",
        "refused",
        "refused",
    ]


#: What a job may and may not do to other processes of its UID: each call against its parent (here the test
#: process, in a container the service or the fork server) and against itself.
ACTING_ON_OTHERS = (
    ATTEMPTS
    + r"""
import json, os, resource, signal
NR = {"x86_64": {"clone": 56, "clone3": 435, "ioprio_set": 251, "sched_setattr": 314, "getpid": 39},
      "aarch64": {"clone": 220, "clone3": 435, "ioprio_set": 30, "sched_setattr": 274, "getpid": 172}}[os.uname().machine]
def fork_and_reap():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
other, me = os.getppid(), os.getpid()
limit = resource.getrlimit(resource.RLIMIT_NOFILE)
print(json.dumps({
    "prlimit_other": attempt(lambda: resource.prlimit(other, resource.RLIMIT_NOFILE, (4, 4))),
    "prlimit_own_pid": attempt(lambda: resource.prlimit(me, resource.RLIMIT_NOFILE, limit)),
    "prlimit_read_other": attempt(lambda: resource.prlimit(other, resource.RLIMIT_CPU)),
    "setrlimit": attempt(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limit)),
    "setpriority_other": attempt(lambda: os.setpriority(os.PRIO_PROCESS, other, 5)),
    "setpriority_user": attempt(lambda: os.setpriority(os.PRIO_USER, 0, 5)),
    "setpriority_group": attempt(lambda: os.setpriority(os.PRIO_PGRP, 0, 5)),
    "nice": attempt(lambda: os.nice(1)),
    "affinity_other": attempt(lambda: os.sched_setaffinity(other, {0})),
    "affinity_self": attempt(lambda: os.sched_setaffinity(0, os.sched_getaffinity(0))),
    "scheduler_other": attempt(lambda: os.sched_setscheduler(other, os.SCHED_OTHER, os.sched_param(0))),
    "param_other": attempt(lambda: os.sched_setparam(other, os.sched_param(0))),
    "sched_setattr_other": attempt(lambda: syscall(NR["sched_setattr"], other, 0, 0)),
    "ioprio_other": attempt(lambda: syscall(NR["ioprio_set"], 1, other, 0)),
    "ioprio_user": attempt(lambda: syscall(NR["ioprio_set"], 3, 0, 0)),
    "clone_parent": attempt(lambda: syscall(NR["clone"], 0x8000 | signal.SIGCHLD, 0, 0, 0, 0)),
    "clone3": attempt(lambda: syscall(NR["clone3"], 0, 0)),
    "fork": attempt(fork_and_reap),
    "x32": attempt(lambda: syscall(0x40000000 + NR["getpid"])) if os.uname().machine == "x86_64" else "EPERM",
    "signal_other": attempt(lambda: os.kill(other, 0)),
    "signal_self": attempt(lambda: os.kill(me, 0)),
}))
"""
)


def test_the_job_can_change_no_other_process_of_its_uid(job_launcher, tmp_path):
    """The stacked seccomp filter (prlimit64, setpriority, sched_set*, ioprio_set, CLONE_PARENT), and with
    Landlock ABI 6 the domain's signal scope."""
    import json

    from executor_service.runner import FORK_LANDLOCK_ABI, landlock_abi

    done = launch(
        job_launcher,
        "33",
        "7",
        "512",
        "0",
        "-w",
        str(tmp_path),
        "--",
        "/usr/bin/env",
        "python3",
        "-c",
        ACTING_ON_OTHERS,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    refused = [
        "prlimit_other",
        "prlimit_own_pid",
        "setpriority_other",
        "setpriority_user",
        "setpriority_group",
        "affinity_other",
        "scheduler_other",
        "param_other",
        "sched_setattr_other",
        "ioprio_other",
        "ioprio_user",
        "clone_parent",
        "x32",
    ]
    assert {name: outcome[name] for name in refused} == dict.fromkeys(refused, "EPERM"), outcome
    allowed = ["prlimit_read_other", "setrlimit", "nice", "affinity_self", "fork", "signal_self"]
    assert {name: outcome[name] for name in allowed} == dict.fromkeys(allowed, "allowed"), outcome
    assert outcome["clone3"] == "ENOSYS"  # glibc then falls back to clone, which the filter can read
    assert outcome["signal_other"] == ("EPERM" if landlock_abi() >= FORK_LANDLOCK_ABI else "allowed")
