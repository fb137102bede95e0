"""End to end on the running stack: the real OpenCode agent in the workspace has its code run in an executor.

``docker exec <workspace> opencode run "... MARKER=<token>"`` drives OpenCode against the ci
stack's model test double (images/model-double), whose script answers the marker with one call
to the executor's MCP tool (``executor_run_code``) running code that prints
``socket.gethostname()`` and the token, then reports the tool's result as ``Executor said: ...``.
The printed hostname must be an executor container's, never the workspace's. Nothing here
touches the internet. (tests/host/agent/test_opencode_drives_double_on_host.py proves the same script
with the binary on the host.)
"""

from __future__ import annotations

import json
import secrets

import pytest

from tests.support.agent_run import hostname, opencode_run

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

TOOL = "executor_run_code"  # OpenCode's name for the MCP server `executor`'s tool `run_code`


def test_opencode_in_the_workspace_runs_code_in_an_executor(deployed_stack):
    if "model" not in deployed_stack.containers:
        pytest.skip(f"stack {deployed_stack.stack!r} has no in-stack model server to script the agent")
    workspace = deployed_stack.one("workspace")
    executor_hosts = {hostname(name): name for name in deployed_stack.containers["executor"]}
    token = f"e2e-{secrets.token_hex(6)}"
    run = opencode_run(workspace, f"Run the executor check. MARKER={token}")
    diagnostics = run.diagnostics
    assert run.returncode == 0, diagnostics
    events = run.events
    assert not [e for e in events if e["type"] == "error"], diagnostics

    # An MCP server that cannot connect is dropped silently: the tool call itself is the evidence.
    tool_uses = run.tool_uses()
    assert [(t["tool"], t["state"]["status"]) for t in tool_uses] == [(TOOL, "completed")], diagnostics
    assert token in tool_uses[0]["state"]["input"]["source"], diagnostics
    result = json.loads(tool_uses[0]["state"]["output"])  # the executor's JobResult
    assert result["exit_code"] == 0, diagnostics
    printed_host, printed_token = result["stdout"].split()
    assert printed_token == token, diagnostics
    assert printed_host in executor_hosts, (
        f"the code printed hostname {printed_host!r}, which is no executor's ({executor_hosts})" + diagnostics
    )
    assert printed_host != hostname(workspace), "the code ran in the workspace" + diagnostics

    reported = [text for text in run.texts() if text.startswith("Executor said:")]
    assert reported and token in reported[-1] and printed_host in reported[-1], (
        "OpenCode did not report the executor's result" + diagnostics
    )
