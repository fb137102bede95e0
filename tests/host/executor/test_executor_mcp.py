"""The run_code MCP tool over stateless streamable HTTP, with the SDK's own client against a real uvicorn."""

from __future__ import annotations

import json

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from .conftest import TOKEN, run_async


async def _with_client(url: str, work, *, mode: str = "legacy", token: str = TOKEN):
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60, trust_env=False) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client,
    ):
        return await work(client)


def call(live_server, work, **kwargs):
    return run_async(lambda: _with_client(live_server.url, work, **kwargs))


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_run_code_is_listed_with_its_schema(live_server, mode):
    async def list_tools(client):
        return (await client.list_tools()).tools

    tools = call(live_server, list_tools, mode=mode)
    assert [tool.name for tool in tools] == ["run_code"]
    schema = tools[0].input_schema
    assert set(schema["required"]) == {"language", "source"}
    assert set(schema["properties"]) == {"language", "source", "stdin", "timeout_s"}
    assert schema["properties"]["language"]["enum"] == ["python", "sh"]
    assert "python" in tools[0].description and "sh" in tools[0].description


def test_calling_run_code_returns_the_output(live_server):
    async def run(client):
        return await client.call_tool(
            "run_code", {"language": "python", "source": "import sys\nprint(sys.stdin.read()[::-1])", "stdin": "abc"}
        )

    result = call(live_server, run)
    assert result.is_error is False
    assert result.structured_content["stdout"] == "cba\n"
    assert result.structured_content["exit_code"] == 0
    assert json.loads(result.content[0].text)["stdout"] == "cba\n"  # what a model reads


def test_a_timeout_is_reported_in_the_result(live_server):
    async def run(client):
        return await client.call_tool("run_code", {"language": "sh", "source": "sleep 20", "timeout_s": 0.3})

    result = call(live_server, run)
    assert result.structured_content["timed_out"] is True


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"language": "sh", "source": "true", "timeout_s": 999}, "timeout_s"),
        ({"language": "ruby", "source": "puts 1"}, "language"),
        ({"language": "sh", "source": "#" * (256 * 1024 + 1)}, "EXECUTOR_MAX_SOURCE_BYTES"),
    ],
)
def test_bad_arguments_are_a_tool_error_and_run_nothing(live_server, arguments, message):
    async def run(client):
        return await client.call_tool("run_code", arguments)

    result = call(live_server, run)
    assert result.is_error is True
    assert message in result.content[0].text
    assert live_server.runner.jobs_run == 0


def test_the_endpoint_is_stateless(live_server):
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream"}
    response = httpx2.post(f"{live_server.url}/mcp", json=initialize, headers=headers, timeout=30, trust_env=False)
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers  # nothing pins a client to this container
    # A call without any session, as a second replica behind the same alias would receive it.
    call_tool = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "run_code", "arguments": {"language": "sh", "source": "echo replica"}},
    }
    answer = httpx2.post(
        f"{live_server.url}/mcp",
        json=call_tool,
        headers={**headers, "MCP-Protocol-Version": "2025-06-18"},
        timeout=30,
        trust_env=False,
    ).json()
    assert answer["result"]["structuredContent"]["stdout"] == "replica\n"
    # No server-to-client stream and no session to delete: both are 405, as the spec allows.
    for method in ("GET", "DELETE"):
        refused = httpx2.request(method, f"{live_server.url}/mcp", headers=headers, timeout=30, trust_env=False)
        assert refused.status_code == 405
        assert refused.headers["allow"] == "POST"


def test_the_mcp_client_gets_nowhere_without_the_token(live_server):
    async def run(client):
        return await client.call_tool("run_code", {"language": "sh", "source": "true"})

    # The SDK client turns the 401 (checked on the wire in the HTTP API tests) into an MCPError.
    with pytest.raises(ExceptionGroup) as refused:
        call(live_server, run, token="not-the-token-at-all-000000")
    assert refused.group_contains(MCPError, depth=None)
    assert live_server.runner.jobs_run == 0
