"""OpenCode's configuration (``opencode.json``), generated from the stack settings.

The workspace receives it as ``OPENCODE_CONFIG_CONTENT``, so nothing is written
to the read-only image. Secrets never appear in it: OpenCode substitutes
``{env:NAME}`` from the container's environment (the executor token). The model API key is not
even in that environment: the provider points at the model gateway (components.model_gateway),
which adds the key, and carries a fixed placeholder instead (:data:`MODEL_API_KEY_PLACEHOLDER`).

The config also locks the agent down (OpenCode 1.18.34 semantics): its ``permission``
starts with ``"*": "deny"`` and then allows only the file tools and the executor tools;
for each tool the *last* matching rule wins, and a tool whose last rule is a deny of
``*`` is not even offered to the model. So ``bash``, ``webfetch``, ``websearch``,
``task``, ``skill``, ``lsp``, ``question``, reading outside the project
(``external_directory``) and every tool not named here are denied, and ``edit`` (which
also governs ``write`` and patches) is denied for Git's internals and for OpenCode's own
configuration inside the project. :data:`LOCKDOWN_ENV` are the environment variables
that go with it (project config, auto-update, model-list fetches, LSP downloads and
external skills off).

The user's remote MCP servers (``workspace.mcp_servers``) join the executor's under ``mcp``, each
with ``<name>_*`` allowed or asked (its ``approval``) *before* the denials of the built-in tools, so
no server name can re-allow one. Their header secrets are ``{env:OPENCODE_SANDBOX_MCP_SECRET_<NAME>}``
(:func:`mcp_secret_env`): the values are in the workspace's environment only, and the image's
shell plugin strips every variable with that prefix from user shells.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from sandbox_model.destinations import EXECUTOR_MCP_NAME, MCP_SECRET_REFERENCE

PROVIDER_ID = "sandbox"
#: The provider's ``apiKey``: NOT a secret. OpenCode's openai-compatible provider sends
#: ``Authorization: Bearer <apiKey>``; the model gateway removes it and adds the stack's key, which
#: the workspace never holds. A fixed value keeps OpenCode from looking for a key anywhere else.
MODEL_API_KEY_PLACEHOLDER = "not-a-secret-the-model-gateway-adds-the-key"
EXECUTOR_TOKEN_ENV = "EXECUTOR_TOKEN"
#: The workspace variables holding ``mcp_secrets`` entries: ``<prefix><NAME>``. The shell plugin
#: (images/workspace/opencode-config/plugins/strip-secrets.js) strips every variable with it.
MCP_SECRET_ENV_PREFIX = "OPENCODE_SANDBOX_MCP_SECRET_"


def mcp_secret_env(name: str) -> str:
    """The workspace variable holding the ``mcp_secrets`` entry ``name`` (lower case: names map one to one)."""
    return MCP_SECRET_ENV_PREFIX + name.upper()


@dataclass(frozen=True)
class McpServerConfig:
    """One of the user's remote MCP servers, as opencode.json declares it (stacks.settings.McpServer)."""

    url: str
    #: Header -> value, where ``{secret:<name>}`` stands for an ``mcp_secrets`` entry.
    headers: Mapping[str, str] = field(default_factory=dict)
    approval: str = "allow"
    enabled: bool = True
    timeout_ms: int | None = None

    def opencode(self) -> dict:
        entry: dict = {
            "type": "remote",
            "url": self.url,
            "enabled": self.enabled,
            # No OAuth discovery: credentials come only from the declared headers.
            "oauth": False,
        }
        if self.headers:
            entry["headers"] = {
                header: MCP_SECRET_REFERENCE.sub(lambda m: f"{{env:{mcp_secret_env(m.group(1))}}}", value)
                for header, value in self.headers.items()
            }
        if self.timeout_ms is not None:
            entry["timeout"] = self.timeout_ms
        return entry


#: The tools the model is offered, besides the executor's (``executor_*``). ``write`` and
#: ``apply_patch`` are governed by the ``edit`` permission.
FILE_TOOLS = ("read", "glob", "grep", "list", "todowrite", "edit")
#: Denied by the leading ``"*": "deny"`` already; named again so the intent is explicit.
DENIED_TOOLS = (
    "bash",
    "task",
    "webfetch",
    "websearch",
    "codesearch",
    "external_directory",
    "lsp",
    "skill",
    "question",
    "doom_loop",
)
#: Paths (relative to the project) the model may not edit or write: Git's internals (hooks run
#: code) and OpenCode's own configuration in the project (tools and plugins it would import).
PROTECTED_EDIT_PATTERNS = (
    ".git",
    ".git/**",
    "**/.git/**",
    ".opencode",
    ".opencode/**",
    "**/.opencode/**",
    "opencode.json",
    "opencode.jsonc",
    "**/opencode.json",
    "**/opencode.jsonc",
    # the sessions the workspace keeps in the project (persist_sessions)
    ".opencode-sandbox",
    ".opencode-sandbox/**",
)
EXECUTOR_APPROVALS = ("allow", "ask")
#: The environment that goes with the config. Never OPENCODE_EXPERIMENTAL or OPENCODE_PURE.
LOCKDOWN_ENV = {
    "OPENCODE_DISABLE_PROJECT_CONFIG": "1",  # no project .opencode/ tools, plugins, opencode.json
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1",
}
#: XDG_CONFIG_HOME in the workspace: OpenCode's global config directory is ``<it>/opencode``, baked
#: read-only into the image (images/workspace/opencode-config: the secret-stripping plugin, and the
#: .gitignore and node_modules without which OpenCode would crash or run an npm install at start).
CONFIG_HOME = "/etc/opencode-sandbox/xdg"


@dataclass(frozen=True)
class OpenCodeConfigArgs:
    #: OpenAI-compatible base URL as the workspace reaches it: the model gateway's (ends in /v1).
    model_base_url: str
    model_id: str
    #: The executors' MCP endpoint (streamable HTTP) as the workspace reaches it.
    executor_mcp_url: str
    #: ``allow``: executor runs start at once; ``ask``: each waits for the user's approval.
    executor_approval: str = "allow"
    #: The user's remote MCP servers, by name (validated by stacks.settings).
    mcp_servers: Mapping[str, McpServerConfig] = field(default_factory=dict)

    def __post_init__(self):
        if self.executor_approval not in EXECUTOR_APPROVALS:
            raise ValueError(f"executor_approval must be one of {EXECUTOR_APPROVALS}, not {self.executor_approval!r}")
        for name, server in self.mcp_servers.items():
            if name == EXECUTOR_MCP_NAME or server.approval not in EXECUTOR_APPROVALS:
                raise ValueError(f"MCP server {name!r}: a reserved name or an approval not in {EXECUTOR_APPROVALS}")


def permissions(executor_approval: str, mcp_approvals: Mapping[str, str] | None = None) -> dict:
    """OpenCode's ``permission``: deny everything first, then allow (order matters: the last match wins)."""
    rules: dict = {"*": "deny"}
    for tool in FILE_TOOLS:
        rules[tool] = "allow"
    rules["edit"] = {"*": "allow", **{pattern: "deny" for pattern in PROTECTED_EDIT_PATTERNS}}
    # The user's servers before the denials below: a name such as `external` could not re-allow
    # external_directory even if settings validation let it through.
    for name, approval in (mcp_approvals or {}).items():
        rules[f"{name}_*"] = approval
    for tool in DENIED_TOOLS:
        rules[tool] = "deny"
    rules[f"{EXECUTOR_MCP_NAME}_*"] = executor_approval
    return rules


def opencode_config(args: OpenCodeConfigArgs) -> dict:
    return {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            PROVIDER_ID: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "opencode-sandbox model",
                "options": {
                    "baseURL": args.model_base_url,
                    "apiKey": MODEL_API_KEY_PLACEHOLDER,
                },
                "models": {args.model_id: {"name": args.model_id, "tool_call": True}},
            }
        },
        "model": f"{PROVIDER_ID}/{args.model_id}",
        "small_model": f"{PROVIDER_ID}/{args.model_id}",
        "mcp": {
            EXECUTOR_MCP_NAME: {
                "type": "remote",
                "url": args.executor_mcp_url,
                "enabled": True,
                "headers": {"Authorization": f"Bearer {{env:{EXECUTOR_TOKEN_ENV}}}"},
            },
            **{name: server.opencode() for name, server in args.mcp_servers.items()},
        },
        "permission": permissions(
            args.executor_approval, {name: server.approval for name, server in args.mcp_servers.items()}
        ),
        # No language servers or formatters: both would run programs in the workspace.
        "lsp": False,
        "formatter": False,
        # Nothing leaves the sandbox on OpenCode's own initiative.
        "autoupdate": False,
        "share": "disabled",
    }


def opencode_config_json(args: OpenCodeConfigArgs) -> str:
    # Not sort_keys: the order of permission rules is their meaning (the last match wins).
    return json.dumps(opencode_config(args), separators=(",", ":"))
