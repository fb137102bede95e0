"""The stack's networks: exactly the paths the design needs, and no others.

Which networks there are, whether each is internal and which roles join it is stated once, in
``sandbox_model.topology.NETWORKS``:

- ``model``          (internal): workspace <-> model gateway (OpenAI API, no key in the workspace)
- ``model-upstream`` (internal, in-stack model only): model gateway <-> model server (and the
  model's ingress gateway, if published); the workspace is not on it
- ``executor``       (internal): workspace <-> executors; an executor can reach nothing but the workspace's calls
- ``ingress``        (internal): ingress gateway <-> workspace (the web UI); the conductor -> the
  workspace's OpenCode API (``conductor.enabled``)
- ``conductor``      (internal, ``conductor.enabled`` only): the conductor's ingress gateway <-> the
  conductor's MCP endpoint; the workspace is not on it
- ``edge``           (not internal): the ingress gateways' side where ports are published on 127.0.0.1;
  IP masquerading is off, so nothing on it is NATed to the outside
- ``egress``         (internal): the workspace (``egress.allow``) and the model gateway (an external
  model) <-> egress gateway (the audited proxy)
- ``outside``        (not internal): the egress gateway's route out

Internal networks have no route off the host, and a container only on internal
networks cannot publish a port: hence the gateways (catalog rule
``non-gateways-on-internal-networks-only``). Their bridges carry no host address
either, so the host itself is out of reach too (rule ``internal-networks-unaddressed``;
docs/network-boundary.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from sandbox_model.naming import LABEL_NETWORK, LABEL_STACK, component_type, docker_name
from sandbox_model.topology import INTERNAL_NETWORK_OPTIONS, NETWORKS

#: The edge network publishes on 127.0.0.1 and NATs nothing to the outside.
EDGE_OPTIONS = {
    "com.docker.network.bridge.enable_ip_masquerade": "false",
    "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1",
}


@dataclass(frozen=True)
class SandboxNetworksArgs:
    stack: str
    #: The purposes of the networks this stack has (stacks.plan.Plan.networks).
    purposes: tuple[str, ...]


class SandboxNetworks(pulumi.ComponentResource):
    """``networks[purpose]`` is the network of that purpose (a KeyError for one this stack has not)."""

    def __init__(self, name: str, args: SandboxNetworksArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(component_type("SandboxNetworks"), name, None, opts)
        self._stack = args.stack
        self._name = name
        self._networks = {
            purpose: self._network(purpose, options=EDGE_OPTIONS if purpose == "edge" else None)
            for purpose in args.purposes
        }
        self.register_outputs(
            {
                "names": {key: net.name for key, net in self.all().items()},
            }
        )

    def __getitem__(self, purpose: str) -> docker.Network:
        return self._networks[purpose]

    def all(self) -> dict[str, docker.Network]:
        """purpose -> network, for the networks this stack has."""
        return dict(self._networks)

    def _network(self, purpose: str, options: dict[str, str] | None = None) -> docker.Network:
        internal = NETWORKS[purpose].internal
        if internal:
            # No host address on the bridge: the host is unreachable from the network
            # (catalog rule internal-networks-unaddressed).
            options = {**(options or {}), **INTERNAL_NETWORK_OPTIONS}
        return docker.Network(
            f"{self._name}-{purpose}",
            # "-net": a network never shares its name with a container (the model server's is "-model").
            name=docker_name(self._stack, purpose, "net"),
            driver="bridge",
            internal=internal,
            options=options,
            labels=[
                docker.NetworkLabelArgs(label=LABEL_STACK, value=self._stack),
                docker.NetworkLabelArgs(label=LABEL_NETWORK, value=purpose),
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
