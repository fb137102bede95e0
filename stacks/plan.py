"""The plan: every decision the stack's shape follows from, derived from the settings once.

Which parts a stack has (an in-stack model server or an external model, an egress gateway, a
model-API ingress, the conductor), which networks exist and who joins which, which images are
built from ``images/`` and which pulled, what the egress gateway admits besides its allowlist, and
the shape of the stack's outputs. ``components.sandbox.Sandbox`` wires containers by it and decides
nothing itself; the tests read it to know what a committed stack must hold.

Plain data, built from :class:`stacks.settings.Settings` only (no Pulumi): ``plan_for(settings)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sandbox_model.destinations import Destination
from sandbox_model.topology import NETWORKS
from stacks.settings import ExternalModel, Settings, TestDoubleModel, VllmModel


class ModelSource(StrEnum):
    """Where the model runs: an in-stack server (vLLM, or the scripted test double), or elsewhere."""

    VLLM = "vllm"
    TEST_DOUBLE = "test-double"
    EXTERNAL = "external"


class Image(StrEnum):
    """The stack's images: a directory under ``images/`` (built), or the model server's (pulled).

    The value is the directory's name, and the last part of the image resource's name.
    """

    WORKSPACE = "workspace"
    EXECUTOR = "executor"
    INGRESS = "ingress"
    MODEL_GATEWAY = "model-gateway"
    EGRESS = "egress"
    MODEL_DOUBLE = "model-double"
    CONDUCTOR = "conductor"
    #: The vLLM image, pulled as pinned by ``model.image`` (no directory under images/).
    MODEL = "model"


#: The networks a stack has only when it has the path they carry (sandbox_model.topology.NETWORKS
#: says what each path is); every other network of that table, every stack has.
_CONDITIONAL_NETWORKS = ("model-upstream", "egress", "outside", "conductor")

#: The keys of the ``containers`` output every stack has, and those only some have.
ALWAYS_EXPORTED_CONTAINERS = ("workspace", "executors", "ingress_web", "model_gateway")


@dataclass(frozen=True)
class Plan:
    stack: str
    model_source: ModelSource
    #: The workspace goes out (through the egress gateway) for its allowlist and the user's MCP servers.
    workspace_egress: bool
    #: An egress gateway (and the egress/outside networks): the workspace goes out, or the model is external.
    egress_gateway: bool
    #: The in-stack model server's API published on 127.0.0.1:<port> through an ingress gateway, or None.
    model_api_host_port: int | None
    conductor: bool
    #: The networks the stack has, by purpose, in the order of sandbox_model.topology.NETWORKS.
    networks: tuple[str, ...]
    #: The networks the workspace joins besides ingress (where it has its alias).
    workspace_networks: tuple[str, ...]
    #: The network on which the model gateway reaches its upstream: the in-stack server's, or egress.
    model_gateway_upstream_network: str
    #: Built from images/<name>, in this order.
    built_images: tuple[Image, ...]
    #: Pulled images and their pinned references.
    pulled_images: tuple[tuple[Image, str], ...]
    #: What the egress gateway admits besides the allowlist: the external model, the MCP servers.
    egress_destinations: tuple[Destination, ...]
    #: The stack's outputs (``pulumi stack output``), by name, and the keys of its ``containers`` output.
    exports: tuple[str, ...]
    exported_containers: tuple[str, ...]

    @property
    def in_stack_model(self) -> bool:
        return self.model_source is not ModelSource.EXTERNAL

    @property
    def model_api_ingress(self) -> bool:
        return self.model_api_host_port is not None


def plan_for(settings: Settings) -> Plan:
    model = settings.model
    if isinstance(model, VllmModel):
        source = ModelSource.VLLM
    elif isinstance(model, TestDoubleModel):
        source = ModelSource.TEST_DOUBLE
    else:
        source = ModelSource.EXTERNAL
    in_stack_model = source is not ModelSource.EXTERNAL
    mcp_servers = settings.workspace.mcp_servers
    workspace_egress = bool(settings.egress.allow) or bool(mcp_servers)
    egress_gateway = workspace_egress or not in_stack_model
    conductor = settings.conductor.enabled
    host_port = model.host_port if isinstance(model, (VllmModel, TestDoubleModel)) else None

    present = {
        "model-upstream": in_stack_model,
        "egress": egress_gateway,
        "outside": egress_gateway,
        "conductor": conductor,
    }
    assert set(present) == set(_CONDITIONAL_NETWORKS) <= set(NETWORKS)
    networks = tuple(purpose for purpose in NETWORKS if present.get(purpose, True))

    built = [Image.WORKSPACE, Image.EXECUTOR, Image.INGRESS, Image.MODEL_GATEWAY]
    if egress_gateway:
        built.append(Image.EGRESS)
    if source is ModelSource.TEST_DOUBLE:
        built.append(Image.MODEL_DOUBLE)
    if conductor:
        built.append(Image.CONDUCTOR)
    pulled = ((Image.MODEL, model.image),) if isinstance(model, VllmModel) else ()

    destinations = [Destination.from_url(model.base_url)] if isinstance(model, ExternalModel) else []
    destinations += [Destination.from_url(server.url) for server in mcp_servers.values()]

    containers = list(ALWAYS_EXPORTED_CONTAINERS)
    exports = [
        "web_url",
        "web_user",
        "web_password",
        "model_endpoint",
        "executor_endpoints",
        "executor_token",
        "model_api_key",
        "networks",
    ]
    if in_stack_model:
        containers.append("model")
    if egress_gateway:
        containers.append("egress")
    if in_stack_model and host_port:
        containers.append("ingress_model_api")
        exports.append("model_api_url")
    if conductor:
        containers += ["conductor", "ingress_conductor"]
        exports += ["conductor_url", "conductor_token"]
    exports.append("containers")

    return Plan(
        stack=settings.stack,
        model_source=source,
        workspace_egress=workspace_egress,
        egress_gateway=egress_gateway,
        model_api_host_port=host_port if in_stack_model and host_port else None,
        conductor=conductor,
        networks=networks,
        workspace_networks=("executor", "model", *(("egress",) if workspace_egress else ())),
        model_gateway_upstream_network="model-upstream" if in_stack_model else "egress",
        built_images=tuple(built),
        pulled_images=pulled,
        egress_destinations=tuple(dict.fromkeys(destinations)),
        exports=tuple(exports),
        exported_containers=tuple(containers),
    )
