"""Names of the stack's objects: Docker names, labels and resource type tokens.

Docker objects are named `opencode-sandbox-<stack>-<part>...`: fixed names make
containers easy to find (`docker ps`), and they are the DNS names the containers
use to reach each other on the stack's networks.
"""

from __future__ import annotations

#: The Pulumi project (Pulumi.yaml's `name`) and the prefix of every Docker object's name.
PROJECT = "opencode-sandbox"

#: Every container of the stack carries these labels; users and checks find containers by them.
LABEL_STACK = "opencode-sandbox.stack"
LABEL_ROLE = "opencode-sandbox.role"
#: Every network carries its purpose (a key of sandbox_model.topology.NETWORKS).
LABEL_NETWORK = "opencode-sandbox.network"

#: pulumi-docker's resource types, as the engine names them.
CONTAINER_TYPE = "docker:index/container:Container"
NETWORK_TYPE = "docker:index/network:Network"
VOLUME_TYPE = "docker:index/volume:Volume"
REMOTE_IMAGE_TYPE = "docker:index/remoteImage:RemoteImage"


def docker_name(stack: str, *parts: str) -> str:
    return "-".join((PROJECT, stack, *parts))


def component_type(name: str) -> str:
    """The type token of one of the project's components, e.g. ``opencode-sandbox:index:Sandbox``."""
    return f"{PROJECT}:index:{name}"
