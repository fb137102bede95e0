"""Job execution on this host (development mode): limits, deadlines, leftovers, scratch space, order."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import anyio
import pytest

from executor_service.jobs import LANGUAGES, JobSpec
from executor_service.runner import JOB_NOFILE

from .conftest import TOKEN, run_async


def spec(
    language: str,
    source: str,
    *,
    stdin: str | None = None,
    timeout_s: float = 10,
    cap: int = 4096,
    workdir: Path | None = None,
) -> JobSpec:
    return JobSpec(
        language=LANGUAGES[language],
        source=source.encode(),
        stdin=None if stdin is None else stdin.encode(),
        timeout_s=timeout_s,
        max_output_bytes=cap,
        workdir=workdir,
    )


def run(runner, job: JobSpec):
    return run_async(runner.run, job)


def left_in_work_root(runner) -> list[str]:
    """What is in the work root besides the next job's pre-started interpreter's (or a new fork server's)
    fresh job dir and hook."""
    runner._join_creator()
    found = sorted(str(path.relative_to(runner.work_root)) for path in runner.work_root.rglob("*"))
    hook = runner.job_dir / ".local"
    return [name for name in found if name != "job" and not (runner.work_root / name).is_relative_to(hook)]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (zombies waiting for this host's init count as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_child_spawned_by_a_timed_out_job_is_killed_too(runner):
    result = run(runner, spec("sh", "sleep 60 & echo $!\nsleep 60", timeout_s=0.5))
    assert result.timed_out and result.exit_code == 137
    child = int(result.stdout)
    assert not alive(child)


def test_background_processes_end_with_the_job_which_does_not_wait_for_them(runner):
    started = time.monotonic()
    result = run(runner, spec("sh", "sleep 60 & echo $!"))
    assert time.monotonic() - started < 5
    assert result.exit_code == 0 and not result.timed_out
    assert not alive(int(result.stdout))


def test_a_job_that_closes_its_output_still_ends_when_its_process_does(runner):
    result = run(runner, spec("sh", "exec >&- 2>&-\nsleep 0.3", timeout_s=5))
    assert result.exit_code == 0 and not result.timed_out
    assert 300 <= result.duration_ms < 4000


def test_stdin_defaults_to_an_empty_dev_null(runner):
    result = run(runner, spec("sh", "cat; echo done", timeout_s=5))
    assert (result.stdout, result.timed_out) == ("done\n", False)


def test_a_large_stdin_arrives_whole_while_output_is_read(runner):
    payload = "".join(f"{i:07d}\n" for i in range(25_000))  # 200 KB: far beyond a pipe buffer
    result = run(runner, spec("python", "import sys\nprint(len(sys.stdin.read()))", stdin=payload))
    assert result.stdout == f"{len(payload)}\n"


def test_each_stream_is_capped_separately(runner):
    result = run(runner, spec("python", "import sys\nprint('o' * 9000)\nprint('e' * 10, file=sys.stderr)", cap=64))
    assert result.stdout == "o" * 64
    assert result.stderr == "e" * 10 + "\n"
    assert result.truncated


def test_the_job_environment_is_clean_and_carries_no_token(runner, monkeypatch):
    monkeypatch.setenv("EXECUTOR_TOKEN", TOKEN)  # as if the service's environment held a secret
    monkeypatch.setenv("SOME_SERVICE_SECRET", "x")
    result = run(runner, spec("python", "import json, os\nprint(json.dumps(dict(os.environ)))"))
    env = json.loads(result.stdout)
    assert set(env) == {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONUNBUFFERED"}
    assert TOKEN not in result.stdout
    assert env["HOME"] == env["TMPDIR"] == str(runner.job_dir)


def test_a_job_gets_its_limits(runner):
    probe = """
import os, resource, signal
print(os.getsid(0) == os.getpid())
print(resource.getrlimit(resource.RLIMIT_NPROC)[0], resource.getrlimit(resource.RLIMIT_CPU)[0],
      resource.getrlimit(resource.RLIMIT_CORE)[1], resource.getrlimit(resource.RLIMIT_NOFILE)[0])
print(open('/proc/self/oom_score_adj').read().strip())
print(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
"""
    lines = run(runner, spec("python", probe, timeout_s=4.2)).stdout.splitlines()
    assert lines[0] == "True"  # its own session
    assert lines[1] == f"{runner.settings.job_nproc} 6 0 {JOB_NOFILE}"
    assert lines[2] == "1000"
    assert lines[3] == "[]"


def test_a_memory_limit_applies_when_configured(work_root, job_launcher):
    from executor_service.isolation import IsolationMode
    from executor_service.runner import JobRunner

    from .conftest import make_settings

    limited = JobRunner(make_settings(work_root, job_launcher, EXECUTOR_JOB_MEMORY_MB="200"), IsolationMode.DEVELOPMENT)
    limited.prepare()
    result = run(limited, spec("python", "x = bytearray(400 * 1024 * 1024)"))
    assert result.exit_code == 1
    assert "MemoryError" in result.stderr


def test_the_work_root_is_empty_after_every_job(runner):
    run(
        runner,
        spec(
            "sh",
            "mkdir -p a/b/c ../elsewhere && echo x > a/b/c/f && echo y > ../elsewhere/g\n"
            "ln -s / a/root && mkfifo pipe && chmod 000 a/b ../elsewhere",
        ),
    )
    assert left_in_work_root(runner) == []
    listing = run(runner, spec("sh", "ls -A; ls -A ..")).stdout
    assert listing == "main.sh\njob\n"


def test_jobs_run_one_at_a_time_in_arrival_order(runner):
    # Each job reports when it ran on the system-wide monotonic clock (a job can write nowhere outside
    # the work root, which is wiped after it).
    source = "import time\nstart = time.monotonic()\ntime.sleep(0.3)\nprint(NAME, start, time.monotonic())"
    results = []

    async def submit(name):
        results.append((await runner.run(spec("python", f"NAME = {name!r}\n" + source))).stdout.split())

    async def submit_all():
        async with anyio.create_task_group() as group:
            for name in "abc":
                group.start_soon(submit, name)
                await anyio.sleep(0.05)

    run_async(submit_all)
    ran = sorted((float(start), float(end), name) for name, start, end in results)
    assert [name for _, _, name in ran] == ["a", "b", "c"]  # in arrival order
    assert all(ran[i][1] <= ran[i + 1][0] for i in range(2)), ran  # one at a time: no overlap


def test_a_job_whose_interpreter_is_missing_does_not_run_and_says_why(runner):
    runner.interpreters["python"] = "/nonexistent/python3"
    runner.close()  # the interpreter waiting since prepare() was started from the real one
    # First a cold start; then one handed to a pre-start that failed (its launcher refused): cold again.
    for _ in range(2):
        result = run(runner, spec("python", "print(1)"))
        assert result.exit_code == 125
        assert result.stderr == "job-launch: /nonexistent/python3: No such file or directory\n"
        assert runner.last_start == "cold"


def test_a_job_that_cannot_start_is_reported_and_leaves_nothing(work_root, job_launcher, tmp_path):
    from executor_service.isolation import IsolationMode
    from executor_service.runner import JobRunner, JobStartFailed

    from .conftest import make_settings

    vanishing = tmp_path / "job-launch"
    shutil.copy(job_launcher, vanishing)
    runner = JobRunner(make_settings(work_root, vanishing), IsolationMode.DEVELOPMENT)
    runner.prepare()
    vanishing.unlink()
    runner.close()  # the interpreter waiting since prepare() was launched while the launcher existed
    with pytest.raises(JobStartFailed, match="could not start the python job"):
        run(runner, spec("python", "print(1)"))
    runner.close()  # wait for the next pre-start (it fails too, and must leave nothing either)
    assert list(runner.work_root.iterdir()) == []


@pytest.mark.parametrize("language", ["python", "sh"])
def test_a_job_runs_in_its_working_directory_with_its_scratch_home_and_script(runner, tmp_path, language):
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.txt").write_text("x")
    source = {
        "python": "import os, sys\nprint(os.getcwd(), os.listdir('.'), os.environ['HOME'], os.environ['TMPDIR'], "
        "__file__, sys.path[0])",
        "sh": "echo \"$(pwd) ['$(ls)'] $HOME $TMPDIR $0\"",
    }[language]
    result = run(runner, spec(language, source, workdir=project))
    job_dir, script = runner.job_dir, runner.job_dir / LANGUAGES[language].script_name
    expected = f"{project} ['data.txt'] {job_dir} {job_dir} {script}" + (f" {job_dir}" if language == "python" else "")
    assert (result.exit_code, result.stdout, result.stderr) == (0, expected + "\n", "")
    # The next job without one is back in its scratch directory.
    assert run(runner, spec(language, "pwd" if language == "sh" else "import os; print(os.getcwd())")).stdout == (
        f"{job_dir}\n"
    )


def test_a_working_directory_that_is_none_runs_nothing(runner, tmp_path):
    from executor_service.runner import JobStartFailed

    afile = tmp_path / "file"
    afile.write_text("")
    for workdir in (tmp_path / "missing", afile, Path("relative")):
        with pytest.raises(JobStartFailed, match="working directory"):
            run(runner, spec("python", "print(1)", workdir=workdir))
    assert run(runner, spec("python", "print(1)")).stdout == "1\n"  # and nothing broke
