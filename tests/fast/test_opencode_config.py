"""The generated opencode.json: OpenCode's documented shape, pointing at the model and the executors.

(That the real OpenCode takes it: tests/host/test_real_opencode_accepts_the_generated_config.py.)
"""

from __future__ import annotations

import json

import pytest

from components.opencode_config import MODEL_API_KEY_PLACEHOLDER
from harness.program import STACKS


def workspace_env(declared) -> dict[str, str]:
    workspace = declared.container("workspace")[0]
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
    # In-stack or external, the workspace reaches the model through the model gateway (which adds the key).
    gateway = declared_stacks[stack].container("model-gateway")[0]
    assert base_url == f"http://{gateway.inputs['name']}:8000/v1"
    if stack != "dev":
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
    for key in ("EXECUTOR_TOKEN", "OPENCODE_SERVER_PASSWORD"):
        if env.get(key):
            assert env[key] not in content, f"{key}'s value appears in opencode.json"
    # No key from the environment: a fixed placeholder, which the model gateway replaces.
    assert "MODEL_API_KEY" not in env
    assert generated_config(declared_stacks[stack])["provider"]["sandbox"]["options"]["apiKey"] == (
        MODEL_API_KEY_PLACEHOLDER
    )


@pytest.mark.parametrize("stack", STACKS)
def test_opencode_phones_nowhere_home(declared_stacks, stack):
    config = generated_config(declared_stacks[stack])
    env = workspace_env(declared_stacks[stack])
    assert config["autoupdate"] is False and config["share"] == "disabled"
    assert env["OPENCODE_DISABLE_AUTOUPDATE"] == env["OPENCODE_DISABLE_MODELS_FETCH"] == "1"


# --- the workspace lockdown ------------------------------------------------------------------

ALLOWED_TOOLS = {"read", "glob", "grep", "list", "todowrite", "edit"}


def last_rule(permission: dict, tool: str, pattern: str = "*") -> str:
    """OpenCode's evaluation: rules in order, the last whose permission and pattern match wins."""
    from fnmatch import fnmatchcase

    action = None
    for key, rule in permission.items():
        if not fnmatchcase(tool, key):
            continue
        rules = rule if isinstance(rule, dict) else {"*": rule}
        for rule_pattern, rule_action in rules.items():
            if fnmatchcase(pattern, rule_pattern):
                action = rule_action
    return action


@pytest.mark.parametrize("stack", STACKS)
def test_everything_is_denied_first_and_only_file_and_executor_tools_allowed(declared_stacks, stack):
    permission = generated_config(declared_stacks[stack])["permission"]
    assert next(iter(permission.items())) == ("*", "deny"), "the deny-all rule must come first (last match wins)"
    for tool in (
        "bash",
        "webfetch",
        "websearch",
        "task",
        "external_directory",
        "lsp",
        "skill",
        "question",
        "codesearch",
        "some_future_tool",
    ):
        assert last_rule(permission, tool) == "deny", tool
    for tool in ALLOWED_TOOLS:
        assert last_rule(permission, tool) == "allow", tool
    assert last_rule(permission, "executor_run_code") == "allow"  # the default approval
    allowed = {key for key, rule in permission.items() if rule != "deny"}
    assert allowed == ALLOWED_TOOLS | {"executor_*"}, "no other tool may be allowed"


@pytest.mark.parametrize("stack", STACKS)
def test_edits_of_git_internals_and_opencode_config_are_denied(declared_stacks, stack):
    permission = generated_config(declared_stacks[stack])["permission"]
    for path in (
        ".git/config",
        ".git/hooks/pre-commit",
        "sub/.git/hooks/post-checkout",
        ".opencode/tools/evil.js",
        ".opencode/plugins/evil.js",
        "opencode.json",
        "opencode.jsonc",
        "pkg/opencode.json",
        ".opencode-sandbox/data/opencode/opencode.db",
    ):
        assert last_rule(permission, "edit", path) == "deny", path
    for path in ("src/main.py", "README.md", ".gitignore", "docs/opencode.md"):
        assert last_rule(permission, "edit", path) == "allow", path


@pytest.mark.parametrize("stack", STACKS)
def test_language_servers_and_formatters_are_off(declared_stacks, stack):
    config = generated_config(declared_stacks[stack])
    assert config["lsp"] is False and config["formatter"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_the_lockdown_environment(declared_stacks, stack):
    env = workspace_env(declared_stacks[stack])
    for key in (
        "OPENCODE_DISABLE_PROJECT_CONFIG",
        "OPENCODE_DISABLE_AUTOUPDATE",
        "OPENCODE_DISABLE_MODELS_FETCH",
        "OPENCODE_DISABLE_LSP_DOWNLOAD",
        "OPENCODE_DISABLE_EXTERNAL_SKILLS",
    ):
        assert env.get(key) == "1", key
    assert "OPENCODE_EXPERIMENTAL" not in env and "OPENCODE_PURE" not in env
    # OpenCode's global config directory is the image's read-only one (with the secret-stripping plugin).
    assert env["XDG_CONFIG_HOME"] == "/etc/opencode-sandbox/xdg"


@pytest.mark.parametrize("stack", STACKS)
def test_the_project_opencode_directory_is_masked(declared_stacks, stack):
    workspace = declared_stacks[stack].container("workspace")[0]
    tmpfs = workspace.inputs.get("tmpfs") or {}
    assert "/workspace/.opencode" in tmpfs, "OpenCode would import the project's .opencode plugins"
    options = tmpfs["/workspace/.opencode"].split(",")
    assert "mode=0555" in options and not any(o.startswith("uid=") for o in options), options


@pytest.mark.usefixtures("on_developer_machine")
def test_executor_approval_ask_makes_executor_calls_ask():
    import yaml

    from harness.program import run_program, stack_config

    workspace = yaml.safe_load(stack_config("ci")["opencode-sandbox:workspace"])
    declared = run_program("ci", set_config={"workspace": {**workspace, "executor_approval": "ask"}})
    permission = generated_config(declared)["permission"]
    assert last_rule(permission, "executor_run_code") == "ask"
    assert last_rule(permission, "bash") == "deny"


@pytest.mark.usefixtures("on_developer_machine")
def test_executor_approval_is_validated():
    import yaml

    from harness.program import run_program, stack_config
    from stacks.loader import SettingsError

    workspace = yaml.safe_load(stack_config("ci")["opencode-sandbox:workspace"])
    with pytest.raises(SettingsError) as caught:
        run_program("ci", set_config={"workspace": {**workspace, "executor_approval": "sometimes"}})
    message = str(caught.value)
    assert "opencode-sandbox:workspace.executor_approval" in message and "'sometimes'" in message, message
    assert "Fix:" in message and "'allow'" in message and "'ask'" in message, message


@pytest.mark.usefixtures("on_developer_machine")
def test_every_workspace_variable_holding_a_secret_is_stripped_from_user_shells():
    """The image's plugin names the variables it removes; the program decides which hold secrets."""
    import re

    import yaml

    from components.opencode_config import MCP_SECRET_ENV_PREFIX
    from harness.program import run_program, stack_config
    from sandbox_model.paths import IMAGES_DIR

    mcp_secrets = {"docs_token": "mcp-" + "m" * 30, "other_key": "mcp2-" + "n" * 30}
    secrets = {
        "web_password": "pw-" + "p" * 30,
        "executor_token": "tok-" + "t" * 40,
        "model_api_key": "key-" + "k" * 30,
    }
    workspace = yaml.safe_load(stack_config("ci")["opencode-sandbox:workspace"])
    servers = {
        "docs": {
            "url": "https://mcp.example.com/mcp",
            "headers": {"Authorization": "Bearer {secret:docs_token}", "X-Key": "{secret:other_key}"},
        }
    }
    env = workspace_env(
        run_program(
            "ci",
            set_config={"workspace": {**workspace, "mcp_servers": servers}},
            secrets={**secrets, "mcp_secrets": json.dumps(mcp_secrets)},
        )
    )
    values = [*secrets.values(), *mcp_secrets.values()]
    holding_a_secret = {key for key, value in env.items() if any(secret in value for secret in values)}
    plugin = (IMAGES_DIR / "workspace" / "opencode-config" / "plugins" / "strip-secrets.js").read_text()
    stripped = set(re.findall(r'"([A-Z_]+)"', re.search(r"const SECRETS = \[(.*?)\];", plugin).group(1)))
    prefixes = set(re.findall(r'"([A-Z_]+)"', re.search(r"const SECRET_PREFIXES = \[(.*?)\];", plugin).group(1)))
    assert prefixes == {MCP_SECRET_ENV_PREFIX}, "the plugin strips the MCP header secrets by the program's prefix"
    by_prefix = {key for key in env if any(key.startswith(prefix) for prefix in prefixes)}
    assert by_prefix == {f"{MCP_SECRET_ENV_PREFIX}DOCS_TOKEN", f"{MCP_SECRET_ENV_PREFIX}OTHER_KEY"}
    assert holding_a_secret and holding_a_secret <= stripped | by_prefix
    # And the plugin names no variable the workspace does not have (the model key, which it never holds).
    assert stripped <= set(env), f"the plugin strips variables the workspace has no more: {stripped - set(env)}"
    assert not any(secrets["model_api_key"] in value for value in env.values())
