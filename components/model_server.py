"""The model server: vLLM on the GPU, or (ci stack only) a scripted CPU test double.

Either way it listens on port 8000 of the internal ``model-upstream`` network, speaks the
OpenAI API under ``/v1``, and demands the stack's model API key. Only the model gateway
(components.model_gateway), which holds the key, reaches it there: the workspace is not on that
network. It has no host port (the model API is published on 127.0.0.1 only through an ingress
gateway on the same network, when ``model.host_port`` asks) and no route out: vLLM loads weights
from the cache directory, fetched beforehand.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.hardening import (
    GpuRequest,
    HardenedContainerArgs,
    Healthcheck,
    NetworkAttachment,
    Tmpfs,
    hardened_container,
)
from sandbox_model.destinations import MODEL_PORT
from sandbox_model.engine_api import ApiVersion
from sandbox_model.naming import LABEL_ROLE, LABEL_STACK, component_type, docker_name
from sandbox_model.roles import Role
from stacks.settings import TestDoubleModel, UserIds, VllmModel

MODELS_MOUNT = "/models"


def _http_ok(url: str) -> list[str]:
    # Both images have python3; an HTTP probe needs nothing else.
    return ["CMD", "python3", "-c", f"import urllib.request; urllib.request.urlopen({url!r}, timeout=4)"]


@dataclass(frozen=True)
class ModelServerArgs:
    stack: str
    settings: VllmModel | TestDoubleModel
    user: UserIds
    image: pulumi.Input[str]
    #: The model-upstream network (the model gateway's, and the model-API ingress gateway's).
    network: pulumi.Input[str]
    api_key: pulumi.Input[str]
    engine_api: ApiVersion


class ModelServer(pulumi.ComponentResource):
    container: docker.Container
    container_name: str
    #: The OpenAI-compatible base URL inside the model-upstream network: the model gateway's upstream.
    base_url: str
    served_model_name: str

    def __init__(self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(component_type("ModelServer"), name, None, opts)
        settings = args.settings
        self.container_name = docker_name(args.stack, "model")
        self.base_url = f"http://{self.container_name}:{MODEL_PORT}/v1"
        self.served_model_name = settings.served_model_name
        child = pulumi.ResourceOptions(parent=self)
        if isinstance(settings, VllmModel):
            container_args = self._vllm(name, args, settings, child)
        else:
            container_args = self._test_double(args, settings)
        self.container = hardened_container(f"{name}-container", container_args, child)
        self.register_outputs({"container_name": self.container_name, "base_url": self.base_url})

    def _vllm(
        self, name: str, args: ModelServerArgs, settings: VllmModel, child: pulumi.ResourceOptions
    ) -> HardenedContainerArgs:
        # A named volume bound to the cache directory: Docker-managed, owned by the host user.
        cache = docker.Volume(
            f"{name}-cache",
            name=docker_name(args.stack, "model-cache"),
            driver="local",
            driver_opts={"type": "none", "o": "bind", "device": str(settings.cache_dir)},
            labels=[
                docker.VolumeLabelArgs(label=LABEL_STACK, value=args.stack),
                docker.VolumeLabelArgs(label=LABEL_ROLE, value=Role.MODEL.value),
            ],
            opts=child,
        )
        command = [
            "--model",
            settings.model,
            "--served-model-name",
            settings.served_model_name,
            "--max-model-len",
            str(settings.max_model_len),
            "--gpu-memory-utilization",
            f"{settings.gpu_memory_utilization:g}",
            "--host",
            "0.0.0.0",
            "--port",
            str(MODEL_PORT),
            *settings.extra_args,
        ]
        return HardenedContainerArgs(
            stack=args.stack,
            role=Role.MODEL,
            name=self.container_name,
            image=args.image,
            user=args.user.docker_user,
            limits=settings.limits,
            command=command,
            envs={
                "VLLM_API_KEY": args.api_key,
                "HOME": "/home/vllm",
                "HF_HOME": f"{MODELS_MOUNT}/huggingface",
                # No route out: weights come from the cache, and nothing phones home.
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "VLLM_NO_USAGE_STATS": "1",
                "DO_NOT_TRACK": "1",
                "VLLM_CACHE_ROOT": f"{MODELS_MOUNT}/vllm",
                "TRITON_CACHE_DIR": f"{MODELS_MOUNT}/triton",
                "XDG_CACHE_HOME": f"{MODELS_MOUNT}/cache",
            },
            tmpfs={"/tmp": Tmpfs(size_mb=2048), "/home/vllm": Tmpfs(size_mb=256)},
            mounts=[docker.ContainerMountArgs(type="volume", source=cache.name, target=MODELS_MOUNT)],
            networks=[NetworkAttachment(args.network)],
            engine_api=args.engine_api,
            builtin_seccomp=settings.seccomp == "builtin",
            shm_size_mb=settings.shm_size_mb,  # instead of sharing the host's IPC namespace
            gpu=GpuRequest(device_ids=() if settings.gpus == "all" else tuple(settings.gpus)),
            healthcheck=Healthcheck(
                tests=_http_ok(f"http://127.0.0.1:{MODEL_PORT}/health"),
                interval_s=30,
                timeout_s=10,
                retries=5,
                start_period_s=15 * 60,
            ),
            wait_timeout_s=1800,  # loading weights onto the GPU takes minutes
        )

    def _test_double(self, args: ModelServerArgs, settings: TestDoubleModel) -> HardenedContainerArgs:
        return HardenedContainerArgs(
            stack=args.stack,
            role=Role.MODEL,
            name=self.container_name,
            image=args.image,
            user=args.user.docker_user,
            limits=settings.limits,
            envs={
                "MODEL_DOUBLE_PORT": str(MODEL_PORT),
                "MODEL_DOUBLE_MODEL": settings.served_model_name,
                "MODEL_DOUBLE_API_KEY": args.api_key,
            },
            tmpfs={"/tmp": Tmpfs(size_mb=16)},
            networks=[NetworkAttachment(args.network)],
            engine_api=args.engine_api,
            healthcheck=Healthcheck(tests=_http_ok(f"http://127.0.0.1:{MODEL_PORT}/health")),
            wait_timeout_s=60,
        )
