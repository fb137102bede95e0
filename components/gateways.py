"""The gateways: the only containers that cross the stack's boundary.

- :class:`IngressGateway` publishes one in-stack service on 127.0.0.1 of the host
  (a container only on internal networks cannot publish a port): a socat TCP
  forwarder with a single fixed target.
- :class:`EgressGateway` is the workspace's only route out: a squid proxy that
  admits allowlisted names only and logs every decision (components.egress_proxy).

Both are hardened by the same helper as every other container.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.egress_proxy import render_squid_conf
from components.hardening import HardenedContainerArgs, Healthcheck, NetworkAttachment, Tmpfs, hardened_container
from sandbox_model.destinations import INGRESS_LISTEN_PORT, PROXY_PORT, Destination
from sandbox_model.engine_api import ApiVersion
from sandbox_model.naming import component_type, docker_name
from sandbox_model.roles import Role
from stacks.settings import Limits, UserIds

HOST_GATEWAY = "host-gateway"


@dataclass(frozen=True)
class IngressGatewayArgs:
    stack: str
    purpose: str  # e.g. "web", "model-api": part of the container name
    image: pulumi.Input[str]
    user: UserIds
    limits: Limits
    target_host: str
    target_port: int
    host_port: int
    #: The loopback address the port is published on.
    host_ip: str
    #: The internal network shared with the target, then the edge network where the port is published.
    target_network: pulumi.Input[str]
    edge_network: pulumi.Input[str]
    engine_api: ApiVersion


class IngressGateway(pulumi.ComponentResource):
    container: docker.Container
    container_name: str
    url: str

    def __init__(self, name: str, args: IngressGatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(component_type("IngressGateway"), name, None, opts)
        self.container_name = docker_name(args.stack, "ingress", args.purpose)
        host = f"[{args.host_ip}]" if ":" in args.host_ip else args.host_ip
        self.url = f"http://{host}:{args.host_port}"
        self.container = hardened_container(
            f"{name}-container",
            HardenedContainerArgs(
                stack=args.stack,
                role=Role.INGRESS_GATEWAY,
                name=self.container_name,
                image=args.image,
                user=args.user.docker_user,
                limits=args.limits,
                # images/ingress: socat from one listen port to one fixed target, configured by env.
                envs={
                    "INGRESS_TARGET_HOST": args.target_host,
                    "INGRESS_TARGET_PORT": str(args.target_port),
                    "INGRESS_LISTEN_PORT": str(INGRESS_LISTEN_PORT),
                },
                networks=[NetworkAttachment(args.target_network), NetworkAttachment(args.edge_network)],
                engine_api=args.engine_api,
                published_ports={INGRESS_LISTEN_PORT: args.host_port},
                publish_ip=args.host_ip,
                healthcheck=Healthcheck(tests=["CMD", "/usr/local/bin/ingress-healthcheck"]),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"container_name": self.container_name, "url": self.url})


@dataclass(frozen=True)
class EgressGatewayArgs:
    stack: str
    image: pulumi.Input[str]
    user: UserIds
    limits: Limits
    #: The internal network shared with the workspace, then the network with a route out.
    inside_network: pulumi.Input[str]
    outside_network: pulumi.Input[str]
    allow: Sequence[str]
    engine_api: ApiVersion
    destinations: Sequence[Destination] = field(default_factory=tuple)


class EgressGateway(pulumi.ComponentResource):
    container: docker.Container
    container_name: str
    #: The proxy URL the workspace uses (HTTP_PROXY/HTTPS_PROXY).
    proxy_url: str

    def __init__(self, name: str, args: EgressGatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(component_type("EgressGateway"), name, None, opts)
        self.container_name = docker_name(args.stack, "egress")
        self.proxy_url = f"http://{self.container_name}:{PROXY_PORT}"
        # `host.docker.internal` (a service on the Docker host, e.g. LM Studio) only resolves when asked for.
        extra_hosts = {dest.host: HOST_GATEWAY for dest in args.destinations if dest.host == "host.docker.internal"}
        self.container = hardened_container(
            f"{name}-container",
            HardenedContainerArgs(
                stack=args.stack,
                role=Role.EGRESS_GATEWAY,
                name=self.container_name,
                image=args.image,
                user=args.user.docker_user,
                limits=args.limits,
                envs={"EGRESS_SQUID_CONF": render_squid_conf(args.allow, args.destinations)},
                tmpfs={"/run/squid": Tmpfs(size_mb=16), "/tmp": Tmpfs(size_mb=16)},
                networks=[NetworkAttachment(args.inside_network), NetworkAttachment(args.outside_network)],
                engine_api=args.engine_api,
                extra_hosts=extra_hosts,
                healthcheck=Healthcheck(tests=["CMD", "/usr/local/bin/egress-healthcheck"]),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"container_name": self.container_name, "proxy_url": self.proxy_url})
