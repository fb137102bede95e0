"""The whole sandbox: networks, images, model server, model gateway, executors, workspace and gateways."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from sandbox_model.naming import component_type

from components.conductor import CONDUCTOR_ALIAS, CONDUCTOR_PORT, MCP_PATH, Conductor, ConductorArgs
from components.egress_proxy import Destination
from components.executors import SHARED_ALIAS, ExecutorPool, ExecutorPoolArgs
from components.generated_secret import GeneratedSecret
from components.gateways import EgressGateway, EgressGatewayArgs, IngressGateway, IngressGatewayArgs
from components.host_dirs import check_project_readable, ensure_directory, ensure_session_store
from components.images import SandboxImages, SandboxImagesArgs
from components.model_gateway import ModelGateway, ModelGatewayArgs
from components.model_server import MODEL_PORT, ModelServer, ModelServerArgs
from components.networks import SandboxNetworks, SandboxNetworksArgs
from components.opencode_config import McpServerConfig, OpenCodeConfigArgs
from sandbox_model.security.catalog import DEFAULT_PUBLISH_IP
from components.workspace import WEB_ALIAS, WEB_PORT, Workspace, WorkspaceArgs
from stacks.loader import StackSecrets
from stacks.settings import ExternalModel, Settings, TestDoubleModel, VllmModel


@dataclass(frozen=True)
class SandboxArgs:
    settings: Settings
    secrets: StackSecrets


class Sandbox(pulumi.ComponentResource):
    def __init__(self, name: str, args: SandboxArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(component_type("Sandbox"), name, None, opts)
        settings, stack = args.settings, args.settings.stack
        child = pulumi.ResourceOptions(parent=self)
        model = settings.model
        in_stack_model = not isinstance(model, ExternalModel)
        # The workspace goes out only for its allowlist and the user's MCP servers (each exactly its
        # host:port); an external model is the model gateway's way out.
        mcp_servers = settings.workspace.mcp_servers
        workspace_egress = bool(settings.egress.allow) or bool(mcp_servers)
        with_egress = workspace_egress or isinstance(model, ExternalModel)
        engine_api = settings.engine.api

        if not pulumi.runtime.is_dry_run():
            self._prepare_host_directories(settings)

        self.web_password = args.secrets.web_password or self._generated_secret(f"{name}-web-password")
        self.executor_token = args.secrets.executor_token or self._generated_secret(f"{name}-executor-token")
        if args.secrets.model_api_key is not None:
            self.model_api_key = args.secrets.model_api_key
        elif in_stack_model:
            self.model_api_key = self._generated_secret(f"{name}-model-api-key")
        else:
            self.model_api_key = pulumi.Output.secret("")  # an external endpoint that wants no key

        build = ["workspace", "executor", "ingress", "model-gateway"]
        if with_egress:
            build.append("egress")
        if isinstance(model, TestDoubleModel):
            build.append("model-double")
        conductor = settings.conductor
        self.conductor_token = None
        if conductor.enabled:
            build.append("conductor")
            self.conductor_token = args.secrets.conductor_token or self._generated_secret(f"{name}-conductor-token")
        pull = {"model": model.image} if isinstance(model, VllmModel) else {}
        self.images = SandboxImages(f"{name}-images", SandboxImagesArgs(
            stack=stack, settings=settings.images, build=tuple(build), pull=pull,
            image_args={
                "workspace": {"OPENCODE_VERSION": settings.images.opencode_version,
                              "OPENCODE_INTEGRITY": settings.images.opencode_integrity},
                "executor": {"EXECUTOR_PACKAGES": " ".join(settings.executors.packages)},
            }), child)
        refs = self.images.refs

        self.networks = SandboxNetworks(f"{name}-networks", SandboxNetworksArgs(
            stack=stack, with_model_upstream=in_stack_model, with_egress=with_egress,
            with_conductor=conductor.enabled), child)
        nets = self.networks

        self.model_server = None
        if in_stack_model:
            self.model_server = ModelServer(f"{name}-model", ModelServerArgs(
                stack=stack, settings=model, user=settings.model_user,
                image=refs["model-double" if isinstance(model, TestDoubleModel) else "model"],
                network=nets.model_upstream.name, api_key=self.model_api_key, engine_api=engine_api), child)
            upstream_base_url, model_id = self.model_server.base_url, self.model_server.served_model_name
        else:
            upstream_base_url, model_id = model.base_url, model.model

        self.executors = ExecutorPool(f"{name}-executors", ExecutorPoolArgs(
            stack=stack, settings=settings.executors, image=refs["executor"], network=nets.executor.name,
            token=self.executor_token, engine_api=engine_api, project_dir=str(settings.workspace.project_dir)), child)

        self.egress = None
        if with_egress:
            destinations = (Destination.from_url(model.base_url),) if isinstance(model, ExternalModel) else ()
            destinations = tuple(dict.fromkeys(
                (*destinations, *(Destination.from_url(server.url) for server in mcp_servers.values()))))
            self.egress = EgressGateway(f"{name}-egress", EgressGatewayArgs(
                stack=stack, image=refs["egress"], user=settings.gateways.egress_user, limits=settings.egress.limits,
                inside_network=nets.egress.name, outside_network=nets.outside.name,
                allow=tuple(settings.egress.allow), destinations=destinations, engine_api=engine_api), child)

        # The only holder of the model API key, and the workspace's only way to the model: the in-stack
        # server on model-upstream (which the workspace is not on), or the external one through egress.
        upstream_network = nets.model_upstream if in_stack_model else nets.egress
        self.model_gateway = ModelGateway(f"{name}-model-gateway", ModelGatewayArgs(
            stack=stack, image=refs["model-gateway"], user=settings.gateways.model_gateway_user,
            limits=settings.gateways.limits, upstream_base_url=upstream_base_url, api_key=self.model_api_key,
            networks=[nets.model.name, upstream_network.name], engine_api=engine_api,
            proxy_url=None if in_stack_model else self.egress.proxy_url), child)
        model_base_url = self.model_gateway.base_url

        workspace_networks = [nets.executor.name, nets.model.name]
        if workspace_egress:
            workspace_networks.append(nets.egress.name)
        in_stack_names = [SHARED_ALIAS, *self.executors.container_names, self.model_gateway.container_name]
        self.workspace = Workspace(f"{name}-workspace", WorkspaceArgs(
            stack=stack, settings=settings.workspace, image=refs["workspace"],
            opencode=OpenCodeConfigArgs(model_base_url=model_base_url, model_id=model_id,
                                        executor_mcp_url=self.executors.mcp_url,
                                        executor_approval=settings.workspace.executor_approval,
                                        mcp_servers={name: McpServerConfig(
                                            url=server.url, headers=dict(server.headers), approval=server.approval,
                                            enabled=server.enabled, timeout_ms=server.timeout_ms)
                                            for name, server in mcp_servers.items()}),
            ingress_network=nets.ingress.name, networks=workspace_networks, web_password=self.web_password,
            executor_token=self.executor_token, engine_api=engine_api,
            proxy_url=self.egress.proxy_url if workspace_egress else None, no_proxy=in_stack_names,
            mcp_secrets=self._mcp_secrets(settings, args.secrets)),
            pulumi.ResourceOptions(parent=self, depends_on=[c for c in self.executors.containers]))

        gateway_limits = settings.gateways.limits
        self.web = IngressGateway(f"{name}-web", IngressGatewayArgs(
            stack=stack, purpose="web", image=refs["ingress"], user=settings.gateways.web_ingress_user, limits=gateway_limits,
            target_host=WEB_ALIAS, target_port=WEB_PORT, host_port=settings.workspace.web.port,
            host_ip=settings.workspace.web.host_ip,
            target_network=nets.ingress.name, edge_network=nets.edge.name, engine_api=engine_api),
            # No depends_on the workspace: socat connects per accepted connection, so the gateway may
            # start while the workspace still starts (pulumi up still waits for both to be healthy).
            child)

        self.model_api = None
        host_port = getattr(model, "host_port", None)
        if self.model_server is not None and host_port:
            self.model_api = IngressGateway(f"{name}-model-api", IngressGatewayArgs(
                stack=stack, purpose="model-api", image=refs["ingress"], user=settings.gateways.model_api_ingress_user,
                limits=gateway_limits,
                target_host=self.model_server.container_name, target_port=MODEL_PORT, host_port=host_port,
                host_ip=DEFAULT_PUBLISH_IP,
                target_network=nets.model_upstream.name, edge_network=nets.edge.name, engine_api=engine_api),
                child)

        # The conductor mode: an outside agent's MCP endpoint, on its own network with its ingress gateway;
        # it reaches the workspace's OpenCode API on the ingress network.
        self.conductor = self.conductor_ingress = None
        self.conductor_url = None
        if conductor.enabled:
            self.conductor = Conductor(f"{name}-conductor", ConductorArgs(
                stack=stack, settings=conductor, image=refs["conductor"], user=settings.gateways.conductor_user,
                token=self.conductor_token, web_password=self.web_password, opencode_url=self.workspace.url,
                project_dir=str(settings.workspace.project_dir), conductor_network=nets.conductor.name,
                ingress_network=nets.ingress.name, engine_api=engine_api), child)
            self.conductor_ingress = IngressGateway(f"{name}-conductor-ingress", IngressGatewayArgs(
                stack=stack, purpose="conductor", image=refs["ingress"], user=settings.gateways.conductor_ingress_user,
                limits=gateway_limits, target_host=CONDUCTOR_ALIAS, target_port=CONDUCTOR_PORT,
                host_port=conductor.host_port, host_ip=DEFAULT_PUBLISH_IP,
                target_network=nets.conductor.name, edge_network=nets.edge.name, engine_api=engine_api), child)
            self.conductor_url = f"{self.conductor_ingress.url}{MCP_PATH}"

        self.model_endpoint = model_base_url
        self.executor_endpoints = self.executors.endpoints
        self.register_outputs({
            "web_url": self.web.url,
            "model_endpoint": self.model_endpoint,
            "executor_endpoints": self.executor_endpoints,
        })

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
            ensure_directory(Path(settings.model.cache_dir), settings.model_user)

