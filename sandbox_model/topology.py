"""The stack's networks as data: which exist, which route nowhere, who joins them and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sandbox_model.roles import Role


@dataclass(frozen=True)
class NetworkDesign:
    """One of the stack's networks: whether it routes nowhere (internal), who joins it, and why."""

    internal: bool
    roles: frozenset[str]
    path: str


#: The stack's networks by purpose (their ``opencode-sandbox.network`` label), stated once:
#: components.networks creates them from this table (a stack only the ones it has a path for), the
#: policy pack and the runtime checks judge by it (INTENDED_NETWORK_PEERS, GATEWAY_ROLES) and the
#: README's networks table says the same. The workspace and the model server never meet: the model
#: gateway, which alone holds the model API key, stands between them.
NETWORKS: Mapping[str, NetworkDesign] = {
    "model": NetworkDesign(
        True,
        frozenset({Role.WORKSPACE.value, Role.MODEL_GATEWAY.value}),
        "the workspace → the model gateway: the OpenAI API, with no key",
    ),
    "model-upstream": NetworkDesign(
        True,
        frozenset({Role.MODEL_GATEWAY.value, Role.MODEL.value, Role.INGRESS_GATEWAY.value}),
        "the model gateway → the in-stack model server, with the key; the model-API ingress gateway "
        "too when `model.host_port` publishes the model. No such network with an external model",
    ),
    "executor": NetworkDesign(
        True, frozenset({Role.WORKSPACE.value, Role.EXECUTOR.value}), "the workspace → the executors, with the token"
    ),
    "ingress": NetworkDesign(
        True,
        frozenset({Role.INGRESS_GATEWAY.value, Role.WORKSPACE.value, Role.CONDUCTOR.value}),
        "the web ingress gateway → the workspace's web UI; the conductor (when enabled) → the workspace's "
        "OpenCode API, with the web password",
    ),
    "conductor": NetworkDesign(
        True,
        frozenset({Role.INGRESS_GATEWAY.value, Role.CONDUCTOR.value}),
        "the conductor's ingress gateway → the conductor's MCP endpoint, with its token. Only when `conductor.enabled`",
    ),
    "edge": NetworkDesign(
        False,
        frozenset({Role.INGRESS_GATEWAY.value}),
        "where the ingress gateways publish their ports, on 127.0.0.1 only (no masquerading)",
    ),
    "egress": NetworkDesign(
        True,
        frozenset({Role.WORKSPACE.value, Role.MODEL_GATEWAY.value, Role.EGRESS_GATEWAY.value}),
        "the workspace (when `egress.allow` names any, or `workspace.mcp_servers` declares any) and the model "
        "gateway (with an external model) → the egress gateway's proxy",
    ),
    "outside": NetworkDesign(False, frozenset({Role.EGRESS_GATEWAY.value}), "the egress gateway's route out"),
}

#: Roles whose job is to cross the boundary: the only ones on a non-internal network.
GATEWAY_ROLES = frozenset(role for net in NETWORKS.values() if not net.internal for role in net.roles)

#: Which roles may share a network: those that meet on one of NETWORKS. Anything else sharing one
#: is a design violation (the workspace and the model server, above all).
INTENDED_NETWORK_PEERS = frozenset(
    frozenset({first, second})
    for net in NETWORKS.values()
    for first in net.roles
    for second in net.roles
    if first != second
)

#: Options of every internal network. A bridge network's gateway address belongs to the host, and
#: traffic to the host is not forwarded, so Docker's internal-network rules (which drop forwarded
#: traffic only) never see it: on Docker 20.10 a container on an internal network reaches every
#: service listening on the host, on any of its addresses. Without an address on the bridge the
#: host has no route into the network and answers nothing from it; containers still reach each
#: other (the bridge switches their traffic) and the embedded DNS still answers.
INTERNAL_NETWORK_OPTIONS: Mapping[str, str] = {"com.docker.network.bridge.inhibit_ipv4": "true"}

#: The roles that hold or serve the model: executors must never share a network with them.
MODEL_ROLES = frozenset({Role.MODEL.value, Role.MODEL_GATEWAY.value})
