"""The conductor mode on the running stack: an outside agent's MCP session against the published endpoint.

The test is the outside agent: the official ``mcp`` SDK's client (streamable HTTP) on the host, at
``http://127.0.0.1:<conductor.host_port>/mcp`` (the conductor's ingress gateway), with the stack's
``conductor_token`` (a secret output). ``delegate_task`` with a ``MARKER=`` prompt makes the model
double have the workspace's agent run code in an executor; its answer comes back through the
conductor. The project is written through the workspace (which owns it). Only 127.0.0.1 and
``docker exec`` are used; nothing here touches the internet.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from sandbox_model.naming import docker_name
from tests.support.agent_run import scripted

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

TOOLS = {"delegate_task", "abort_task", "read_project_file", "list_project_files", "get_project_status"}
INGRESS_PORT_KEY = "8080/tcp"


#: On a stack this session did not deploy (OPENCODE_SANDBOX_TARGET=existing), the token comes from here
#: (`pulumi stack output conductor_token --show-secrets`).
TOKEN_ENV = "OPENCODE_SANDBOX_CONDUCTOR_TOKEN"


@pytest.fixture(scope="module")
def conductor(deployed_stack, docker_api):
    if "conductor" not in deployed_stack.containers:
        pytest.skip(f"stack {deployed_stack.stack!r} does not enable the conductor")
    gateway = docker_name(deployed_stack.stack, "ingress", "conductor")
    bindings = docker_api.api.inspect_container(gateway)["HostConfig"]["PortBindings"][INGRESS_PORT_KEY]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"], bindings
    url = f"http://127.0.0.1:{bindings[0]['HostPort']}/mcp"
    if deployed_stack.workspace is not None:
        outputs = deployed_stack.workspace.outputs(deployed_stack.stack)
        assert outputs["conductor_url"] == url
        token = outputs["conductor_token"]
    elif os.environ.get(TOKEN_ENV):
        token = os.environ[TOKEN_ENV]
    else:
        pytest.skip(f"the conductor's token of an existing stack: set {TOKEN_ENV}")
    return url, token


async def _session(url: str, token: str, work):
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=300, trust_env=False) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        return await work(client)


def session(conductor, work):
    url, token = conductor
    return run_async(lambda: _session(url, token, work))


def run_async(function):
    """anyio.run on a private event loop: asyncio.run would leave the main thread without a current
    loop, which breaks later tests (Pulumi's mocks) that call asyncio.get_event_loop()."""
    import anyio

    return anyio.run(function, backend_options={"loop_factory": asyncio.new_event_loop})


def tool(conductor, name, arguments=None):
    return session(conductor, lambda client: client.call_tool(name, arguments or {}))


def in_workspace(deployed_stack, script: str) -> str:
    run = subprocess.run(
        ["docker", "exec", deployed_stack.one("workspace"), "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_an_outside_agent_lists_the_tools_and_delegates_a_task(conductor):
    tools = session(conductor, lambda client: client.list_tools()).tools
    assert {t.name for t in tools} == TOOLS
    marker = f"conductor-{secrets.token_hex(6)}"
    result = tool(conductor, "delegate_task", {"prompt": f"Run the executor check. MARKER={marker}"})
    assert result.is_error is False, result.content
    answer = result.structured_content
    assert "Executor said:" in answer["answer"] and marker in answer["answer"], answer
    assert "executor_run_code" in answer["tools_used"], answer
    again = tool(conductor, "delegate_task", {"prompt": f"Run the executor check. MARKER={marker}-2"})
    assert again.structured_content["session_id"] == answer["session_id"], "the session is not persistent"


def test_project_files_and_status_are_readable_and_nothing_outside(conductor, deployed_stack):
    name = f"conductor-{secrets.token_hex(4)}.txt"
    in_workspace(
        deployed_stack,
        f"mkdir -p /workspace/conductor-check && echo hello-{name} > "
        f"/workspace/conductor-check/{name} && ln -sfn /proc/self/environ "
        "/workspace/conductor-check/environ-link && ln -sfn /etc /workspace/conductor-check/etc-link",
    )
    try:
        read = tool(conductor, "read_project_file", {"path": f"conductor-check/{name}"})
        assert read.structured_content["text"] == f"hello-{name}\n"
        listed = tool(conductor, "list_project_files", {"path": "conductor-check"}).structured_content["entries"]
        assert f"conductor-check/{name}" in listed
        for bad in ("conductor-check/environ-link", "conductor-check/etc-link/passwd", "../etc/passwd", "/etc/passwd"):
            refused = tool(conductor, "read_project_file", {"path": bad})
            assert refused.is_error is True, bad
            assert "OPENCODE_PASSWORD" not in refused.content[0].text and "root:" not in refused.content[0].text
        status = tool(conductor, "get_project_status").structured_content
        assert "git" in status and status["task_running"] is False
        if status["git"]:
            assert any("conductor-check" in line for line in status["changes"]), status
    finally:
        in_workspace(deployed_stack, "rm -rf /workspace/conductor-check")


def test_abort_task_stops_a_running_task(conductor):
    slow = scripted("executor_run_code", {"language": "sh", "source": "sleep 30", "timeout_s": 45})

    async def work(client):
        task = asyncio.create_task(client.call_tool("delegate_task", {"prompt": slow}))
        await asyncio.sleep(5)
        url, token = conductor
        aborted = await _session(url, token, lambda other: other.call_tool("abort_task", {}))
        started = time.monotonic()
        delegated = await task
        return aborted, delegated, time.monotonic() - started

    aborted, delegated, waited = session(conductor, work)
    assert aborted.is_error is False, aborted.content
    diagnostics = f"abort: {aborted.structured_content}; delegate_task: {delegated.content}"
    assert aborted.structured_content["aborted"] is True and aborted.structured_content["was_running"] is True, (
        diagnostics
    )
    assert waited < 25, f"the task went on for {waited:.0f}s after abort_task; {diagnostics}"
    # The session is usable again.
    again = tool(conductor, "delegate_task", {"prompt": f"Run the executor check. MARKER=after-{secrets.token_hex(3)}"})
    assert again.is_error is False, again.content


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic b3BlbmNvZGU6eA=="])
def test_a_wrong_token_is_refused(conductor, header):
    url, _ = conductor
    request = urllib.request.Request(
        url,
        method="POST",
        data=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **({"Authorization": header} if header else {}),
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30)
    assert refused.value.code == 401


@pytest.mark.usefixtures("conductor")
def test_the_workspace_cannot_reach_the_conductors_port(deployed_stack):
    """The conductor shares the ingress network with the workspace but listens on its conductor-network alias only."""
    name = deployed_stack.one("conductor")
    run = subprocess.run(
        [
            "docker",
            "exec",
            deployed_stack.one("workspace"),
            "bash",
            "-c",
            f"exec 3<>/dev/tcp/{name}/8080 && echo CONNECTED",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "CONNECTED" not in run.stdout and "refused" in run.stderr, (run.stdout, run.stderr)
