"""The real OpenCode agent, driven by the model double, calls an MCP executor: on the host, no Docker.

This proves the double's script works with OpenCode 1.18.34 before any container
exists: OpenCode talks to the double through ``@ai-sdk/openai-compatible`` with the
API key from the environment, the double answers ``MARKER=<token>`` with a call to
``executor_run_code``, OpenCode calls the MCP server's ``run_code`` tool (streamable
HTTP, bearer token from the environment), and the double turns the tool result into
the final ``Executor said: ...`` text. Nothing here needs the internet once the
binary is cached (see tests/support/opencode_binary.py).
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.responses import PlainTextResponse

from tests.support.images import IMAGES_DIR
from tests.support.opencode_binary import opencode_binary

DOUBLE_SCRIPT = IMAGES_DIR / "model-double" / "model_double.py"
MODEL = "qwen3-4b-instruct-2507"
PROVIDER = "model-double"
OPENCODE_TIMEOUT_SECONDS = 120
STARTUP_TIMEOUT_SECONDS = 20


class DoubleProcess:
    """The double run as the image runs it (its own script, a subprocess), on 127.0.0.1 and a free port."""

    def __init__(self, api_key: str):
        self.api_key = api_key
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "MODEL_DOUBLE_HOST": "127.0.0.1",
            "MODEL_DOUBLE_PORT": "0",  # the startup log line reports the port it got
            "MODEL_DOUBLE_MODEL": MODEL,
            "MODEL_DOUBLE_API_KEY": api_key,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-B", str(DOUBLE_SCRIPT)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        first_line: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(first_line,), daemon=True)
        self._reader.start()
        try:
            startup = json.loads(first_line.get(timeout=STARTUP_TIMEOUT_SECONDS))
        except (queue.Empty, json.JSONDecodeError):
            self.stop()
            raise RuntimeError(f"the model double did not start:\n{''.join(self.lines)}") from None
        self.base_url = f"http://127.0.0.1:{startup['port']}/v1"

    def _read(self, first_line: queue.Queue) -> None:
        for line in self.process.stdout:
            if not self.lines:
                first_line.put(line)
            self.lines.append(line)

    def stop(self) -> None:
        """Stop the server and wait until all its log lines are read."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)

    def requests(self) -> list[dict]:
        """The per-request log records (the startup line excluded)."""
        records = [json.loads(line) for line in self.lines if line.startswith("{")]
        return [r for r in records if "path" in r]


@dataclass
class ExecutorMcp:
    """A tiny MCP server whose ``run_code`` tool really runs Python, behind a bearer token."""

    token: str
    calls: list[dict] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    url: str = ""

    def build_app(self):
        server = MCPServer("executor")

        @server.tool()
        def run_code(language: str, source: str) -> str:
            """Run source code and return what it printed."""
            self.calls.append({"language": language, "source": source})
            if language != "python":
                raise ValueError(f"only python is supported, not {language!r}")
            result = subprocess.run([sys.executable, "-I", "-c", source], capture_output=True, text=True, timeout=30)
            return result.stdout + result.stderr

        return self._require_bearer(server.streamable_http_app())

    def _require_bearer(self, app):
        expected = f"Bearer {self.token}".encode()

        async def guarded(scope, receive, send):
            if scope["type"] == "http":
                given = dict(scope["headers"]).get(b"authorization", b"")
                if given != expected:
                    self.refused.append(given.decode(errors="replace"))
                    await PlainTextResponse("missing or wrong bearer token", status_code=401)(scope, receive, send)
                    return
            await app(scope, receive, send)

        return guarded


@pytest.fixture
def model_double():
    double = DoubleProcess(api_key=f"model-key-{secrets.token_hex(8)}")
    yield double
    double.stop()


@pytest.fixture
def executor_mcp():
    executor = ExecutorMcp(token=f"executor-token-{secrets.token_hex(8)}")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    executor.url = f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
    config = uvicorn.Config(executor.build_app(), log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    for _ in range(STARTUP_TIMEOUT_SECONDS * 20):
        if server.started or not thread.is_alive():
            break
        time.sleep(0.05)
    assert server.started, "the executor MCP server did not start"
    yield executor
    server.should_exit = True
    thread.join(timeout=10)
    listener.close()


def opencode_config(double_url: str, mcp_url: str) -> dict:
    """The OpenCode config the workspace gets: a provider for the double, the executor over MCP."""
    return {
        "provider": {
            PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Model double (test double)",
                "options": {"baseURL": double_url, "apiKey": "{env:MODEL_API_KEY}"},
                "models": {MODEL: {"name": MODEL}},
            }
        },
        "model": f"{PROVIDER}/{MODEL}",
        "mcp": {
            "executor": {
                "type": "remote",
                "url": mcp_url,
                "enabled": True,
                "headers": {"Authorization": "Bearer {env:EXECUTOR_TOKEN}"},
            }
        },
    }


def test_opencode_runs_the_marker_through_the_executor(tmp_path: Path, model_double, executor_mcp):
    binary = opencode_binary()
    token = f"e2e-{secrets.token_hex(6)}"
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),  # keeps OpenCode's config, data and cache away from the user's
        "LANG": "C.UTF-8",
        "MODEL_API_KEY": model_double.api_key,
        "EXECUTOR_TOKEN": executor_mcp.token,
        "OPENCODE_CONFIG_CONTENT": json.dumps(opencode_config(model_double.base_url, executor_mcp.url)),
        # No internet: no models.dev catalogue, no self-update, no language-server downloads.
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    }
    try:
        run = subprocess.run(
            [str(binary), "run", "--print-logs", "--format", "json", f"Run the executor check. MARKER={token}"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=OPENCODE_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        model_double.stop()
        pytest.fail(
            f"opencode run took longer than {OPENCODE_TIMEOUT_SECONDS}s; double saw {model_double.requests()}\n"
            # TimeoutExpired carries bytes whatever text= says.
            f"stderr tail:\n{(exc.stderr or b'').decode(errors='replace')[-3000:]}"
        )
    model_double.stop()
    double_requests = model_double.requests()
    diagnostics = (
        f"\nexit code: {run.returncode}\ndouble requests: {double_requests}\nexecutor calls: {executor_mcp.calls}"
        f"\nexecutor refused: {executor_mcp.refused}\nstdout:\n{run.stdout[-3000:]}\nstderr tail:\n{run.stderr[-3000:]}"
    )

    chat_requests = [r for r in double_requests if r["path"] == "/v1/chat/completions"]
    assert chat_requests, "OpenCode never called the double" + diagnostics
    assert all(r["status"] == 200 for r in chat_requests), (
        "the double refused a request (401 = the API key was not wired)" + diagnostics
    )
    branches = [r["branch"] for r in chat_requests]
    assert "executor_tool_missing" not in branches, "OpenCode offered no executor_run_code tool" + diagnostics
    assert branches.count("tool_call") == 1 and branches[-1] == "tool_result", diagnostics

    expected_output = f"{socket.gethostname()} {token}"
    assert executor_mcp.refused == [], "OpenCode reached the executor without the bearer token" + diagnostics
    assert [c["language"] for c in executor_mcp.calls] == ["python"], diagnostics
    assert token in executor_mcp.calls[0]["source"], diagnostics

    assert run.returncode == 0, diagnostics
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert not [e for e in events if e["type"] == "error"], diagnostics
    tool_uses = [e["part"] for e in events if e["type"] == "tool_use"]
    assert [(t["tool"], t["state"]["status"]) for t in tool_uses] == [("executor_run_code", "completed")], diagnostics
    assert tool_uses[0]["state"]["output"].strip() == expected_output, diagnostics
    texts = [e["part"]["text"] for e in events if e["type"] == "text"]
    assert f"Executor said: {expected_output}" in texts, diagnostics
