"""The real OpenCode, configured as the workspace is, reaches the model double only through the gateway.

On the host, no Docker: the model double demands the stack's key; OpenCode gets the generated
``opencode.json`` (its provider pointed at the gateway, with the placeholder as its key) and an
environment without any model key; the gateway adds the key. This proves the gateway's framing
(one request per connection, ``Connection: close``, the streamed response relayed as it comes)
works with OpenCode's own client, before any container exists.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess

import pytest

from components.opencode_config import LOCKDOWN_ENV, MODEL_API_KEY_PLACEHOLDER, OpenCodeConfigArgs, opencode_config
from tests.support.model_processes import DOUBLE_MODEL, DoubleProcess, GatewayProcess

FIXED_TEXT = "This is the model double: a scripted test stand-in, not a model."
OPENCODE_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def opencode():
    from tests.support.opencode_binary import opencode_binary_or_skip

    return opencode_binary_or_skip()


@pytest.fixture
def double():
    double = DoubleProcess(api_key=f"model-key-{secrets.token_hex(8)}")
    yield double
    double.stop()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_opencode_gets_its_answer_streamed_through_the_gateway_with_no_key_of_its_own(opencode, double, tmp_path):
    key = double.api_key
    gateway = GatewayProcess(double.base_url, key)
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    config = opencode_config(
        OpenCodeConfigArgs(
            model_base_url=gateway.base_url,
            model_id=DOUBLE_MODEL,
            # No executor here: an MCP server that cannot connect is dropped, and this turn needs none.
            executor_mcp_url=f"http://127.0.0.1:{closed_port()}/mcp",
        )
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "EXECUTOR_TOKEN": "unused",
        "OPENCODE_CONFIG_CONTENT": json.dumps(config),
        **LOCKDOWN_ENV,
    }
    try:
        run = subprocess.run(
            [str(opencode), "run", "--format", "json", "Say something."],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=OPENCODE_TIMEOUT_S,
        )
    finally:
        gateway.stop()
        double.stop()
    double_log = double.requests()
    chats = [r for r in double_log if r["path"] == "/v1/chat/completions"]
    diagnostics = (
        f"\nexit {run.returncode}\ngateway: {gateway.requests()}\ndouble: {double_log}"
        f"\nstdout: {run.stdout[-2000:]}\nstderr: {run.stderr[-2000:]}"
    )
    assert (
        key not in json.dumps(env) and config["provider"]["sandbox"]["options"]["apiKey"] == MODEL_API_KEY_PLACEHOLDER
    )
    assert chats and all(r["status"] == 200 for r in chats), "the double refused a request (401: no key)" + diagnostics
    assert any(r.get("stream") for r in chats), "OpenCode never streamed" + diagnostics
    forwarded = [r for r in gateway.requests() if r["path"] == "/v1/chat/completions"]
    assert forwarded and all(r["status"] == 200 for r in forwarded), diagnostics
    assert run.returncode == 0, diagnostics
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    texts = [e["part"]["text"] for e in events if e["type"] == "text"]
    assert FIXED_TEXT in texts, diagnostics
