"""launcher/job_launch.c, the program that puts a job's limits on it before its code runs."""

from __future__ import annotations

import signal
import subprocess

import pytest


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
    done = launch(job_launcher, "33", "7", "512", "0", "-w", str(allowed), "-w", "/dev/null", "--",
                  "/bin/sh", "-c", script)
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
    done = launch(job_launcher, "33", "7", "512", "0", "-w", str(tmp_path), "--", "/usr/bin/env", "python3", "-c",
                  probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["refused -1000", "refused 0", "refused 999", "1000",
                                        "refused", "refused", "refused"]
