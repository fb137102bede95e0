"""The generated opencode.json: OpenCode's documented shape, pointing at the model and the executors."""

from __future__ import annotations

import json

import pytest

from tests.support.program import STACKS


def workspace_env(declared) -> dict[str, str]:
    workspace = next(c for c in declared.containers if c.inputs["name"].endswith("-workspace"))
    return dict(env.split("=", 1) for env in workspace.inputs["envs"])


def generated_config(declared) -> dict:
    return json.loads(workspace_env(declared)["OPENCODE_CONFIG_CONTENT"])


@pytest.mark.parametrize("stack", STACKS)
def test_provider_points_at_the_model_through_the_openai_compatible_sdk(declared_stacks, stack):
    config = generated_config(declared_stacks[stack])
    provider_id, model_id = config["model"].split("/", 1)
    provider = config["provider"][provider_id]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert model_id in provider["models"]
    base_url = provider["options"]["baseURL"]
    if stack == "dev":
        assert base_url == "http://host.docker.internal:1234/v1"  # the external endpoint, as configured
    else:
        model = next(c for c in declared_stacks[stack].containers if c.inputs["name"].endswith("-model"))
        assert base_url == f"http://{model.inputs['name']}:8000/v1"
        assert model_id == ("qwen3-4b-instruct-2507")


@pytest.mark.parametrize("stack", STACKS)
def test_executor_is_a_remote_mcp_server_behind_the_token(declared_stacks, stack):
    declared = declared_stacks[stack]
    mcp = generated_config(declared)["mcp"]["executor"]
    assert mcp["type"] == "remote" and mcp["enabled"] is True
    assert mcp["url"] == "http://executor:8080/mcp"
    executors = [c for c in declared.containers if c.inputs["name"].split("-")[-2] == "executor"]
    for executor in executors:
        aliases = executor.inputs["networksAdvanced"][0]["aliases"]
        assert "executor" in aliases, "the MCP URL's host is the executors' shared alias"
    assert mcp["headers"]["Authorization"] == "Bearer {env:EXECUTOR_TOKEN}"


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_is_written_into_the_config(declared_stacks, stack):
    env = workspace_env(declared_stacks[stack])
    content = env["OPENCODE_CONFIG_CONTENT"]
    for key in ("EXECUTOR_TOKEN", "MODEL_API_KEY", "OPENCODE_SERVER_PASSWORD"):
        if env.get(key):
            assert env[key] not in content, f"{key}'s value appears in opencode.json"
    assert generated_config(declared_stacks[stack])["provider"]["sandbox"]["options"]["apiKey"] == "{env:MODEL_API_KEY}"


@pytest.mark.parametrize("stack", STACKS)
def test_opencode_phones_nowhere_home(declared_stacks, stack):
    config = generated_config(declared_stacks[stack])
    env = workspace_env(declared_stacks[stack])
    assert config["autoupdate"] is False and config["share"] == "disabled"
    assert env["OPENCODE_DISABLE_AUTOUPDATE"] == env["OPENCODE_DISABLE_MODELS_FETCH"] == "1"


@pytest.fixture(scope="module")
def opencode(tmp_path_factory):
    from tests.support.opencode_binary import OpencodeBinaryError, opencode_binary

    try:
        return opencode_binary()
    except OpencodeBinaryError as exc:
        from tests.support.engine import in_ci

        if in_ci():
            raise
        pytest.skip(f"the real OpenCode binary is unavailable: {exc}")


@pytest.mark.parametrize("stack", STACKS)
def test_the_real_opencode_accepts_the_generated_config(declared_stacks, stack, opencode, tmp_path):
    """OpenCode itself validates OPENCODE_CONFIG_CONTENT: the resolved config must keep every key we set."""
    import subprocess

    env = workspace_env(declared_stacks[stack])
    run_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OPENCODE_CONFIG_CONTENT": env["OPENCODE_CONFIG_CONTENT"],
               "MODEL_API_KEY": "k", "EXECUTOR_TOKEN": "t", "OPENCODE_DISABLE_AUTOUPDATE": "1",
               "OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_LSP_DOWNLOAD": "1"}
    result = subprocess.run([str(opencode), "debug", "config"], env=run_env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert "Configuration is invalid" not in result.stdout + result.stderr, result.stdout + result.stderr
    resolved = json.loads(result.stdout)
    expected = generated_config(declared_stacks[stack])
    assert resolved["model"] == expected["model"]
    assert resolved["provider"]["sandbox"]["options"]["baseURL"] == expected["provider"]["sandbox"]["options"]["baseURL"]
    assert resolved["mcp"]["executor"]["url"] == expected["mcp"]["executor"]["url"]
    assert resolved["share"] == "disabled" and resolved["autoupdate"] is False
