"""End to end on the running stack: the agent runs the project's tests and shell commands in an executor.

The real OpenCode in the workspace, the model double scripted to call the executor's project tools
(``executor_run_tests``, ``executor_run_command``), a small pytest project put into the stack's
project directory on the host. The proof that the code ran in an executor and not in the
workspace is what the job itself reports: its hostname and UID are an executor's, it sees the
project at the agent's path, read-only, and the tool's result is what the model gets back.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox_model.destinations import PROJECT_MOUNT
from tests.support.agent_run import hostname, opencode_run, scripted

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

CALC = "def add(a, b):\n    return a + b\n"
#: test_where reports where it runs and tries to plant a file next to itself.
TESTS = """\
import os, pathlib, socket
from calc import add


def test_add():
    assert add(2, 3) == 5


def test_where():
    here = pathlib.Path(__file__).parent
    try:
        (here / "planted").write_text("x")
        wrote = "WRITE=ok"
    except OSError as exc:
        wrote = f"WRITE=refused:{exc.errno}"
    print("WHERE", socket.gethostname(), os.getuid(), os.getcwd(), wrote)
"""


def _inspect(container: str, template: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "--format", template, container], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def project_case(deployed_stack):
    """A pytest project in a fresh directory of the stack's project, owned like the agent's files."""
    if "model" not in deployed_stack.containers:
        pytest.skip(f"stack {deployed_stack.stack!r} has no in-stack model server to script the agent")
    workspace = deployed_stack.one("workspace")
    mounts = json.loads(_inspect(workspace, "{{json .Mounts}}"))
    host_project = Path(next(m["Source"] for m in mounts if m["Destination"] == PROJECT_MOUNT))
    uid, gid = (int(part) for part in _inspect(workspace, "{{.Config.User}}").split(":"))
    case = host_project / f"e2e-tests-{secrets.token_hex(4)}"
    case.mkdir()
    for name, text in (("calc.py", CALC), ("test_calc.py", TESTS)):
        (case / name).write_text(text)
    for path in (case, *case.iterdir()):
        os.chown(path, uid, gid)
    yield workspace, case
    shutil.rmtree(case)


def _executor_identities(deployed_stack) -> dict[str, str]:
    """Executor hostname -> its UID (each executor has its own)."""
    return {
        hostname(name): _inspect(name, "{{.Config.User}}").split(":")[0]
        for name in deployed_stack.containers["executor"]
    }


def _only_tool_result(run, tool: str) -> dict:
    assert run.returncode == 0, run.diagnostics
    assert [(t["tool"], t["state"]["status"]) for t in run.tool_uses()] == [(tool, "completed")], run.diagnostics
    return json.loads(run.tool_uses()[0]["state"]["output"])  # the executor's JobResult


def test_the_agent_runs_the_projects_tests_in_an_executor(deployed_stack, project_case):
    workspace, case = project_case
    run = opencode_run(workspace, scripted("executor_run_tests", {"arguments": f"-q -s {case.name}"}))
    result = _only_tool_result(run, "executor_run_tests")
    assert result["exit_code"] == 0 and "2 passed" in result["stdout"], run.diagnostics

    # pytest -s prints the test's line right after its progress dot: find it anywhere.
    where = re.search(r"WHERE (\S+) (\S+) (\S+) (\S+)", result["stdout"])
    assert where, run.diagnostics
    host, uid, cwd, wrote = where.groups()
    executors = _executor_identities(deployed_stack)
    assert host in executors and host != hostname(workspace), f"the tests ran on {host!r}" + run.diagnostics
    assert uid == executors[host], run.diagnostics
    assert cwd == PROJECT_MOUNT  # the project, at the path the agent sees it at
    assert wrote.startswith("WRITE=refused"), run.diagnostics
    assert sorted(p.name for p in case.iterdir()) == ["calc.py", "test_calc.py"]  # nothing planted, no caches

    reported = [text for text in run.texts() if text.startswith("Executor said:")]
    assert reported and "2 passed" in reported[-1], "the result did not reach the model" + run.diagnostics


@pytest.mark.usefixtures("deployed_stack")
def test_a_failing_test_reaches_the_model_as_a_failure(project_case):
    workspace, case = project_case
    (case / "calc.py").write_text("def add(a, b):\n    return a - b\n")  # as the agent's edit would
    run = opencode_run(workspace, scripted("executor_run_tests", {"arguments": f"-q {case.name}"}))
    result = _only_tool_result(run, "executor_run_tests")
    assert result["exit_code"] == 1 and "1 failed" in result["stdout"], run.diagnostics
    reported = [text for text in run.texts() if text.startswith("Executor said:")]
    assert reported and "1 failed" in reported[-1], run.diagnostics


def test_a_shell_command_runs_in_an_executor_and_cannot_change_the_project(deployed_stack, project_case):
    workspace, case = project_case
    marker = f"marker-{secrets.token_hex(4)}"
    command = f"cd {case.name} && pwd && id -u && hostname && ls && touch {marker}; echo touch=$?"
    run = opencode_run(workspace, scripted("executor_run_command", {"command": command}))
    result = _only_tool_result(run, "executor_run_command")
    lines = result["stdout"].splitlines()
    executors = _executor_identities(deployed_stack)
    assert lines[0] == f"{PROJECT_MOUNT}/{case.name}" and lines[2] in executors, run.diagnostics
    assert lines[1] == executors[lines[2]], run.diagnostics
    assert "calc.py" in lines and "touch=0" not in lines, run.diagnostics
    assert not (case / marker).exists()
