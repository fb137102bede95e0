"""Warm starts must be indistinguishable from cold ones: a job forked by the fork server (EXECUTOR_PRESTART=fork,
zygote.py) or handed to an interpreter pre-started after the last sweep (python, prestart.py) against a cold
start (none).

Two runners on this host, a warm one and a cold one, run the same jobs; everything but the duration must be
equal, and every warm job must really have started warm. Then what only the fork server has: what its jobs
may not do to it, what they share, and how it is replaced.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from executor_service.isolation import IsolationMode
from executor_service.runner import FORK_LANDLOCK_ABI, JobRunner, landlock_abi
from tests.support.executor_probes import ATTACK_THE_FORK_SERVER, CASES, PROBE, expected_attack_outcome

from .conftest import make_settings
from .test_executor_runner import run, spec

#: EXECUTOR_PRESTART -> how its Python jobs start (JobRunner.last_start).
WARM_STARTS = {"fork": "fork", "python": "warm"}


def make_runner(work_root, job_launcher, prestart: str, **settings: str) -> JobRunner:
    settings = make_settings(
        work_root, job_launcher, EXECUTOR_MAX_OUTPUT_BYTES="4096", EXECUTOR_PRESTART=prestart, **settings
    )
    runner = JobRunner(settings, IsolationMode.DEVELOPMENT)
    runner.prepare()
    return runner


@pytest.fixture(params=["fork-bytecode", "fork-source", "python-bytecode", "python-source"])
def warm_and_cold(request, tmp_path, job_launcher):
    """A warm and a cold runner; the warm one's hook as bytecode (as in the image) or as source (the
    fallback when the job's Python has another bytecode version than the service's)."""
    mode, hook = request.param.split("-")
    if mode == "fork" and landlock_abi() < FORK_LANDLOCK_ABI:
        pytest.skip(f"the fork server needs Landlock ABI {FORK_LANDLOCK_ABI}")
    runners = []
    for prestart in (mode, "none"):
        root = tmp_path / prestart
        root.mkdir()
        runners.append(make_runner(root, job_launcher, prestart))
    warm = runners[0]
    assert warm.python_start == mode
    assert warm._precompiled_hook, "this host's job Python should take the service's bytecode"
    if hook == "source":
        warm.close()
        warm._precompiled_hook = False
        warm._start_creator()
    yield runners
    for runner in runners:
        runner.close()


@pytest.fixture
def forking(tmp_path, job_launcher):
    if landlock_abi() < FORK_LANDLOCK_ABI:
        pytest.skip(f"the fork server needs Landlock ABI {FORK_LANDLOCK_ABI}")
    root = tmp_path / "fork"
    root.mkdir()
    runner = make_runner(root, job_launcher, "fork", EXECUTOR_FORK_JOBS="3")
    yield runner
    runner.close()


def outcome(result) -> dict:
    return {key: value for key, value in result.model_dump().items() if key != "duration_ms"}


def both(warm_and_cold, job):
    """The job's results from the warm and the cold runner, each runner's work root written <work>."""
    warm, cold = warm_and_cold
    results = []
    for runner in (warm, cold):
        result = run(runner, job)
        for name in ("stdout", "stderr"):
            setattr(result, name, getattr(result, name).replace(str(runner.work_root), "<work>"))
        results.append(result)
    assert (warm.last_start, cold.last_start) == (WARM_STARTS[warm.python_start], "cold"), "the warm one started cold"
    return results


@pytest.mark.parametrize("workdir", [False, True], ids=["scratch_cwd", "project_cwd"])
@pytest.mark.parametrize("stdin", [None, "some input\n"], ids=["no_stdin", "stdin"])
def test_a_warm_job_sees_exactly_what_a_cold_job_sees(warm_and_cold, stdin, workdir, tmp_path):
    project = None
    if workdir:  # the project directory the tools give as the working directory (read-only in a container)
        project = tmp_path / "project"
        project.mkdir()
        (project / "setup.cfg").write_text("")
    warm, cold = both(warm_and_cold, spec("python", PROBE, stdin=stdin, timeout_s=7, workdir=project))
    assert (warm.exit_code, warm.stderr) == (0, ""), warm.stderr
    warm_view, cold_view = json.loads(warm.stdout), json.loads(cold.stdout)
    assert warm_view == cold_view
    assert warm_view["rlimits"]["RLIMIT_CPU"] == [8, 9]  # the job's own deadline, not the longest one
    assert warm_view["user_site"] is False and warm_view["fds"] == ["0", "1", "2", "3"]  # 3: listing them
    if project is None:
        assert warm_view["cwd"] == "<work>/job" and warm_view["listing"] == ["main.py"]
    else:
        assert warm_view["cwd"] == str(project) and warm_view["listing"] == ["setup.cfg"]
    assert warm_view["env"]["HOME"] == warm_view["env"]["TMPDIR"] == "<work>/job"
    assert warm_view["lowering_it"] == "PermissionError" and warm_view["oom_score_adj"] == "1000\n"


@pytest.mark.parametrize("case", CASES)
def test_a_warm_job_ends_exactly_as_a_cold_job(warm_and_cold, case):
    source, options = CASES[case]
    warm, cold = both(warm_and_cold, spec("python", source, **options))
    assert outcome(warm) == outcome(cold)


def test_expected_endings_hold_for_warm_jobs(warm_and_cold):
    """Not only equal to a cold start: right (so that both being wrong the same way fails too)."""
    warm = warm_and_cold[0]
    expect = {
        "exit_3": (3, False),
        "keyboard_interrupt": (130, False),
        "sigterm": (143, False),
        "syntax_error": (1, False),
        "cpu_deadline": (137, True),
        "sleep_deadline": (137, True),
        "traceback": (1, False),
    }
    for case, (code, timed_out) in expect.items():
        source, options = CASES[case]
        result = run(warm, spec("python", source, **options))
        assert warm.last_start == WARM_STARTS[warm.python_start]
        assert (result.exit_code, result.timed_out) == (code, timed_out), (case, result)
    result = run(warm, spec("python", CASES["traceback"][0]))
    assert (
        result.stderr.startswith('Traceback (most recent call last):\n  File "') and 'main.py", line 3' in result.stderr
    )
    assert result.stderr.count("File ") == 2  # <module> and f: no frame of the hand-over above the job's
    result = run(warm, spec("python", CASES["keyboard_interrupt"][0]))
    assert result.stdout == "at exit\n"
    result = run(warm, spec("python", CASES["output_cap"][0], cap=100))
    assert result.truncated and result.stdout == "x" * 100


def test_a_warm_job_runs_in_the_process_prepared_for_it(warm_and_cold):
    """Forked: a child of the fork server; pre-started: the very process started after the last sweep."""
    warm = warm_and_cold[0]
    warm._join_creator()
    prepared = warm._zygote if warm.python_start == "fork" else warm._waiting
    pids = run(warm, spec("python", "import os; print(os.getpid(), os.getppid())")).stdout.split()
    if warm.python_start == "fork":
        assert int(pids[1]) == prepared.pid and int(pids[0]) != prepared.pid
        assert warm._zygote is prepared  # it serves the next job too
    else:
        assert int(pids[0]) == prepared.proc.pid


def test_other_languages_start_cold_and_python_is_warm_again_after_them(warm_and_cold):
    warm = warm_and_cold[0]
    warm._join_creator()
    zygote = warm._zygote
    assert run(warm, spec("sh", "echo $0; ls -A")).stdout.endswith("main.sh\n")  # no hook left to see
    assert warm.last_start == "cold"
    assert run(warm, spec("python", "import os; print(sorted(os.listdir('.')))")).stdout == "['main.py']\n"
    assert warm.last_start == WARM_STARTS[warm.python_start]
    if zygote is not None:
        assert warm._zygote is zygote  # a shell job does not end the fork server (it cannot reach it either)


@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_warm_start_that_fails_is_replaced_by_a_cold_start(warm_and_cold, how, monkeypatch):
    warm = warm_and_cold[0]
    warm._join_creator()
    from executor_service import prestart, zygote

    if warm.python_start == "fork":
        waiting = warm._zygote
        monkeypatch.setattr(zygote, "REPLY_TIMEOUT_S", 0.2)
        os.kill(waiting.pid, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
    else:
        waiting = warm._waiting
        if how == "killed":
            os.kill(waiting.proc.pid, signal.SIGKILL)
            waiting.proc.wait()
        else:
            waiting.wait_ready()  # it has reported already; a second report never comes
            monkeypatch.setattr(prestart, "READY_TIMEOUT_S", 0.2)
            monkeypatch.setattr(type(waiting), "wait_ready", lambda self, timeout=0.2: False)
    result = run(warm, spec("python", "print('ran')"))
    assert (result.exit_code, result.stdout, warm.last_start) == (0, "ran\n", "cold")
    assert waiting.proc.poll() is not None  # ended, never reused
    monkeypatch.undo()
    assert run(warm, spec("python", "print('ran')")).stdout == "ran\n"
    assert warm.last_start == WARM_STARTS[warm.python_start]
    if warm.python_start == "fork":
        assert warm._zygote.pid != waiting.pid  # a new one, started after that job's sweep


# ---- the fork server's own ---------------------------------------------------------------------------


def test_a_forked_job_can_neither_signal_trace_limit_nor_renice_the_fork_server(forking):
    forking._join_creator()
    server = forking._zygote
    result = run(forking, spec("python", ATTACK_THE_FORK_SERVER))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report.pop("server") == server.pid
    assert report == expected_attack_outcome(report, as_root=os.geteuid() == 0)
    assert len([name for name in report if name.startswith("open_fd_")]) >= 4  # 0-2 and its control socket
    # Untouched: the same process serves the next job, with the limits it was started with.
    with open(f"/proc/{server.pid}/limits") as limits:
        assert "Max open files            1024                 1024" in limits.read()
    assert os.getpriority(os.PRIO_PROCESS, server.pid) == 0
    assert run(forking, spec("python", "print('next')")).stdout == "next\n"
    assert forking.last_start == "fork" and forking._zygote is server


def test_each_forked_job_gets_its_own_randomness(forking):
    """What a job seeds when it runs (random, secrets, uuid, tempfile, os.urandom) is its own; the str hash
    secret, made at interpreter start, is shared by the jobs of one fork server (see the README)."""
    source = (
        "import os, random, secrets, tempfile, uuid\n"
        "print(random.random(), secrets.token_hex(8), uuid.uuid4(), os.urandom(8).hex(),\n"
        "      next(tempfile._get_candidate_names()), hash('same text'))\n"
    )
    views = [run(forking, spec("python", source)).stdout.split() for _ in range(2)]
    assert forking.last_start == "fork"
    for first, second in zip(*(view[:5] for view in views), strict=True):
        assert first != second, views
    assert views[0][5] == views[1][5]  # one fork server's jobs


def test_the_fork_server_is_replaced_after_its_jobs_with_a_new_hash_secret(forking):
    forking._join_creator()
    servers, hashes = [], []
    for _ in range(7):  # EXECUTOR_FORK_JOBS=3: three servers
        forking._join_creator()
        servers.append(forking._zygote.pid)
        hashes.append(run(forking, spec("python", "print(hash('same text'))")).stdout)
        assert forking.last_start == "fork"
    assert servers[0] == servers[1] == servers[2] != servers[3] == servers[4] == servers[5] != servers[6]
    assert hashes[0] == hashes[2] != hashes[3] == hashes[5]


def test_a_fork_server_killed_during_a_job_is_replaced_and_the_job_ends(forking):
    import threading

    forking._join_creator()
    server = forking._zygote
    killer = threading.Timer(0.2, os.kill, (server.pid, signal.SIGKILL))
    killer.start()
    result = run(forking, spec("python", "import time\nprint('running', flush=True)\ntime.sleep(0.6)\n", timeout_s=5))
    killer.join()
    # Its wait status died with the fork server. In a container the service, PID 1, inherits the job's process
    # and reaps it itself (tests/image); here nobody can: it is reported as killed, never as a success.
    assert (result.stdout, result.exit_code, result.timed_out) == ("running\n", 137, False), result
    forking._join_creator()
    assert forking._zygote is not None and forking._zygote.pid != server.pid
    assert run(forking, spec("python", "print('next')")).stdout == "next\n" and forking.last_start == "fork"


def test_the_sweep_never_spares_a_pid_the_fork_server_no_longer_has(forking):
    """Once its process is reaped, the fork server's PID is nobody's to spare: the runner forgets it."""
    forking._join_creator()
    server = forking._zygote
    assert forking._spared() == {server.pid}
    server.mark_dead()
    assert forking._spared() == frozenset()
    run(forking, spec("python", "print(1)"))  # replaced, the job itself cold
    assert forking.last_start == "cold"
    forking._join_creator()
    assert forking._spared() == {forking._zygote.pid} != {server.pid}


@pytest.mark.parametrize("lacking", ["signal scoping", "the module"])
def test_without_what_the_fork_server_needs_python_jobs_are_pre_started_instead(
    tmp_path, job_launcher, monkeypatch, caplog, lacking
):
    import shutil

    from executor_service import runner as runner_module

    launcher = job_launcher
    if lacking == "signal scoping":
        monkeypatch.setattr(runner_module, "landlock_abi", lambda: FORK_LANDLOCK_ABI - 1)
    else:  # a launcher without the fork server's module beside it
        launcher = tmp_path / "bin" / "job-launch"
        launcher.parent.mkdir()
        shutil.copy(job_launcher, launcher)
    root = tmp_path / "work"
    root.mkdir()
    caplog.set_level("INFO", logger="executor_service.runner")
    fallback = make_runner(root, launcher, "fork")
    try:
        assert fallback.python_start == "python"
        assert "falling back to python" in caplog.text
        assert "Python jobs start in an interpreter started after the previous job's sweep" in caplog.text
        assert run(fallback, spec("python", "print('ran')")).stdout == "ran\n" and fallback.last_start == "warm"
    finally:
        fallback.close()
