"""The real OpenCode (its pinned binary, on this host) takes the user's MCP servers as the program merges them.

(The settings, the merged opencode.json and the egress: tests/fast/test_mcp_servers.py.)
"""

from __future__ import annotations

import json

from components.opencode_config import MCP_SECRET_ENV_PREFIX
from tests.fast.test_mcp_servers import declared  # noqa: F401 (the fixture, shared)
from tests.fast.test_opencode_config import generated_config, workspace_env


def test_the_real_opencode_accepts_the_servers(declared, tmp_path):  # noqa: F811 (the imported fixture)
    import subprocess

    from tests.support.opencode_binary import opencode_binary_or_skip

    opencode = opencode_binary_or_skip()
    env = workspace_env(declared)
    run_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "OPENCODE_CONFIG_CONTENT": env["OPENCODE_CONFIG_CONTENT"],
        "EXECUTOR_TOKEN": "t",
        f"{MCP_SECRET_ENV_PREFIX}DOCS_TOKEN": "resolved-docs",
        f"{MCP_SECRET_ENV_PREFIX}TICKETS_KEY": "resolved-tickets",
        **{k: v for k, v in env.items() if k.startswith("OPENCODE_DISABLE_")},
    }
    result = subprocess.run(
        [str(opencode), "debug", "config"], env=run_env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert "Configuration is invalid" not in result.stdout + result.stderr, result.stdout + result.stderr
    resolved = json.loads(result.stdout)
    # (`debug config` shows header values as ***: the live test proves the substitution.)
    assert set(resolved["mcp"]["docs"]["headers"]) == {"Authorization", "X-Client"}
    assert resolved["mcp"]["docs"]["url"] == "https://mcp.example.com/mcp"
    assert set(resolved["mcp"]["tickets"]["headers"]) == {"X-Api-Key"}
    assert resolved["mcp"]["docs"]["oauth"] is False and resolved["mcp"]["tickets"]["timeout"] == 20000
    assert list(resolved["permission"].items()) == list(generated_config(declared)["permission"].items())
