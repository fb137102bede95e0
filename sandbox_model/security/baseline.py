"""The values the hardening helper applies and the rules expect, each stated once.

``components/hardening.py`` builds every container from these; the checks in
:mod:`sandbox_model.security.rules_container` and :mod:`~sandbox_model.security.rules_stack`
judge against the same values, and the rule table (:mod:`sandbox_model.security.table`)
names them in its fixes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from sandbox_model.roles import ALL_ROLES, Role

#: Where a port may be published: the host's loopback addresses only (127.0.0.0/8, ::1).
DEFAULT_PUBLISH_IP = "127.0.0.1"


def is_loopback_address(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).is_loopback
    except ValueError:
        return False


LOG_DRIVER = "json-file"
LOG_OPTS = {"max-size": "10m", "max-file": "3"}
RESTART_POLICY = "on-failure"
RESTART_MAX_RETRIES = 5
NO_NEW_PRIVILEGES = "no-new-privileges:true"

#: Capabilities a role may add back after dropping ALL, each with its reason. No role needs
#: one: the executor isolates jobs without switching UIDs (see images/executor), the gateways
#: listen on unprivileged ports, and the model server needs none to use the GPU.
ROLE_CAPABILITIES: Mapping[str, Mapping[str, str]] = {role: {} for role in ALL_ROLES}

#: Roles that may be given host devices / GPUs, and why.
DEVICE_ROLES: Mapping[str, str] = {Role.MODEL.value: "vLLM needs the NVIDIA GPU"}

#: The seccomp profile (``images/seccomp/<name>.json``) each role runs under. The model role may
#: instead run under Docker's own default (``seccomp=builtin``, Docker >= 23) because vLLM's CUDA
#: stack is only ever exercised under that profile.
ROLE_SECCOMP_PROFILE: Mapping[str, str] = {
    Role.EXECUTOR.value: "executor",
    Role.WORKSPACE.value: "workspace",
    Role.MODEL.value: "service",
    Role.INGRESS_GATEWAY.value: "service",
    Role.EGRESS_GATEWAY.value: "service",
    Role.MODEL_GATEWAY.value: "service",
    Role.CONDUCTOR.value: "service",
}
BUILTIN_SECCOMP = "builtin"
ROLES_ALLOWED_BUILTIN_SECCOMP = frozenset({Role.MODEL.value})

#: Host paths no container may mount (bind, or a local volume bound to a host path), with
#: everything below them. ``~`` means any user's home directory.
SENSITIVE_HOST_PATHS = (
    "/",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/root",
    "/boot",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "~/.ssh",
    "~/.aws",
    "~/.kube",
    "~/.docker",
    "~/.gnupg",
    "~/.config/gcloud",
)
DOCKER_SOCKET_PATHS = frozenset({"/run/docker.sock", "/var/run/docker.sock"})
#: Where home directories live, for the ``~`` entries above.
HOME_ROOTS = ("/home", "/root", "/Users")

#: Where a container's embedded DNS (127.0.0.11) forwards names it does not know. Docker < 26
#: forwards them even for containers on internal networks (CVE-2024-29018): from the container's
#: namespace, or from the host's when the host's resolver is on loopback, so a lookup is a channel
#: out. The container's own loopback, where nothing of the stack listens, keeps every query inside
#: the container: names outside the stack resolve nowhere (docs/network-boundary.md).
CONTAINER_DNS_UPSTREAM = ("127.0.0.1",)
#: The one role that resolves names outside the stack (squid connects to allowlisted names).
ROLES_WITH_OUTSIDE_DNS = frozenset({Role.EGRESS_GATEWAY.value})

MUTABLE_TAGS = frozenset({"latest", "stable", "main", "master", "nightly", "edge"})
