"""The conductor: an MCP endpoint through which an outside agent delegates work to the sandboxed agent.

A small service (``images/conductor``, the official ``mcp`` SDK, streamable HTTP at ``/mcp``) with
the tools ``delegate_task`` (a prompt to one persistent OpenCode session; returns the agent's final
answer), ``abort_task``, ``read_project_file``, ``list_project_files`` and ``get_project_status``.

- Its clients present ``Authorization: Bearer <conductor_token>``; the conductor holds only the
  token's SHA-256 (like the executors), so the token exists in the stack's state and nowhere else.
- It reaches the workspace's OpenCode server on the ``ingress`` network (``workspace-web:4096``)
  with the web password (HTTP Basic, user ``opencode``): the only secret it holds, and one the
  workspace itself holds too.
- It listens on its alias on the ``conductor`` network only, where just its ingress gateway is: the
  workspace, on ``ingress`` beside it, cannot reach its port. The ingress gateway publishes that port
  on 127.0.0.1 (``conductor.host_port``).
- The project is mounted read-only at ``/project`` (files and ``git status``; paths outside it and
  links out of it are refused).

Hardened like every container (components.hardening), as its own UID (``gateways.uid_base + 4``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.hardening import HardenedContainerArgs, Healthcheck, NetworkAttachment, Tmpfs, hardened_container
from sandbox_model.bearer_gate import token_digest
from sandbox_model.destinations import CONDUCTOR_ALIAS, CONDUCTOR_PORT
from sandbox_model.destinations import CONDUCTOR_PROJECT_MOUNT as PROJECT_MOUNT
from sandbox_model.engine_api import ApiVersion
from sandbox_model.naming import component_type, docker_name
from sandbox_model.roles import Role
from stacks.settings import ConductorSettings, UserIds

HEALTHCHECK = ["CMD", "python3", "-I", "-B", "/opt/conductor/healthcheck.py"]
#: The variable with the workspace's web password (the conductor's only secret).
PASSWORD_ENV = "CONDUCTOR_OPENCODE_PASSWORD"
TOKEN_DIGEST_ENV = "CONDUCTOR_TOKEN_SHA256"


@dataclass(frozen=True)
class ConductorArgs:
    stack: str
    settings: ConductorSettings
    image: pulumi.Input[str]
    user: UserIds
    token: pulumi.Input[str]
    web_password: pulumi.Input[str]
    #: The workspace's OpenCode server, as the conductor reaches it on the ingress network.
    opencode_url: str
    project_dir: str
    #: Its own network (with its ingress gateway), then the ingress network (the workspace's API).
    conductor_network: pulumi.Input[str]
    ingress_network: pulumi.Input[str]
    engine_api: ApiVersion


class Conductor(pulumi.ComponentResource):
    container: docker.Container
    container_name: str

    def __init__(self, name: str, args: ConductorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(component_type("Conductor"), name, None, opts)
        self.container_name = docker_name(args.stack, "conductor")
        envs: dict[str, pulumi.Input[str]] = {
            TOKEN_DIGEST_ENV: pulumi.Output.secret(args.token).apply(token_digest),
            "CONDUCTOR_OPENCODE_URL": args.opencode_url,
            PASSWORD_ENV: args.web_password,
            "CONDUCTOR_PROJECT_DIR": PROJECT_MOUNT,
            "CONDUCTOR_HOST": CONDUCTOR_ALIAS,
            "CONDUCTOR_PORT": str(CONDUCTOR_PORT),
            "CONDUCTOR_TASK_TIMEOUT_S": f"{args.settings.task_timeout_s:g}",
        }
        self.container = hardened_container(
            f"{name}-container",
            HardenedContainerArgs(
                stack=args.stack,
                role=Role.CONDUCTOR,
                name=self.container_name,
                image=args.image,
                user=args.user.docker_user,
                limits=args.settings.limits,
                envs=envs,
                tmpfs={"/tmp": Tmpfs(size_mb=16)},
                mounts=[
                    docker.ContainerMountArgs(
                        type="bind", source=args.project_dir, target=PROJECT_MOUNT, read_only=True
                    )
                ],
                networks=[
                    NetworkAttachment(args.conductor_network, aliases=(CONDUCTOR_ALIAS,)),
                    NetworkAttachment(args.ingress_network),
                ],
                engine_api=args.engine_api,
                healthcheck=Healthcheck(tests=HEALTHCHECK),
                init=True,  # git children are reaped
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"container_name": self.container_name})
