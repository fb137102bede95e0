"""The stack's networks: exactly the paths the design needs, and no others.

- ``model``    (internal): workspace <-> model server (and the model's ingress gateway, if published)
- ``executor`` (internal): workspace <-> executors; an executor can reach nothing but the workspace's calls
- ``ingress``  (internal): ingress gateway <-> workspace (the web UI)
- ``edge``     (not internal): the ingress gateways' side where ports are published on 127.0.0.1;
  IP masquerading is off, so nothing on it is NATed to the outside
- ``egress``   (internal): workspace <-> egress gateway (the audited proxy)
- ``outside``  (not internal): the egress gateway's route out

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

from components.naming import docker_name
from components.security.catalog import INTERNAL_NETWORK_OPTIONS
from components.security.spec import LABEL_STACK


@dataclass(frozen=True)
class SandboxNetworksArgs:
    stack: str
    with_model_network: bool
    with_egress: bool


class SandboxNetworks(pulumi.ComponentResource):
    model: docker.Network | None
    executor: docker.Network
    ingress: docker.Network
    edge: docker.Network
    egress: docker.Network | None
    outside: docker.Network | None

    def __init__(self, name: str, args: SandboxNetworksArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("opencode-sandbox:index:SandboxNetworks", name, None, opts)
        self._stack = args.stack
        self._name = name
        self.model = self._network("model", internal=True) if args.with_model_network else None
        self.executor = self._network("executor", internal=True)
        self.ingress = self._network("ingress", internal=True)
        self.edge = self._network("edge", internal=False, options={
            "com.docker.network.bridge.enable_ip_masquerade": "false",
            "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1",
        })
        self.egress = self._network("egress", internal=True) if args.with_egress else None
        self.outside = self._network("outside", internal=False) if args.with_egress else None
        self.register_outputs({
            "names": {key: net.name for key, net in self.all().items()},
        })

    def all(self) -> dict[str, docker.Network]:
        candidates = {"model": self.model, "executor": self.executor, "ingress": self.ingress, "edge": self.edge,
                      "egress": self.egress, "outside": self.outside}
        return {key: net for key, net in candidates.items() if net is not None}

    def _network(self, purpose: str, internal: bool, options: dict[str, str] | None = None) -> docker.Network:
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
                docker.NetworkLabelArgs(label="opencode-sandbox.network", value=purpose),
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
