"""The project tools (run_command, run_tests): commands in the agent's project, which jobs may read but not change.

Real job processes through the real launcher, so the job's Landlock domain is what refuses writes
outside the scratch directory here (in the stack the project is also a read-only bind).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from executor_service.isolation import IsolationMode, StartupError
from executor_service.jobs import RunRequest, job_from_request
from executor_service.project import check_project_dir
from executor_service.runner import JobRunner

from .conftest import LiveServer, make_settings, run_async
from .test_executor_mcp import _with_client

CALC = "def add(a, b):\n    return a + b\n"
TESTS = "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n\ndef test_other():\n    assert True\n"


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "calc.py").write_text(CALC)
    (root / "test_calc.py").write_text(TESTS)
    return root


def listing(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@pytest.fixture
def project_server(tmp_path, job_launcher, project):
    # Its own work root: a second runner on the `runner` fixture's would sweep that one's jobs.
    work_root = tmp_path / "project-work"
    work_root.mkdir()
    # The host's interpreter of this test run has pytest; the image gets it from executors.packages.
    settings = make_settings(
        work_root,
        job_launcher,
        EXECUTOR_PROJECT_DIR=str(project),
        EXECUTOR_TEST_COMMAND=f"{shlex.quote(sys.executable)} -m pytest -q -p no:randomly",
    )
    runner = JobRunner(settings, IsolationMode.DEVELOPMENT)
    runner.prepare()
    with LiveServer(runner) as server:
        yield server
    runner.close()


def call_tool(server: LiveServer, name: str, arguments: dict):
    async def work(client):
        return await client.call_tool(name, arguments)

    return run_async(lambda: _with_client(server.url, work))


def list_tools(server: LiveServer):
    async def work(client):
        return (await client.list_tools()).tools

    return run_async(lambda: _with_client(server.url, work))


def test_the_project_tools_are_offered_only_with_a_project(project_server, live_server):
    assert [tool.name for tool in list_tools(live_server)] == ["run_code"]
    tools = {tool.name: tool for tool in list_tools(project_server)}
    assert set(tools) == {"run_code", "run_command", "run_tests"}
    assert set(tools["run_command"].input_schema["required"]) == {"command"}
    assert set(tools["run_tests"].input_schema["properties"]) == {"arguments", "timeout_s"}
    assert str(project_server.runner.settings.project_dir) in tools["run_tests"].description


def test_a_command_runs_in_the_project_and_cannot_change_it(project_server, project):
    before = listing(project)
    command = (
        'pwd; echo "home=$HOME"; cat calc.py; echo x > planted; echo "write=$?"; rm calc.py; echo "rm=$?"; '
        'mkdir .git; echo "mkdir=$?"; echo y > "$HOME/scratch" && echo scratch-ok'
    )
    result = call_tool(project_server, "run_command", {"command": command}).structured_content
    lines = result["stdout"].splitlines()
    assert lines[0] == str(project)
    assert lines[1] == f"home={project_server.runner.job_dir}"
    assert "def add" in result["stdout"]
    assert "write=0" not in lines and "rm=0" not in lines and "mkdir=0" not in lines
    assert "scratch-ok" in lines  # its scratch space stays writable
    assert listing(project) == before and (project / "calc.py").read_text() == CALC


def test_the_projects_tests_run_and_their_result_comes_back(project_server, project):
    passed = call_tool(project_server, "run_tests", {}).structured_content
    assert passed["exit_code"] == 0, passed
    assert "2 passed" in passed["stdout"]
    (project / "calc.py").write_text("def add(a, b):\n    return a - b\n")  # the agent edits the project
    failed = call_tool(project_server, "run_tests", {"arguments": "-k test_add"}).structured_content
    assert failed["exit_code"] == 1, failed
    assert "1 failed" in failed["stdout"] and "1 deselected" in failed["stdout"]
    assert "assert -1 == 5" in failed["stdout"]


def test_a_test_run_leaves_no_cache_in_the_project(project_server, project):
    before = listing(project)
    result = call_tool(project_server, "run_tests", {}).structured_content
    assert result["exit_code"] == 0, result
    assert "could not create cache" not in result["stdout"] + result["stderr"]  # it had a writable cache dir
    assert listing(project) == before  # no .pytest_cache, no __pycache__


def test_the_http_api_runs_in_the_project_only_when_there_is_one(project_server, runner, project):
    request = RunRequest(language="sh", source="pwd", in_project=True)
    with pytest.raises(ValueError, match="EXECUTOR_PROJECT_DIR is unset"):
        job_from_request(request, runner.settings)
    import httpx2

    response = httpx2.post(
        f"{project_server.url}/v1/run",
        json=request.model_dump(exclude_none=True),
        headers={"Authorization": "Bearer unit-test-token-0123456789abcdef"},
        trust_env=False,
    )
    assert response.status_code == 200 and response.json()["stdout"] == f"{project}\n"


def test_a_project_dir_that_is_missing_or_writable_in_a_container_stops_the_start(work_root, job_launcher, project):
    missing = make_settings(work_root, job_launcher, EXECUTOR_PROJECT_DIR=str(project / "nope"))
    with pytest.raises(StartupError, match="EXECUTOR_PROJECT_DIR .* not an absolute path to a directory"):
        check_project_dir(missing, IsolationMode.DEVELOPMENT)
    writable = make_settings(work_root, job_launcher, EXECUTOR_PROJECT_DIR=str(project))
    check_project_dir(writable, IsolationMode.DEVELOPMENT)  # on a developer's host: allowed
    with pytest.raises(StartupError, match="mounted writable: the stack must bind the project read-only"):
        check_project_dir(writable, IsolationMode.CONTAINER)
