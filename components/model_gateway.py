"""The model gateway: the workspace's only way to the model, and the only holder of the model API key.

A small authenticating reverse proxy (``images/model-gateway``): it listens on the ``model``
network, where the workspace is, removes whatever ``Authorization`` a request carries, adds
``Authorization: Bearer <model_api_key>`` and forwards the request to its one upstream, streaming
the response back unmodified:

- an in-stack model server (vLLM, the test double) on the ``model-upstream`` network, which the
  workspace is not on;
- an external endpoint (``model.base_url``) through the egress gateway (it joins the ``egress``
  network for that): absolute-form requests for ``http://``, ``CONNECT`` and TLS verified against
  the image's system CA store for ``https://``.

The key reaches the gateway's environment as a Pulumi secret and nothing else: OpenCode's
``opencode.json`` points at the gateway with a fixed, non-secret placeholder as its key
(components.opencode_config). Hardened like every container (components.hardening), as its own
UID (``gateways.uid_base + 3``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi
import pulumi_docker as docker

from components.hardening import HardenedContainerArgs, Healthcheck, NetworkAttachment, hardened_container
from sandbox_model.destinations import MODEL_GATEWAY_PORT
from sandbox_model.engine_api import ApiVersion
from sandbox_model.naming import component_type, docker_name
from sandbox_model.roles import Role
from stacks.settings import Limits, UserIds

#: In the image (images/model-gateway/Dockerfile).
HEALTHCHECK = ["CMD", "python3", "-I", "-B", "/opt/model-gateway/healthcheck.py"]
#: The variable that holds the key in the gateway (and only there).
API_KEY_ENV = "MODEL_GATEWAY_API_KEY"


@dataclass(frozen=True)
class ModelGatewayArgs:
    stack: str
    image: pulumi.Input[str]
    user: UserIds
    limits: Limits
    #: The upstream's OpenAI-compatible base URL, as the gateway reaches it (ends in its base path, e.g. /v1).
    upstream_base_url: str
    api_key: pulumi.Input[str]
    #: The model network (shared with the workspace) first, then the one the upstream is reached on
    #: (model-upstream, or egress for an external model).
    networks: Sequence[pulumi.Input[str]]
    engine_api: ApiVersion
    #: The egress gateway's proxy URL, for an external model.
    proxy_url: str | None = None


class ModelGateway(pulumi.ComponentResource):
    container: docker.Container
    container_name: str
    #: The OpenAI-compatible base URL the workspace uses: the gateway, with the upstream's base path.
    base_url: str

    def __init__(self, name: str, args: ModelGatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(component_type("ModelGateway"), name, None, opts)
        self.container_name = docker_name(args.stack, "model-gateway")
        base_path = urlsplit(args.upstream_base_url).path.rstrip("/")
        self.base_url = f"http://{self.container_name}:{MODEL_GATEWAY_PORT}{base_path}"
        envs: dict[str, pulumi.Input[str]] = {
            "MODEL_GATEWAY_UPSTREAM": args.upstream_base_url,
            "MODEL_GATEWAY_PORT": str(MODEL_GATEWAY_PORT),
            API_KEY_ENV: args.api_key,
        }
        if args.proxy_url:
            envs["MODEL_GATEWAY_PROXY"] = args.proxy_url
        self.container = hardened_container(
            f"{name}-container",
            HardenedContainerArgs(
                stack=args.stack,
                role=Role.MODEL_GATEWAY,
                name=self.container_name,
                image=args.image,
                user=args.user.docker_user,
                limits=args.limits,
                envs=envs,
                networks=[NetworkAttachment(network) for network in args.networks],
                engine_api=args.engine_api,
                healthcheck=Healthcheck(tests=HEALTHCHECK),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"container_name": self.container_name, "base_url": self.base_url})
