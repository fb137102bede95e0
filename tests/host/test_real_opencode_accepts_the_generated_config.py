"""The real OpenCode (its pinned binary, on this host) takes the generated opencode.json as it is.

(What the generated config says: tests/fast/test_opencode_config.py.)
"""

from __future__ import annotations

import json

import pytest

from harness.program import STACKS
from tests.fast.test_opencode_config import generated_config, workspace_env


@pytest.fixture(scope="module")
def opencode(tmp_path_factory):
    from tests.support.opencode_binary import opencode_binary_or_skip

    return opencode_binary_or_skip()


@pytest.mark.parametrize("stack", STACKS)
def test_the_real_opencode_accepts_the_generated_config(declared_stacks, stack, opencode, tmp_path):
    """OpenCode itself validates OPENCODE_CONFIG_CONTENT: the resolved config must keep every key we set."""
    import subprocess

    env = workspace_env(declared_stacks[stack])
    run_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "OPENCODE_CONFIG_CONTENT": env["OPENCODE_CONFIG_CONTENT"],
        "EXECUTOR_TOKEN": "t",
        **{k: v for k, v in env.items() if k.startswith("OPENCODE_DISABLE_")},
    }
    result = subprocess.run(
        [str(opencode), "debug", "config"], env=run_env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert "Configuration is invalid" not in result.stdout + result.stderr, result.stdout + result.stderr
    resolved = json.loads(result.stdout)
    expected = generated_config(declared_stacks[stack])
    assert resolved["model"] == expected["model"]
    assert (
        resolved["provider"]["sandbox"]["options"]["baseURL"] == expected["provider"]["sandbox"]["options"]["baseURL"]
    )
    assert resolved["mcp"]["executor"]["url"] == expected["mcp"]["executor"]["url"]
    assert resolved["share"] == "disabled" and resolved["autoupdate"] is False
    assert resolved["lsp"] is False and resolved["formatter"] is False
    # The rules survive resolution in order (OpenCode applies the last match).
    assert list(resolved["permission"].items()) == list(expected["permission"].items())
