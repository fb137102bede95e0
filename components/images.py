"""The stack's images: built from ``images/`` (workspace, executor, gateways, the CI model
double) and the model server's image pinned.

A built image's tag carries a digest of its build context and arguments, and the
``triggers`` input carries the same digest: any change to a Dockerfile, to the
executor's code or to a build argument rebuilds the image, and containers
(which reference the image id) are replaced with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_docker as docker

from sandbox_model.naming import LABEL_STACK, component_type
from sandbox_model.paths import REPO_ROOT
from stacks.plan import Image
from stacks.settings import ImageSettings

#: Relative to the project directory, where Pulumi runs the program and the provider.
IMAGES_CONTEXT = "images"


def context_digest(context: Path, build_args: Mapping[str, str]) -> str:
    """A digest of every file of a build context and of the build arguments."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes() + b"\0")
    for key, value in sorted(build_args.items()):
        digest.update(f"{key}={value}\0".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class SandboxImagesArgs:
    stack: str
    settings: ImageSettings
    #: The directories under images/ to build (stacks.plan.Plan.built_images).
    build: tuple[Image, ...]
    #: Pulled images (the model server's), pinned by the settings (stacks.plan.Plan.pulled_images).
    pull: tuple[tuple[Image, str], ...] = ()
    #: Build arguments of one image beside the common ones.
    image_args: Mapping[Image, Mapping[str, str]] = field(default_factory=dict)


def image_labels(stack: str) -> dict[str, str]:
    return {LABEL_STACK: stack}


class SandboxImages(pulumi.ComponentResource):
    """``refs[image]`` is the image id a container should run (it changes with every rebuild)."""

    refs: dict[Image, pulumi.Output[str]]

    def __init__(self, name: str, args: SandboxImagesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(component_type("SandboxImages"), name, None, opts)
        self.refs = {}
        child = pulumi.ResourceOptions(parent=self)
        common_args = {"BASE_IMAGE": args.settings.base_image}
        if args.settings.extra_ca_file:
            # Opt-in: only the build's fetch stage sees it, the final image never carries it.
            common_args["EXTRA_CA_CERTS"] = Path(args.settings.extra_ca_file).read_text()
        for image in args.build:
            directory = image.value
            build_args = {**common_args, **args.image_args.get(image, {})}
            digest = context_digest(REPO_ROOT / IMAGES_CONTEXT / directory, build_args)
            built = docker.RemoteImage(
                f"{name}-{directory}",
                name=f"opencode-sandbox/{directory}:{args.stack}-{digest[:12]}",
                build=docker.RemoteImageBuildArgs(
                    context=f"{IMAGES_CONTEXT}/{directory}",
                    dockerfile="Dockerfile",
                    build_args=build_args,
                    # The provider builds with BuildKit (buildx), which reads `label`; its legacy builder
                    # (DOCKER_BUILDKIT=0) reads `labels`. Both, so the label survives either builder.
                    label=image_labels(args.stack),
                    labels=image_labels(args.stack),
                ),
                triggers={"context-digest": digest},
                keep_locally=False,
                opts=child,
            )
            self.refs[image] = built.image_id
        for image, reference in args.pull:
            pulled = docker.RemoteImage(f"{name}-{image.value}", name=reference, keep_locally=True, opts=child)
            self.refs[image] = pulled.image_id
        self.register_outputs({"refs": {image.value: ref for image, ref in self.refs.items()}})
