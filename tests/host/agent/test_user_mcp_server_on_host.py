"""The real OpenCode 1.18.34 with a generated config declaring a user's MCP server, on this machine:
it reaches the server only through HTTP_PROXY (the server's name resolves nowhere) and sends the
header secret substituted from its environment (the server refuses anything else)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
from pathlib import Path

from components.opencode_config import (
    LOCKDOWN_ENV,
    MCP_SECRET_ENV_PREFIX,
    McpServerConfig,
    OpenCodeConfigArgs,
    opencode_config_json,
)
from tests.support.mcp_double import SOURCE

UNRESOLVABLE = "user-mcp.invalid"


class ForwardProxy:
    """A plain-HTTP forward proxy that records request lines and sends every request to 127.0.0.1:<its port>."""

    def __init__(self):
        self.lines: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _handle(self, client):
        head = b""
        while b"\r\n" not in head:
            data = client.recv(4096)
            if not data:
                return
            head += data
        line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        self.lines.append(line)
        target = line.split()[1]
        if not target.startswith(f"http://{UNRESOLVABLE}:"):
            client.close()  # anything else (a registry) is refused
            return
        port = int(target.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        upstream = socket.create_connection(("127.0.0.1", port))
        upstream.sendall(head)  # the double ignores the absolute form of the target
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self._pipe(client, upstream)

    def stop(self):
        self.listener.close()


def test_opencode_reaches_a_declared_server_through_the_proxy_with_the_header_secret(tmp_path: Path):
    from tests.support.opencode_binary import opencode_binary_or_skip

    binary = opencode_binary_or_skip()
    token, marker = f"tok-{secrets.token_hex(8)}", f"marker-{secrets.token_hex(4)}"
    port = socket.create_server(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    double = subprocess.Popen(
        [sys.executable, "-c", SOURCE],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={
            "MCP_DOUBLE_TOKEN": token,
            "MCP_DOUBLE_MARKER": marker,
            "MCP_DOUBLE_PORTS": str(number),
            "PATH": "/usr/bin:/bin",
        },
    )
    proxy = ForwardProxy()
    try:
        assert double.stdout.readline().strip() == b"ready"
        config = opencode_config_json(
            OpenCodeConfigArgs(
                model_base_url="http://127.0.0.1:9/v1",
                model_id="m",
                executor_mcp_url="http://127.0.0.1:9/mcp",
                mcp_servers={
                    "mine": McpServerConfig(
                        url=f"http://{UNRESOLVABLE}:{number}/mcp",
                        headers={"Authorization": "Bearer {secret:mine_token}"},
                    )
                },
            )
        )
        assert token not in config
        home = tmp_path / "home"
        home.mkdir()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "OPENCODE_CONFIG_CONTENT": config,
            "EXECUTOR_TOKEN": "unused",
            f"{MCP_SECRET_ENV_PREFIX}MINE_TOKEN": token,
            **LOCKDOWN_ENV,
            **{key: proxy.url for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")},
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        result = subprocess.run(
            [str(binary), "mcp", "list"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        output = result.stdout + result.stderr
        mine = [line for line in output.splitlines() if " mine" in line]
        assert mine and "connected" in mine[0] and "failed" not in mine[0], output
        assert any(line.startswith(f"POST http://{UNRESOLVABLE}:{number}/mcp ") for line in proxy.lines), proxy.lines
    finally:
        proxy.stop()
        double.terminate()
        double.wait(timeout=10)
