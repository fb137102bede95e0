"""The OpenCode workspace: the agent itself.

It runs as the configured non-root UID:GID (the host user's, so project files keep
their owner) with one read-write mount, the project, at ``/workspace``, an
optional read-only ``/shared``, and tmpfs for HOME, caches and /tmp. It serves
OpenCode's web UI and API (``opencode serve``) on port 4096 of its internal
ingress network only, behind ``OPENCODE_SERVER_PASSWORD``; the host reaches it
through the ingress gateway on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.hardening import HardenedContainerArgs, Healthcheck, NetworkAttachment, Tmpfs, hardened_container
from components.opencode_config import (
    CONFIG_HOME,
    EXECUTOR_TOKEN_ENV,
    LOCKDOWN_ENV,
    OpenCodeConfigArgs,
    mcp_secret_env,
    opencode_config_json,
)
from sandbox_model.destinations import PROJECT_MOUNT, WEB_ALIAS, WEB_PORT
from sandbox_model.engine_api import ApiVersion
from sandbox_model.naming import component_type, docker_name
from sandbox_model.roles import Role
from stacks.settings import WorkspaceSettings

HOME = "/home/opencode"
SHARED_MOUNT = "/shared"
#: Masked by an empty, read-only tmpfs: OpenCode 1.18.34 imports ``.opencode/{plugin,plugins}/*.js``
#: of the project into its server even with OPENCODE_DISABLE_PROJECT_CONFIG=1 (its v2 config
#: service ignores that flag), so the workspace must not see the project's own directory at all.
PROJECT_CONFIG_MASK = f"{PROJECT_MOUNT}/.opencode"
#: Where sessions live when persist_sessions is on: inside the project, git-ignored by the image.
PERSISTED_DATA_DIR = f"{PROJECT_MOUNT}/.opencode-sandbox/data"


@dataclass(frozen=True)
class WorkspaceArgs:
    stack: str
    settings: WorkspaceSettings
    image: pulumi.Input[str]
    opencode: OpenCodeConfigArgs
    #: The network the ingress gateway reaches the web UI through.
    ingress_network: pulumi.Input[str]
    #: The networks the workspace reaches the model gateway, the executors and the egress gateway on.
    networks: Sequence[pulumi.Input[str]]
    web_password: pulumi.Input[str]
    executor_token: pulumi.Input[str]
    engine_api: ApiVersion
    #: The egress gateway's proxy URL, when the workspace has a route out.
    proxy_url: str | None = None
    #: In-stack names the workspace reaches directly, never through the proxy.
    no_proxy: Sequence[str] = field(default_factory=tuple)
    #: ``mcp_secrets`` entries the MCP servers' headers use, by name (``{env:...}`` in opencode.json).
    mcp_secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


class Workspace(pulumi.ComponentResource):
    container: docker.Container
    container_name: str
    #: The web UI/API inside the ingress network.
    url: str

    def __init__(self, name: str, args: WorkspaceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(component_type("Workspace"), name, None, opts)
        settings = args.settings
        user = settings.user
        owner = (user.uid, user.gid)
        self.container_name = docker_name(args.stack, "workspace")
        self.url = f"http://{WEB_ALIAS}:{WEB_PORT}"
        envs: dict[str, pulumi.Input[str]] = {
            "HOME": HOME,
            "OPENCODE_WEB_HOST": WEB_ALIAS,  # where the image's healthcheck finds the server
            "OPENCODE_CONFIG_CONTENT": opencode_config_json(args.opencode),
            "OPENCODE_SERVER_PASSWORD": args.web_password,
            EXECUTOR_TOKEN_ENV: args.executor_token,
            # The MCP servers' header secrets: only here, as Pulumi secrets (opencode.json names the variables).
            **{mcp_secret_env(name): pulumi.Output.secret(value) for name, value in sorted(args.mcp_secrets.items())},
            # No project config (its tools and plugins would run in the server), no self-update, no
            # catalog or language-server downloads, no external skills.
            **LOCKDOWN_ENV,
            "OPENCODE_DISABLE_SHARE": "1",
            # OpenCode's global config directory: read-only in the image, with the plugin that strips
            # the secrets above from user-initiated shells.
            "XDG_CONFIG_HOME": CONFIG_HOME,
        }
        if settings.persist_sessions:
            envs["XDG_DATA_HOME"] = PERSISTED_DATA_DIR
        if args.proxy_url:
            # Its own web address too: the health check (and the agent) call the server there.
            no_proxy = ",".join(["localhost", "127.0.0.1", WEB_ALIAS, *args.no_proxy])
            for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                envs[key] = args.proxy_url
            envs["NO_PROXY"] = envs["no_proxy"] = no_proxy
        mounts = [docker.ContainerMountArgs(type="bind", source=str(settings.project_dir), target=PROJECT_MOUNT)]
        if settings.shared_dir is not None:
            mounts.append(
                docker.ContainerMountArgs(
                    type="bind", source=str(settings.shared_dir), target=SHARED_MOUNT, read_only=True
                )
            )
        self.container = hardened_container(
            f"{name}-container",
            HardenedContainerArgs(
                stack=args.stack,
                role=Role.WORKSPACE,
                name=self.container_name,
                image=args.image,
                user=user.docker_user,
                limits=settings.limits,
                envs=envs,
                command=["opencode", "serve", "--hostname", WEB_ALIAS, "--port", str(WEB_PORT)],
                working_dir=PROJECT_MOUNT,
                tmpfs={
                    HOME: Tmpfs(size_mb=settings.tmpfs.home_mb, mode="0700", owner=owner),
                    f"{HOME}/.cache": Tmpfs(size_mb=settings.tmpfs.cache_mb, mode="0700", owner=owner),
                    # OpenCode's runtime (Bun) unpacks native libraries (file watcher, PTY) into /tmp
                    # and loads them: this one tmpfs must allow exec.
                    "/tmp": Tmpfs(size_mb=settings.tmpfs.tmp_mb, executable=True),
                    # Empty and root-owned 0555: nothing the workspace runs can put a plugin there.
                    PROJECT_CONFIG_MASK: Tmpfs(size_mb=1, mode="0555", max_inodes=16),
                },
                mounts=mounts,
                networks=[
                    NetworkAttachment(args.ingress_network, aliases=(WEB_ALIAS,)),
                    *(NetworkAttachment(network) for network in args.networks),
                ],
                engine_api=args.engine_api,
                # The image's check sends the password on stdin, never on a command line (/proc shows those).
                healthcheck=Healthcheck(tests=["CMD", "/usr/local/bin/opencode-healthcheck"], start_period_s=30),
                # The agent's tools leave orphans behind; docker-init reaps them.
                init=True,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"container_name": self.container_name, "url": self.url})
