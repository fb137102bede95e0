"""The roles a container of the stack plays: its ``opencode-sandbox.role`` label."""

from __future__ import annotations

from enum import Enum


class Role(str, Enum):
    MODEL = "model"
    WORKSPACE = "workspace"
    EXECUTOR = "executor"
    INGRESS_GATEWAY = "ingress-gateway"
    EGRESS_GATEWAY = "egress-gateway"
    #: Holds the model API key and adds it to the workspace's model requests (images/model-gateway).
    MODEL_GATEWAY = "model-gateway"
    #: The MCP endpoint an outside agent delegates work through (images/conductor), when enabled.
    CONDUCTOR = "conductor"


ALL_ROLES = frozenset(role.value for role in Role)
