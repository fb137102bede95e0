"""OpenCode's configuration (``opencode.json``), generated from the stack settings.

The workspace receives it as ``OPENCODE_CONFIG_CONTENT``, so nothing is written
to the read-only image. Secrets never appear in it: OpenCode substitutes
``{env:NAME}`` from the container's environment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PROVIDER_ID = "sandbox"
EXECUTOR_MCP_NAME = "executor"
MODEL_API_KEY_ENV = "MODEL_API_KEY"
EXECUTOR_TOKEN_ENV = "EXECUTOR_TOKEN"


@dataclass(frozen=True)
class OpenCodeConfigArgs:
    #: OpenAI-compatible base URL as the workspace reaches it (ends in /v1).
    model_base_url: str
    model_id: str
    #: The executors' MCP endpoint (streamable HTTP) as the workspace reaches it.
    executor_mcp_url: str


def opencode_config(args: OpenCodeConfigArgs) -> dict:
    return {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            PROVIDER_ID: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "opencode-sandbox model",
                "options": {
                    "baseURL": args.model_base_url,
                    "apiKey": f"{{env:{MODEL_API_KEY_ENV}}}",
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
            }
        },
        # Nothing leaves the sandbox on OpenCode's own initiative.
        "autoupdate": False,
        "share": "disabled",
    }


def opencode_config_json(args: OpenCodeConfigArgs) -> str:
    return json.dumps(opencode_config(args), sort_keys=True, separators=(",", ":"))
