"""A user's remote MCP server on a deployed stack: the declared one answers through the egress gateway,
an undeclared one (another port, another name) gets the gateway's denial, and OpenCode calls its tool.

The test deploys its own stack (``ci-mcp``: the ci settings with ``egress: none``, its own ports, UIDs
and project directory, and one server in ``workspace.mcp_servers`` whose bearer token is a Pulumi
secret set with ``--secret --path``), so declaring the server alone must bring the egress gateway up.
The server is :mod:`tests.support.mcp_double`, in a container the test starts on the stack's
``outside`` network (where only the egress gateway is), from the stack's own executor image (it has
python3). Nothing here leaves this machine. Requests are made from inside the workspace (docker exec).
"""

from __future__ import annotations

import json
import secrets
import shlex
import time

import pytest

from components.egress_proxy import PAGE_NOT_ALLOWLISTED, PAGE_PORT_NOT_ALLOWED
from components.opencode_config import MCP_SECRET_ENV_PREFIX
from harness.pulumi_cli import PulumiWorkspace
from harness.stack_cleanup import remove_stack
from sandbox_model.naming import LABEL_STACK, docker_name
from tests.stack.runtime import container_env, container_host
from tests.stack.target import discover
from tests.support.mcp_double import SOURCE
from tests.support.requirements import require_toolchain

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

STACK = "ci-mcp"
DOUBLE = docker_name(STACK, "mcp-double")  # its name on the outside network: the declared host
UNDECLARED_ALIAS = "undeclared-mcp"  # the same server under a name nobody declared
PORT, OTHER_PORT = 8765, 8766
SERVER = "double"
TOKEN_ENV = f"{MCP_SECRET_ENV_PREFIX}DOUBLE_TOKEN"
STACK_CONFIG = {
    "workspace.web.port": "14296",
    "model.host_port": "18200",
    "conductor.host_port": "14297",
    "executors.uid_base": "22000",
    "workspace.project_dir": f"~/.cache/opencode-sandbox/{STACK}/project",
    "egress": "none",
    f"workspace.mcp_servers.{SERVER}.url": f"http://{DOUBLE}:{PORT}/mcp",
    f"workspace.mcp_servers.{SERVER}.headers.Authorization": "Bearer {secret:double_token}",
}


@pytest.fixture(scope="module")
def mcp_stack(tmp_path_factory, docker_api):
    require_toolchain("deploys a stack with the Pulumi CLI")
    token = f"mcp-token-{secrets.token_hex(12)}"
    marker = f"mcp-marker-{secrets.token_hex(6)}"
    root = tmp_path_factory.mktemp("mcp-stack")
    workspace = PulumiWorkspace(root / "pulumi", root / "home")
    remove_stack(docker_api, STACK)
    try:
        workspace.init_stack(STACK, settings_from="ci", set_config=STACK_CONFIG)
        workspace.run(
            "config", "set", "--stack", STACK, "--secret", "--path", "opencode-sandbox:mcp_secrets.double_token", token
        )
        workspace.run("up", "--yes", "--stack", STACK, "--skip-preview")
        stack = discover(docker_api, STACK, workspace)
        executor_image = docker_api.api.inspect_container(stack.containers["executor"][0])["Image"]
        outside = stack.networks["outside"]
        double = docker_api.containers.create(
            executor_image,
            name=DOUBLE,
            user="65534:65534",
            read_only=True,
            entrypoint=["python3", "-c", SOURCE],
            labels={LABEL_STACK: STACK},
            network=outside,
            environment={
                "MCP_DOUBLE_TOKEN": token,
                "MCP_DOUBLE_MARKER": marker,
                "MCP_DOUBLE_PORTS": f"{PORT},{OTHER_PORT}",
            },
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
        )
        docker_api.api.disconnect_container_from_network(double.id, outside)
        docker_api.api.connect_container_to_network(double.id, outside, aliases=[UNDECLARED_ALIAS])
        double.start()
        for _ in range(100):
            if b"ready" in double.logs(stdout=True, stderr=False):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the MCP double did not start: {double.logs().decode()[-2000:]}")
        yield stack, token, marker
        double.remove(force=True)  # before destroy: it holds the outside network
        workspace.run("destroy", "--yes", "--stack", STACK, "--skip-preview")
    finally:
        remove_stack(docker_api, STACK)


def from_workspace(stack, url: str, payload: dict, *, token: bool = True) -> tuple[str, str]:
    """POST ``payload`` to ``url`` with curl in the workspace (its own proxy environment and header secret)."""
    header = f'-H "Authorization: Bearer ${TOKEN_ENV}"' if token else ""
    result = container_host(stack.one("workspace")).run(
        f"curl -sS --max-time 20 {header} -H 'Content-Type: application/json' "
        f"-H 'Accept: application/json, text/event-stream' -d {shlex.quote(json.dumps(payload))} "
        f"-o /tmp/mcp-test-body -w '%{{http_code}}\\n' {shlex.quote(url)}; "
        "head -c 4000 /tmp/mcp-test-body; rm -f /tmp/mcp-test-body"
    )
    status, _, body = result.stdout.partition("\n")
    return status, body


def decisions(docker_api, stack, since: float) -> list[dict]:
    time.sleep(1)
    text = docker_api.containers.get(stack.one("egress-gateway")).logs(stdout=True, stderr=False, since=since).decode()
    return [json.loads(line) for line in text.splitlines()]


CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {"note": "n"}}}


def test_declaring_the_server_alone_brings_up_the_egress_gateway(mcp_stack, docker_api):
    stack, token, _ = mcp_stack
    assert stack.containers.get("egress-gateway"), "no egress gateway although a server is declared"
    env = container_env(docker_api, stack.one("workspace"))
    assert env[TOKEN_ENV] == token
    assert token not in env["OPENCODE_CONFIG_CONTENT"]
    assert json.loads(env["OPENCODE_CONFIG_CONTENT"])["mcp"][SERVER]["headers"] == {
        "Authorization": f"Bearer {{env:{TOKEN_ENV}}}"
    }
    conf = container_env(docker_api, stack.one("egress-gateway"))["EGRESS_SQUID_CONF"]
    assert "acl allowlisted " not in conf and f"dstdomain -n {DOUBLE}" in conf


def test_the_declared_server_answers_through_the_gateway(mcp_stack, docker_api):
    stack, _, marker = mcp_stack
    since = time.time()
    status, body = from_workspace(stack, f"http://{DOUBLE}:{PORT}/mcp", CALL)
    assert status == "200", body
    answer = json.loads(json.loads(body)["result"]["content"][0]["text"])
    assert answer == {"marker": marker, "port": PORT, "arguments": {"note": "n"}}
    entries = [e for e in decisions(docker_api, stack, since) if e["host"] == DOUBLE]
    assert entries and entries[-1]["decision"] == "allowed" and entries[-1]["port"] == str(PORT), entries


def test_the_workspace_has_no_direct_route_to_the_server(mcp_stack):
    stack, _, _ = mcp_stack
    result = container_host(stack.one("workspace")).run(
        f"curl -sS --noproxy '*' --max-time 5 -o /dev/null -w '%{{http_code}}' http://{DOUBLE}:{PORT}/mcp"
    )
    assert result.rc != 0 and result.stdout in ("", "000"), result.stdout


@pytest.mark.parametrize(
    "host, port, page",
    [
        (DOUBLE, OTHER_PORT, PAGE_PORT_NOT_ALLOWED),
        (UNDECLARED_ALIAS, PORT, PAGE_NOT_ALLOWLISTED),
    ],
)
def test_an_undeclared_server_gets_the_gateways_denial(mcp_stack, docker_api, host, port, page):
    stack, _, _ = mcp_stack
    since = time.time()
    status, body = from_workspace(stack, f"http://{host}:{port}/mcp", CALL)
    assert status == "403" and "opencode-sandbox egress:" in body and host in body, (status, body)
    entries = [e for e in decisions(docker_api, stack, since) if (e["host"], e["port"]) == (host, str(port))]
    assert entries and (entries[-1]["decision"], entries[-1]["error"], entries[-1]["server"]) == (
        "denied",
        page,
        "-",
    ), entries


def test_without_the_header_secret_the_server_refuses(mcp_stack):
    stack, _, _ = mcp_stack
    status, _ = from_workspace(stack, f"http://{DOUBLE}:{PORT}/mcp", CALL, token=False)
    assert status == "401"


def test_opencode_in_the_workspace_calls_the_declared_servers_tool(mcp_stack):
    from tests.support.agent_run import opencode_run, scripted

    stack, _, marker = mcp_stack
    note = f"note-{secrets.token_hex(4)}"
    run = opencode_run(stack.one("workspace"), scripted(f"{SERVER}_whoami", {"note": note}))
    assert run.returncode == 0, run.diagnostics
    uses = [(t["tool"], t["state"]["status"]) for t in run.tool_uses()]
    assert uses == [(f"{SERVER}_whoami", "completed")], run.diagnostics
    answer = json.loads(run.tool_uses()[0]["state"]["output"])
    assert answer == {"marker": marker, "port": PORT, "arguments": {"note": note}}, run.diagnostics
