"""The pre-started interpreter (prestart.py): a warm job must be indistinguishable from a cold one.

Two runners on this host, one with EXECUTOR_PRESTART=python (warm) and one with none (cold), run the same
jobs; everything but the duration must be equal, and every warm job must really have been handed to a
waiting interpreter.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from executor_service.isolation import IsolationMode
from executor_service.runner import JobRunner

from .conftest import make_settings
from .probes import CASES, PROBE
from .test_executor_runner import run, spec

def make_runner(work_root, job_launcher, prestart: str) -> JobRunner:
    settings = make_settings(work_root, job_launcher, EXECUTOR_MAX_OUTPUT_BYTES="4096", EXECUTOR_PRESTART=prestart)
    runner = JobRunner(settings, IsolationMode.DEVELOPMENT)
    runner.prepare()
    return runner


@pytest.fixture(params=["bytecode", "source"])
def warm_and_cold(request, tmp_path, job_launcher):
    """A warm and a cold runner; the warm one's hook as bytecode (as in the image) or as source (the
    fallback when the job's Python has another bytecode version than the service's)."""
    runners = []
    for prestart in ("python", "none"):
        root = tmp_path / prestart
        root.mkdir()
        runners.append(make_runner(root, job_launcher, prestart))
    warm = runners[0]
    assert warm._precompiled_hook, "this host's job Python should take the service's bytecode"
    if request.param == "source":
        warm.close()
        warm._precompiled_hook = False
        warm._start_prestart()
    yield runners
    for runner in runners:
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
    assert (warm.last_start, cold.last_start) == ("warm", "cold"), "the warm runner did not use its waiting interpreter"
    return results


@pytest.mark.parametrize("stdin", [None, "some input\n"], ids=["no_stdin", "stdin"])
def test_a_warm_job_sees_exactly_what_a_cold_job_sees(warm_and_cold, stdin):
    warm, cold = both(warm_and_cold, spec("python", PROBE, stdin=stdin, timeout_s=7))
    assert (warm.exit_code, warm.stderr) == (0, ""), warm.stderr
    warm_view, cold_view = json.loads(warm.stdout), json.loads(cold.stdout)
    assert warm_view == cold_view
    assert warm_view["rlimits"]["RLIMIT_CPU"] == [8, 9]  # the job's own deadline, not the longest one
    assert warm_view["listing"] == ["main.py"] and warm_view["user_site"] is False
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
        "exit_3": (3, False), "keyboard_interrupt": (130, False), "sigterm": (143, False), "syntax_error": (1, False),
        "cpu_deadline": (137, True), "sleep_deadline": (137, True), "traceback": (1, False),
    }
    for case, (code, timed_out) in expect.items():
        source, options = CASES[case]
        result = run(warm, spec("python", source, **options))
        assert warm.last_start == "warm"
        assert (result.exit_code, result.timed_out) == (code, timed_out), (case, result)
    result = run(warm, spec("python", CASES["traceback"][0]))
    assert result.stderr.startswith('Traceback (most recent call last):\n  File "') and "main.py\", line 3" in result.stderr
    assert result.stderr.count("File ") == 2  # <module> and f: no frame of the hand-over above the job's
    result = run(warm, spec("python", CASES["keyboard_interrupt"][0]))
    assert result.stdout == "at exit\n"
    result = run(warm, spec("python", CASES["output_cap"][0], cap=100))
    assert result.truncated and result.stdout == "x" * 100


def test_warm_jobs_skip_the_interpreter_start(warm_and_cold):
    warm, cold = warm_and_cold
    durations = {"warm": [], "cold": []}
    for _ in range(5):
        for name, runner in (("warm", warm), ("cold", cold)):
            durations[name].append(run(runner, spec("python", "pass")).duration_ms)
    assert min(durations["warm"]) < min(durations["cold"]), durations


def test_other_languages_start_cold_and_python_is_warm_again_after_them(warm_and_cold):
    warm = warm_and_cold[0]
    assert run(warm, spec("sh", "echo $0; ls -A")).stdout.endswith("main.sh\n")
    assert warm.last_start == "cold"  # the waiting Python was ended and its hook removed first
    assert run(warm, spec("python", "import os; print(sorted(os.listdir('.')))")).stdout == "['main.py']\n"
    assert warm.last_start == "warm"


@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_waiting_interpreter_that_cannot_take_the_job_is_replaced_by_a_cold_start(warm_and_cold, how, monkeypatch):
    warm = warm_and_cold[0]
    warm._prestarter.join()
    waiting = warm._waiting
    if how == "killed":
        os.kill(waiting.proc.pid, signal.SIGKILL)
        waiting.proc.wait()
    else:
        from executor_service import prestart

        waiting.wait_ready()  # it has reported already; a second report never comes
        monkeypatch.setattr(prestart, "READY_TIMEOUT_S", 0.2)
        monkeypatch.setattr(type(waiting), "wait_ready", lambda self, timeout=0.2: False)
    result = run(warm, spec("python", "print('ran')"))
    assert (result.exit_code, result.stdout, warm.last_start) == (0, "ran\n", "cold")
    assert waiting.proc.poll() is not None  # ended, never reused
    monkeypatch.undo()
    assert run(warm, spec("python", "print('ran')")).stdout == "ran\n" and warm.last_start == "warm"
