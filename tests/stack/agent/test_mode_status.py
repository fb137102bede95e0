"""The status mode on the running stack, as its user runs it: ``bash scripts/status <stack> --html FILE``.

Before it runs, the test gives it something to show: a failing job on one executor (through the
executor's API, from inside the workspace, whose environment holds the token) and, when the stack
has an egress gateway, a denied and (if the allowlist names pypi.org) an allowed request from the
workspace through the gateway. Outside hosts contacted: pypi.org (admitted) only; the denied name
is never looked up.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import subprocess

import pytest

from components.egress_proxy import PAGE_NOT_ALLOWLISTED
from sandbox_model.executor_contract import PORT as EXECUTOR_PORT
from sandbox_model.naming import docker_name
from sandbox_model.paths import REPO_ROOT
from tests.stack.runtime import container_env

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

COMMAND_TIMEOUT_S = 120
#: The exit status of the job that fails on purpose: the executor's row must show it as its last failure.
FAILING_EXIT = 97
MIB = 1 << 20


def in_workspace(workspace: str, script: str) -> str:
    run = subprocess.run(
        ["docker", "exec", workspace, "sh", "-c", script], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )
    assert run.returncode == 0, f"{script}\n{run.stdout}\n{run.stderr}"
    return run.stdout


def failing_job(workspace: str, executor: str) -> dict:
    body = json.dumps({"language": "sh", "source": f"exit {FAILING_EXIT}"})
    # "$EXECUTOR_TOKEN" is expanded inside the workspace: the token appears on no command line.
    script = (
        f'curl -sS --fail --max-time 60 -H "Authorization: Bearer $EXECUTOR_TOKEN" '
        f"-H 'content-type: application/json' -d {shlex.quote(body)} http://{executor}:{EXECUTOR_PORT}/v1/run"
    )
    return json.loads(in_workspace(workspace, script))


def through_egress(workspace: str, url: str) -> str:
    """curl in the workspace with its own proxy environment; the HTTP status it got (000: none)."""
    return in_workspace(workspace, f"curl -s -o /dev/null --max-time 30 -w '%{{http_code}}' {shlex.quote(url)}; true")


def row(output: str, first: str) -> list[str]:
    """The table row whose first cell is ``first``, split on the table's two-space gaps."""
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{output}")


def test_status_shows_health_usage_jobs_and_egress_decisions(deployed_stack, docker_api, tmp_path):
    stack = deployed_stack.stack
    workspace = deployed_stack.one("workspace")
    executor = deployed_stack.containers["executor"][0]
    assert failing_job(workspace, executor)["exit_code"] == FAILING_EXIT

    gateway = (deployed_stack.containers.get("egress-gateway") or [None])[0]
    denied = f"denied-{secrets.token_hex(4)}.example.com"
    allowed = None
    if gateway:
        assert through_egress(workspace, f"http://{denied}/") == "403"
        if "pypi.org" in container_env(docker_api, gateway).get("EGRESS_SQUID_CONF", ""):
            allowed = "pypi.org"
            through_egress(workspace, "https://pypi.org/simple/")

    page = tmp_path / "status.html"
    run = subprocess.run(
        ["bash", "scripts/status", stack, "--html", str(page)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    output = run.stdout
    assert run.returncode == 0, f"{output}\n{run.stderr}"
    count = len(deployed_stack.all_containers)
    assert output.startswith(f"stack {stack}: {count} containers, {count} running, {count} healthy"), output

    prefix = docker_name(stack, "")
    for name in deployed_stack.all_containers:
        short = name[len(prefix) :]
        cells = row(output, short)
        host_config = docker_api.api.inspect_container(name)["HostConfig"]
        assert cells[2:4] == ["running", "healthy"], cells
        cpu = re.fullmatch(r"[\d.]+ CPU / ([\d.]+) CPU \((\d+)%\)", cells[5])
        assert cpu and float(cpu.group(1)) == host_config["NanoCpus"] / 1e9, cells
        memory = re.fullmatch(r"(\d+) (MiB|GiB|KiB|B) / ([\d.]+) (MiB|GiB) \((\d+)%\)", cells[6])
        limit = float(memory.group(3)) * (1024 * MIB if memory.group(4) == "GiB" else MIB) if memory else 0
        assert memory and abs(limit - host_config["Memory"]) < 0.05 * host_config["Memory"], cells

    # The executor's name starts a row of the containers' table, then one of the executors' table.
    jobs = [line for line in output.splitlines() if line.startswith(executor[len(prefix) :] + " ")][-1]
    cells = re.split(r"\s{2,}", jobs.strip())
    assert int(cells[1]) >= 1 and int(cells[2]) >= 1, jobs
    assert cells[4].endswith(f"sh exit {FAILING_EXIT}"), jobs

    if gateway:
        denied_row = next(re.split(r"\s{2,}", line.strip()) for line in output.splitlines() if f"{denied}:80" in line)
        assert denied_row[0] == "denied" and denied_row[-1] == f"403 {PAGE_NOT_ALLOWLISTED}", denied_row
        if allowed:
            allowed_row = next(
                re.split(r"\s{2,}", line.strip())
                for line in output.splitlines()
                if line.startswith("allowed") and f"{allowed}:443" in line
            )
            assert int(allowed_row[2]) >= 1, allowed_row
    else:
        assert "no egress gateway in this stack" in output

    html = page.read_text()
    assert html.startswith("<!doctype html>") and f"sh exit {FAILING_EXIT}" in html
    assert all(name[len(prefix) :] in html for name in deployed_stack.all_containers)
    assert not gateway or f"{denied}:80" in html
