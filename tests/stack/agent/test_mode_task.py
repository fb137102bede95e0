"""The autonomous task mode on the running stack, as its user runs it: ``bash scripts/task <stack> <file>``.

Task files in the stack's project make the model double (its script: ``TOOL_CALL=<name> ARGS=…``,
one tool call per directive, in order) drive the real OpenCode in the workspace. What is checked is what the
user gets: the exit status, the transcript and the summary under ``<project>/logs/``, owned by
the workspace user, and what the agent did to the project.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox_model.destinations import PROJECT_MOUNT
from sandbox_model.paths import REPO_ROOT
from tests.support.agent_run import scripted

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

#: Bounds a hung command (the test then fails); the limits under test are far below it.
COMMAND_TIMEOUT_S = 300
#: The file the agent writes and then has tested in an executor.
WRITTEN_TESTS = "def test_sum():\n    assert sum([1, 2, 3]) == 6\n"


@dataclass
class Project:
    stack: str
    workspace: str
    host: Path
    owner: tuple[int, int]
    #: A fresh directory of the project for this test (its name is in every task file's name).
    case: str

    def write_task(self, name: str, text: str) -> str:
        """A task file in the case directory, owned like the agent's files; its path relative to the project."""
        path = self.host / self.case / name
        path.write_text(text)
        os.chown(path, *self.owner)
        return f"{self.case}/{name}"

    def run(self, task: str, *options: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                ["bash", "scripts/task", self.stack, task, *options],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"scripts/task ran longer than {COMMAND_TIMEOUT_S}s:\n{exc.stdout}\n{exc.stderr}")

    def logs(self, task: str) -> tuple[list[dict], dict, Path]:
        """The transcript's events and the summary of the one run of ``task``, and the summary's path."""
        stem = Path(task).stem
        summaries = sorted((self.host / "logs").glob(f"task-*-{stem}.summary.json"))
        assert len(summaries) == 1, f"summaries of {task}: {summaries}"
        summary = json.loads(summaries[0].read_text())
        transcript = self.host / summary["transcript"]
        events = [json.loads(line) for line in transcript.read_text().splitlines()]
        return events, summary, summaries[0]


@pytest.fixture
def project(deployed_stack, docker_api):
    if "model" not in deployed_stack.containers:
        pytest.skip(f"stack {deployed_stack.stack!r} has no in-stack model server to script the agent")
    workspace = deployed_stack.one("workspace")
    attrs = docker_api.api.inspect_container(workspace)
    [host] = [Path(m["Source"]) for m in attrs["Mounts"] if m["Destination"] == PROJECT_MOUNT]
    owner = tuple(int(part) for part in attrs["Config"]["User"].split(":"))
    project = Project(deployed_stack.stack, workspace, host, owner, case=f"e2e-task-{secrets.token_hex(4)}")
    (host / project.case).mkdir()
    os.chown(host / project.case, *owner)
    yield project
    shutil.rmtree(host / project.case)
    for log in (host / "logs").glob(f"task-*-{project.case}-*"):
        log.unlink()


def _tools(summary: dict) -> list[tuple[str, str]]:
    return [(tool["tool"], tool["status"]) for tool in summary["tools"]]


def test_a_task_file_makes_the_agent_write_a_file_and_test_it_in_an_executor(project):
    written = f"{project.case}/test_written.py"
    steps = [
        scripted("write", {"filePath": f"{PROJECT_MOUNT}/{written}", "content": WRITTEN_TESTS}),
        scripted("executor_run_tests", {"arguments": f"-q {written}"}),
    ]
    task = project.write_task(
        f"{project.case}-task.md", "# Write the test file, then run it\n\n" + "\n\n".join(steps) + "\n"
    )
    run = project.run(task)
    diagnostics = f"\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert run.returncode == 0, diagnostics
    events, summary, summary_path = project.logs(task)
    assert (summary["outcome"], summary["finished"], summary["exit_code"]) == ("finished", True, 0), diagnostics
    assert _tools(summary) == [("write", "completed"), ("executor_run_tests", "completed")], summary
    assert summary["steps"] == 3, summary
    assert (project.host / written).read_text() == WRITTEN_TESTS
    tool_uses = [e["part"] for e in events if e["type"] == "tool_use"]
    assert [t["tool"] for t in tool_uses] == ["write", "executor_run_tests"]
    result = json.loads(tool_uses[1]["state"]["output"])  # the executor's JobResult
    assert result["exit_code"] == 0 and "1 passed" in result["stdout"], result
    assert events[-1]["type"] == "step_finish" and events[-1]["part"]["reason"] == "stop"
    assert "1 passed" in summary["last_text"], summary
    assert "outcome:    finished (exit 0)" in run.stdout and f"summary:    {summary['summary']}" in run.stdout
    for path in (project.host / written, summary_path, project.host / summary["transcript"]):
        assert (path.stat().st_uid, path.stat().st_gid) == project.owner, path


def test_the_step_limit_stops_the_agent(project):
    task = project.write_task(
        f"{project.case}-steps.md",
        scripted("write", {"filePath": f"{PROJECT_MOUNT}/{project.case}/limited.txt", "content": "x\n"}),
    )
    run = project.run(task, "--max-steps", "1")
    assert run.returncode == 4, f"{run.stdout}\n{run.stderr}"
    _, summary, _ = project.logs(task)
    assert (summary["outcome"], summary["finished"], summary["limits"]["max_steps"]) == ("step_limit", False, 1)
    assert summary["steps"] == 2 and "began step 2" in summary["reason"], summary


def test_the_wall_clock_limit_stops_the_agent_and_leaves_nothing_running(project):
    task = project.write_task(
        f"{project.case}-slow.md",
        scripted("executor_run_code", {"language": "python", "source": "import time; time.sleep(30)", "timeout_s": 40}),
    )
    run = project.run(task, "--timeout-s", "3")
    assert run.returncode == 3, f"{run.stdout}\n{run.stderr}"
    _, summary, _ = project.logs(task)
    assert (summary["outcome"], summary["finished"], summary["limits"]["timeout_s"]) == ("timeout", False, 3)
    processes = subprocess.run(
        ["docker", "exec", project.workspace, "ps", "-eo", "args"], capture_output=True, text=True, check=True
    ).stdout
    assert "opencode run" not in processes, processes


def test_a_task_file_that_is_not_there_is_refused_before_anything_runs(project):
    run = project.run(f"{project.case}/{project.case}-absent.md")
    assert run.returncode == 2 and "no task file" in run.stderr and "Fix:" in run.stderr, run.stderr
    logs = project.host / "logs"
    assert not (logs.is_dir() and list(logs.glob(f"task-*-{project.case}-absent*")))
