"""The whole sandbox: networks, images, model server, model gateway, executors, workspace and gateways.

What the stack holds is decided by its plan (:mod:`stacks.plan`); this component only wires the
parts the plan names to each other, and gathers the stack's outputs (:meth:`Sandbox.exports`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from components.conductor import Conductor, ConductorArgs
from components.executors import ExecutorPool, ExecutorPoolArgs
from components.gateways import EgressGateway, EgressGatewayArgs, IngressGateway, IngressGatewayArgs
from components.generated_secret import GeneratedSecret
from components.host_dirs import check_project_readable, ensure_directory, ensure_session_store
from components.images import SandboxImages, SandboxImagesArgs
from components.model_gateway import ModelGateway, ModelGatewayArgs
from components.model_server import ModelServer, ModelServerArgs
from components.networks import SandboxNetworks, SandboxNetworksArgs
from components.opencode_config import McpServerConfig, OpenCodeConfigArgs
from components.workspace import Workspace, WorkspaceArgs
from sandbox_model.destinations import (
    CONDUCTOR_ALIAS,
    CONDUCTOR_PORT,
    MCP_PATH,
    MODEL_PORT,
    SHARED_ALIAS,
    WEB_ALIAS,
    WEB_PORT,
)
from sandbox_model.naming import component_type
from sandbox_model.security.baseline import DEFAULT_PUBLISH_IP
from stacks.loader import StackSecrets
from stacks.plan import Image, plan_for
from stacks.settings import Settings, TestDoubleModel, VllmModel

#: The web UI's login user (OpenCode's basic auth), an output of every stack.
WEB_USER = "opencode"


@dataclass(frozen=True)
class SandboxArgs:
    settings: Settings
    secrets: StackSecrets


class Sandbox(pulumi.ComponentResource):
    def __init__(self, name: str, args: SandboxArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(component_type("Sandbox"), name, None, opts)
        settings, stack = args.settings, args.settings.stack
        self.plan = plan = plan_for(settings)
        child = pulumi.ResourceOptions(parent=self)
        model = settings.model
        engine_api = settings.engine.api
        gateways = settings.gateways

        if not pulumi.runtime.is_dry_run():
            self._prepare_host_directories(settings)

        self.web_password = args.secrets.web_password or self._generated_secret(f"{name}-web-password")
        self.executor_token = args.secrets.executor_token or self._generated_secret(f"{name}-executor-token")
        self.model_api_key: pulumi.Output[str]
        if args.secrets.model_api_key is not None:
            self.model_api_key = args.secrets.model_api_key
        elif plan.in_stack_model:
            self.model_api_key = self._generated_secret(f"{name}-model-api-key")
        else:
            self.model_api_key = pulumi.Output.secret("")  # an external endpoint that wants no key
        self.conductor_token: pulumi.Output[str] | None = None
        if plan.conductor:
            self.conductor_token = args.secrets.conductor_token or self._generated_secret(f"{name}-conductor-token")

        self.images = SandboxImages(
            f"{name}-images",
            SandboxImagesArgs(
                stack=stack,
                settings=settings.images,
                build=plan.built_images,
                pull=plan.pulled_images,
                image_args={
                    Image.WORKSPACE: {
                        "OPENCODE_VERSION": settings.images.opencode_version,
                        "OPENCODE_INTEGRITY": settings.images.opencode_integrity,
                    },
                    Image.EXECUTOR: {"EXECUTOR_PACKAGES": " ".join(settings.executors.packages)},
                },
            ),
            child,
        )
        refs = self.images.refs

        self.networks = nets = SandboxNetworks(
            f"{name}-networks", SandboxNetworksArgs(stack=stack, purposes=plan.networks), child
        )

        self.model_server: ModelServer | None = None
        if isinstance(model, (VllmModel, TestDoubleModel)):
            model_user = settings.model_user
            assert model_user is not None  # an in-stack model always has one
            self.model_server = ModelServer(
                f"{name}-model",
                ModelServerArgs(
                    stack=stack,
                    settings=model,
                    user=model_user,
                    image=refs[Image.MODEL_DOUBLE if isinstance(model, TestDoubleModel) else Image.MODEL],
                    network=nets["model-upstream"].name,
                    api_key=self.model_api_key,
                    engine_api=engine_api,
                ),
                child,
            )
            upstream_base_url, model_id = self.model_server.base_url, self.model_server.served_model_name
        else:
            upstream_base_url, model_id = model.base_url, model.model

        self.executors = ExecutorPool(
            f"{name}-executors",
            ExecutorPoolArgs(
                stack=stack,
                settings=settings.executors,
                image=refs[Image.EXECUTOR],
                network=nets["executor"].name,
                token=self.executor_token,
                engine_api=engine_api,
                project_dir=str(settings.workspace.project_dir),
            ),
            child,
        )

        self.egress: EgressGateway | None = None
        proxy_url: str | None = None
        if plan.egress_gateway:
            self.egress = EgressGateway(
                f"{name}-egress",
                EgressGatewayArgs(
                    stack=stack,
                    image=refs[Image.EGRESS],
                    user=gateways.egress_user,
                    limits=settings.egress.limits,
                    inside_network=nets["egress"].name,
                    outside_network=nets["outside"].name,
                    allow=tuple(settings.egress.allow),
                    destinations=plan.egress_destinations,
                    engine_api=engine_api,
                ),
                child,
            )
            proxy_url = self.egress.proxy_url

        # The only holder of the model API key, and the workspace's only way to the model: the in-stack
        # server on model-upstream (which the workspace is not on), or the external one through egress.
        self.model_gateway = ModelGateway(
            f"{name}-model-gateway",
            ModelGatewayArgs(
                stack=stack,
                image=refs[Image.MODEL_GATEWAY],
                user=gateways.model_gateway_user,
                limits=gateways.limits,
                upstream_base_url=upstream_base_url,
                api_key=self.model_api_key,
                networks=[nets["model"].name, nets[plan.model_gateway_upstream_network].name],
                engine_api=engine_api,
                proxy_url=None if plan.in_stack_model else proxy_url,
            ),
            child,
        )
        model_base_url = self.model_gateway.base_url

        mcp_servers = settings.workspace.mcp_servers
        in_stack_names = [SHARED_ALIAS, *self.executors.container_names, self.model_gateway.container_name]
        self.workspace = Workspace(
            f"{name}-workspace",
            WorkspaceArgs(
                stack=stack,
                settings=settings.workspace,
                image=refs[Image.WORKSPACE],
                opencode=OpenCodeConfigArgs(
                    model_base_url=model_base_url,
                    model_id=model_id,
                    executor_mcp_url=self.executors.mcp_url,
                    executor_approval=settings.workspace.executor_approval,
                    mcp_servers={
                        server_name: McpServerConfig(
                            url=server.url,
                            headers=dict(server.headers),
                            approval=server.approval,
                            enabled=server.enabled,
                            timeout_ms=server.timeout_ms,
                        )
                        for server_name, server in mcp_servers.items()
                    },
                ),
                ingress_network=nets["ingress"].name,
                networks=[nets[purpose].name for purpose in plan.workspace_networks],
                web_password=self.web_password,
                executor_token=self.executor_token,
                engine_api=engine_api,
                proxy_url=proxy_url if plan.workspace_egress else None,
                no_proxy=in_stack_names,
                mcp_secrets=self._mcp_secrets(settings, args.secrets),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[c for c in self.executors.containers]),
        )

        self.web = IngressGateway(
            f"{name}-web",
            IngressGatewayArgs(
                stack=stack,
                purpose="web",
                image=refs[Image.INGRESS],
                user=gateways.web_ingress_user,
                limits=gateways.limits,
                target_host=WEB_ALIAS,
                target_port=WEB_PORT,
                host_port=settings.workspace.web.port,
                host_ip=settings.workspace.web.host_ip,
                target_network=nets["ingress"].name,
                edge_network=nets["edge"].name,
                engine_api=engine_api,
            ),
            # No depends_on the workspace: socat connects per accepted connection, so the gateway may
            # start while the workspace still starts (pulumi up still waits for both to be healthy).
            child,
        )

        self.model_api: IngressGateway | None = None
        if self.model_server is not None and plan.model_api_host_port is not None:
            self.model_api = IngressGateway(
                f"{name}-model-api",
                IngressGatewayArgs(
                    stack=stack,
                    purpose="model-api",
                    image=refs[Image.INGRESS],
                    user=gateways.model_api_ingress_user,
                    limits=gateways.limits,
                    target_host=self.model_server.container_name,
                    target_port=MODEL_PORT,
                    host_port=plan.model_api_host_port,
                    host_ip=DEFAULT_PUBLISH_IP,
                    target_network=nets["model-upstream"].name,
                    edge_network=nets["edge"].name,
                    engine_api=engine_api,
                ),
                child,
            )

        # The conductor mode: an outside agent's MCP endpoint, on its own network with its ingress gateway;
        # it reaches the workspace's OpenCode API on the ingress network.
        self.conductor: Conductor | None = None
        self.conductor_ingress: IngressGateway | None = None
        self.conductor_url: str | None = None
        if plan.conductor and self.conductor_token is not None:
            conductor = settings.conductor
            self.conductor = Conductor(
                f"{name}-conductor",
                ConductorArgs(
                    stack=stack,
                    settings=conductor,
                    image=refs[Image.CONDUCTOR],
                    user=gateways.conductor_user,
                    token=self.conductor_token,
                    web_password=self.web_password,
                    opencode_url=self.workspace.url,
                    project_dir=str(settings.workspace.project_dir),
                    conductor_network=nets["conductor"].name,
                    ingress_network=nets["ingress"].name,
                    engine_api=engine_api,
                ),
                child,
            )
            self.conductor_ingress = IngressGateway(
                f"{name}-conductor-ingress",
                IngressGatewayArgs(
                    stack=stack,
                    purpose="conductor",
                    image=refs[Image.INGRESS],
                    user=gateways.conductor_ingress_user,
                    limits=gateways.limits,
                    target_host=CONDUCTOR_ALIAS,
                    target_port=CONDUCTOR_PORT,
                    host_port=conductor.host_port,
                    host_ip=DEFAULT_PUBLISH_IP,
                    target_network=nets["conductor"].name,
                    edge_network=nets["edge"].name,
                    engine_api=engine_api,
                ),
                child,
            )
            self.conductor_url = f"{self.conductor_ingress.url}{MCP_PATH}"

        self.model_endpoint = model_base_url
        self.executor_endpoints = self.executors.endpoints
        self.register_outputs(
            {
                "web_url": self.web.url,
                "model_endpoint": self.model_endpoint,
                "executor_endpoints": self.executor_endpoints,
            }
        )

    def exports(self) -> dict[str, Any]:
        """The stack's outputs, by name: exactly the plan's ``exports``, with ``containers`` as it says."""
        containers: dict[str, Any] = {
            "workspace": self.workspace.container_name,
            "executors": self.executors.container_names,
            "ingress_web": self.web.container_name,
            "model_gateway": self.model_gateway.container_name,
        }
        outputs: dict[str, Any] = {
            "web_url": self.web.url,
            "web_user": WEB_USER,
            "web_password": self.web_password,
            "model_endpoint": self.model_endpoint,
            "executor_endpoints": self.executor_endpoints,
            "executor_token": self.executor_token,
            "model_api_key": self.model_api_key,
            "networks": {purpose: net.name for purpose, net in self.networks.all().items()},
        }
        if self.model_server is not None:
            containers["model"] = self.model_server.container_name
        if self.egress is not None:
            containers["egress"] = self.egress.container_name
        if self.model_api is not None:
            containers["ingress_model_api"] = self.model_api.container_name
            outputs["model_api_url"] = self.model_api.url
        if self.conductor is not None and self.conductor_ingress is not None:
            containers["conductor"] = self.conductor.container_name
            containers["ingress_conductor"] = self.conductor_ingress.container_name
            outputs["conductor_url"] = self.conductor_url
            outputs["conductor_token"] = self.conductor_token
        outputs["containers"] = containers
        assert tuple(outputs) == self.plan.exports and tuple(containers) == self.plan.exported_containers, (
            "the stack's outputs must be the plan's"
        )
        return outputs

    def _generated_secret(self, resource_name: str) -> pulumi.Output[str]:
        generated = GeneratedSecret(resource_name, length=40, opts=pulumi.ResourceOptions(parent=self))
        return pulumi.Output.secret(generated.result)

    @staticmethod
    def _mcp_secrets(settings: Settings, secrets: StackSecrets) -> dict[str, pulumi.Output[str]]:
        """The mcp_secrets entries the servers' headers use (the loader checked that each is set)."""
        used = {name for server in settings.workspace.mcp_servers.values() for name in server.secret_names}
        return {name: value for name, value in (secrets.mcp_secrets or {}).items() if name in used}

    @staticmethod
    def _prepare_host_directories(settings: Settings) -> None:
        workspace = settings.workspace
        ensure_directory(Path(workspace.project_dir), workspace.user, mode=0o755)
        check_project_readable(Path(workspace.project_dir))
        if workspace.persist_sessions:
            ensure_session_store(Path(workspace.project_dir), workspace.user)
        if isinstance(settings.model, VllmModel):
            ensure_directory(Path(settings.model.cache_dir), settings.model.user or workspace.user)
