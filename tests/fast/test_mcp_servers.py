"""The user's remote MCP servers (workspace.mcp_servers): validated, merged into opencode.json with
their header secrets as ``{env:...}``, admitted by the egress gateway exactly, and nothing else.

(That the real OpenCode takes them: tests/host/test_real_opencode_accepts_the_mcp_servers.py.)
"""

from __future__ import annotations

import json

import pytest
import yaml

from components.opencode_config import MCP_SECRET_ENV_PREFIX
from tests.fast.test_opencode_config import generated_config, last_rule, workspace_env

TOKEN = "ghp-" + "s" * 36
OTHER = "other-" + "o" * 30
SERVERS = {
    "docs": {
        "url": "https://mcp.example.com/mcp",
        "headers": {"Authorization": "Bearer {secret:docs_token}", "X-Client": "opencode-sandbox"},
    },
    "tickets": {
        "url": "http://tickets.internal.example:8765/mcp",
        "approval": "ask",
        "headers": {"X-Api-Key": "{secret:tickets_key}"},
        "timeout_ms": 20000,
    },
}
MCP_SECRETS = {"docs_token": TOKEN, "tickets_key": OTHER}


def ci_workspace() -> dict:
    from harness.program import stack_config

    return yaml.safe_load(stack_config("ci")["opencode-sandbox:workspace"])


def declare(servers=SERVERS, mcp_secrets=MCP_SECRETS, **set_config):
    from harness.program import run_program

    secrets = {"mcp_secrets": json.dumps(mcp_secrets)} if mcp_secrets is not None else {}
    return run_program(
        "ci", set_config={"workspace": {**ci_workspace(), "mcp_servers": servers}, **set_config}, secrets=secrets
    )


def settings_error(servers, mcp_secrets=None, **kwargs) -> str:
    from stacks.loader import SettingsError

    with pytest.raises(SettingsError) as caught:
        declare(servers, mcp_secrets, **kwargs)
    return str(caught.value)


@pytest.fixture(scope="module")
def declared(developer_home):
    from harness.program import developer_machine

    with developer_machine(developer_home):
        return declare()


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "server",
    [
        {"type": "local", "command": ["npx", "-y", "some-mcp-server"]},
        {"command": ["python3", "server.py"]},
        {"url": "https://mcp.example.com/mcp", "environment": {"A": "b"}},
    ],
)
@pytest.mark.usefixtures("on_developer_machine")
def test_local_stdio_servers_are_refused_naming_the_alternative(server):
    message = settings_error({"tool": server})
    assert "opencode-sandbox:workspace.mcp_servers.tool" in message, message
    assert "local (stdio) MCP servers would run their code inside the workspace" in message, message
    assert "Fix: run the server as a remote MCP server" in message and "declare its URL" in message, message
    assert "executors" in message, message


@pytest.mark.parametrize(
    "name", ["executor", "external", "read", "list", "apply", "doom", "my_server", "Docs", "1st", "a" * 32, "x.y"]
)
@pytest.mark.usefixtures("on_developer_machine")
def test_names_that_would_clash_with_tool_names_are_refused(name):
    message = settings_error({name: {"url": "https://mcp.example.com/mcp"}})
    assert "opencode-sandbox:workspace.mcp_servers" in message and repr(name) in message, message
    assert "Fix:" in message, message


@pytest.mark.parametrize(
    "url",
    [
        "ftp://mcp.example.com/",
        "file:///etc/passwd",
        "mcp.example.com/mcp",
        "https://mcp.example.com/{env:EXECUTOR_TOKEN}",
        "https://u:p@mcp.example.com/",
        "https://[::1]/mcp",
        "https://bad host/",
    ],
)
@pytest.mark.usefixtures("on_developer_machine")
def test_only_plain_http_urls_are_accepted(url):
    message = settings_error({"docs": {"url": url}})
    assert "opencode-sandbox:workspace.mcp_servers.docs.url" in message and "Fix:" in message, message


@pytest.mark.parametrize("value", ["Bearer {env:EXECUTOR_TOKEN}", "{file:/proc/self/environ}", "x{secret:Bad}", "a\nb"])
@pytest.mark.usefixtures("on_developer_machine")
def test_header_values_cannot_pull_in_the_workspace_environment_or_files(value):
    message = settings_error({"docs": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": value}}})
    assert "opencode-sandbox:workspace.mcp_servers.docs.headers.Authorization" in message, message
    assert "{secret:<name>}" in message, message


@pytest.mark.usefixtures("on_developer_machine")
def test_a_header_naming_a_missing_secret_is_refused_without_showing_any_value():
    message = settings_error(SERVERS, {"docs_token": TOKEN})
    assert "{secret:tickets_key}" in message and "mcp_secrets.tickets_key" in message, message
    assert "pulumi config set --secret" in message and TOKEN not in message, message


@pytest.mark.usefixtures("on_developer_machine")
def test_mcp_secrets_must_be_a_pulumi_secret():
    from harness.program import run_program
    from stacks.loader import SettingsError

    with pytest.raises(SettingsError) as caught:
        run_program(
            "ci",
            set_config={"workspace": {**ci_workspace(), "mcp_servers": SERVERS}},
            plain_config={"mcp_secrets": json.dumps(MCP_SECRETS)},
        )
    message = str(caught.value)
    assert "opencode-sandbox:mcp_secrets is stored as plain text" in message and TOKEN not in message, message


# --- opencode.json ------------------------------------------------------------------------------


def test_servers_are_merged_beside_the_executor_with_env_substitution(declared):
    mcp = generated_config(declared)["mcp"]
    assert set(mcp) == {"executor", "docs", "tickets"}
    assert mcp["docs"] == {
        "type": "remote",
        "url": "https://mcp.example.com/mcp",
        "enabled": True,
        "oauth": False,
        "headers": {
            "Authorization": f"Bearer {{env:{MCP_SECRET_ENV_PREFIX}DOCS_TOKEN}}",
            "X-Client": "opencode-sandbox",
        },
    }
    assert mcp["tickets"]["headers"] == {"X-Api-Key": f"{{env:{MCP_SECRET_ENV_PREFIX}TICKETS_KEY}}"}
    assert mcp["tickets"]["timeout"] == 20000
    assert mcp["executor"]["headers"]["Authorization"] == "Bearer {env:EXECUTOR_TOKEN}"


def test_header_secrets_are_in_the_environment_as_secrets_never_in_the_config(declared):
    env = workspace_env(declared)
    content = env["OPENCODE_CONFIG_CONTENT"]
    assert TOKEN not in content and OTHER not in content
    assert env[f"{MCP_SECRET_ENV_PREFIX}DOCS_TOKEN"] == TOKEN
    assert env[f"{MCP_SECRET_ENV_PREFIX}TICKETS_KEY"] == OTHER
    workspace = declared.container("workspace")[0]
    assert "envs" in workspace.secret_inputs
    for resource in declared.resources:  # the values reach the workspace and nothing else
        if resource is not workspace:
            assert TOKEN not in json.dumps(resource.inputs), resource.name


@pytest.mark.usefixtures("on_developer_machine")
def test_only_the_secrets_a_header_uses_reach_the_workspace():
    env = workspace_env(declare(mcp_secrets={**MCP_SECRETS, "unused": "u" * 20}))
    assert f"{MCP_SECRET_ENV_PREFIX}UNUSED" not in env and not any("u" * 20 in v for v in env.values())


@pytest.mark.usefixtures("on_developer_machine")
def test_server_tools_follow_their_approval_and_cannot_reopen_denied_tools(declared):
    permission = generated_config(declared)["permission"]
    assert next(iter(permission.items())) == ("*", "deny")
    assert last_rule(permission, "docs_search") == "allow"
    assert last_rule(permission, "tickets_create") == "ask"
    assert last_rule(permission, "executor_run_code") == "allow"
    for tool in ("bash", "webfetch", "external_directory", "doom_loop", "docs", "undeclared_tool"):
        assert last_rule(permission, tool) == "deny", tool
    keys = list(permission)
    assert keys.index("docs_*") < keys.index("external_directory"), "the denials must come after the servers'"
    # Even a name the settings refuse could not re-allow a denied built-in tool.
    from components.opencode_config import permissions

    assert last_rule(permissions("allow", {"external": "allow"}), "external_directory") == "deny"


# --- egress -------------------------------------------------------------------------------------


def squid_conf(declared) -> str:
    gateway = declared.container("egress-gateway")
    assert gateway, "no egress gateway declared"
    return dict(env.split("=", 1) for env in gateway[0].inputs["envs"])["EGRESS_SQUID_CONF"]


def test_each_server_host_port_is_admitted_exactly(declared):
    from components.egress_proxy import render_squid_conf
    from sandbox_model.destinations import Destination

    conf = squid_conf(declared)
    expected = render_squid_conf(
        ["files.pythonhosted.org", "pypi.org"],
        [Destination("mcp.example.com", 443, True), Destination("tickets.internal.example", 8765, False)],
    )
    assert conf == expected
    # Not added to the name allowlist (which would admit every port 80/443 path of the name).
    allowlisted = next(line for line in conf.splitlines() if line.startswith("acl allowlisted dstdomain"))
    assert "mcp.example.com" not in allowlisted and "tickets" not in allowlisted


@pytest.mark.usefixtures("on_developer_machine")
def test_declaring_a_server_brings_up_the_egress_gateway_and_the_workspace_uses_it():
    from sandbox_model.destinations import PROXY_PORT

    declared = declare({"docs": {"url": "https://mcp.example.com/mcp"}}, mcp_secrets=None, egress="none")
    conf = squid_conf(declared)
    assert "acl allowlisted " not in conf and "acl dest_0_host dstdomain -n mcp.example.com" in conf
    gateway = declared.container("egress-gateway")[0]
    env = workspace_env(declared)
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert env[key] == f"http://{gateway.inputs['name']}:{PROXY_PORT}"
    assert "mcp.example.com" not in env["NO_PROXY"].split(",")
    workspace_nets = {n["name"] for n in declared.container("workspace")[0].inputs["networksAdvanced"]}
    gateway_nets = {n["name"] for n in gateway.inputs["networksAdvanced"]}
    assert len(workspace_nets & gateway_nets) == 1, (workspace_nets, gateway_nets)  # the internal egress network


@pytest.mark.usefixtures("on_developer_machine")
def test_without_servers_nothing_changes():
    declared = declare({}, mcp_secrets=None, egress="none")
    assert not declared.container("egress-gateway")
    env = workspace_env(declared)
    assert set(generated_config(declared)["mcp"]) == {"executor"} and "HTTPS_PROXY" not in env
    assert not any(key.startswith(MCP_SECRET_ENV_PREFIX) for key in env)
