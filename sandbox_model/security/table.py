"""The rule table: every rule of the security model, its CIS id, what it forbids, why, the fix and its check.

Every rule has an id (which says what it forbids), the CIS Docker Benchmark
recommendation it implements (where one exists), what it forbids, why, and how
to fix a violation. Each scope has its own kind of rule, so a rule's check
signature is visible in its type:

- :class:`ContainerRule`: ``check(spec, ctx) -> [problem]`` (:mod:`.rules_container`),
- :class:`StackRule`: ``check(containers, networks, ctx) -> [StackFinding]`` (:mod:`.rules_stack`),
- :class:`ResourceRule`: ``check(reference) -> problem | None`` (:mod:`.rules_resource`),
- :class:`ImageRule`: no check in the kernel; the image tests named by ``checked_in`` judge the built images.

The policy pack (``policies/``) turns every container, stack and resource rule into
a policy, the runtime tests (``tests/stack``) run the same checks on a running
engine through :mod:`sandbox_model.security.runner`, and scripts/policy-table
prints this table into the README. Nothing else restates a rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from sandbox_model.security import rules_container as C
from sandbox_model.security import rules_resource as R
from sandbox_model.security import rules_stack as S
from sandbox_model.security.baseline import (
    CONTAINER_DNS_UPSTREAM,
    LOG_DRIVER,
    LOG_OPTS,
    NO_NEW_PRIVILEGES,
    RESTART_MAX_RETRIES,
    RESTART_POLICY,
)
from sandbox_model.security.rules_container import ContainerCheck
from sandbox_model.security.rules_resource import ResourceCheck
from sandbox_model.security.rules_stack import StackCheck
from sandbox_model.topology import INTERNAL_NETWORK_OPTIONS


class Scope(str, Enum):
    CONTAINER = "container"  # one container's settings
    STACK = "stack"  # containers and networks together
    IMAGE = "image"  # a built image (checked by the image and runtime tests)
    RESOURCE = "resource"  # an image resource's reference


@dataclass(frozen=True)
class Rule:
    """What every rule states; its kind (a subclass per scope) adds the check of that scope."""

    scope: ClassVar[Scope]

    id: str
    cis: str | None
    forbids: str
    reason: str
    fix: str

    def message(self, subject: str, problem: str) -> str:
        cis = f" [CIS {self.cis}]" if self.cis else ""
        return f"{subject}: {problem}. Fix: {self.fix}{cis}"


@dataclass(frozen=True)
class ContainerRule(Rule):
    scope: ClassVar[Scope] = Scope.CONTAINER
    check: ContainerCheck


@dataclass(frozen=True)
class StackRule(Rule):
    scope: ClassVar[Scope] = Scope.STACK
    check: StackCheck


@dataclass(frozen=True)
class ResourceRule(Rule):
    scope: ClassVar[Scope] = Scope.RESOURCE
    check: ResourceCheck


@dataclass(frozen=True)
class ImageRule(Rule):
    scope: ClassVar[Scope] = Scope.IMAGE
    #: The test module that judges the built images (the kernel cannot see inside an image).
    checked_in: str


#: Where the image rules are checked.
IMAGE_TESTS = "tests/image/test_images.py"

RULES: tuple[Rule, ...] = (
    ContainerRule(
        "no-privileged",
        "5.4",
        "privileged containers",
        "a privileged container has every capability and every device: it is root on the host",
        "remove privileged=True",
        C.check_privileged,
    ),
    ContainerRule(
        "capabilities-dropped",
        "5.3",
        "keeping Linux capabilities beyond the role's allowlist",
        "capabilities are root's powers split up; a sandbox role needs none of them",
        "set capabilities.drops=['ALL'] and add only what ROLE_CAPABILITIES allows the role",
        C.check_capabilities,
    ),
    ContainerRule(
        "read-only-root",
        "5.12",
        "a writable root filesystem",
        "a read-only root keeps what runs from changing the image's programs and leaving files behind",
        "set read_only=True and give tmpfs mounts only where the role must write",
        C.check_read_only,
    ),
    ContainerRule(
        "no-new-privileges",
        "5.25",
        "gaining privileges through setuid/setgid or file capabilities",
        "no-new-privileges makes every exec keep at most the privileges it already has",
        f"add {NO_NEW_PRIVILEGES!r} to security_opts",
        C.check_no_new_privileges,
    ),
    ContainerRule(
        "seccomp-confined",
        "5.21",
        "running without the project's seccomp profile (or unconfined)",
        "seccomp removes kernel attack surface; the executor runs untrusted code, so it gets the strict profile",
        "add 'seccomp=<the JSON text of images/seccomp/<profile>.json>' to security_opts "
        "(the executor: images/seccomp/executor.json)",
        C.check_seccomp,
    ),
    ContainerRule(
        "apparmor-not-unconfined",
        "5.1",
        "disabling AppArmor",
        "where the host has AppArmor, its default profile is another layer a container must not remove",
        "remove 'apparmor=unconfined' from security_opts",
        C.check_apparmor,
    ),
    ContainerRule(
        "non-root-user",
        "4.1",
        "running as root (no user, 0, root, or group 0)",
        "root in a container is root on the host's files it can reach and the first step of every escape",
        "set user to a non-root 'uid:gid' (the stack's settings give each role one)",
        C.check_non_root,
    ),
    ContainerRule(
        "no-host-network",
        "5.9",
        "sharing the host's network namespace",
        "the host network bypasses every network boundary of the stack",
        "set network_mode='bridge' with networks_advanced naming the stack's networks",
        C.check_host_network,
    ),
    ContainerRule(
        "no-host-pid",
        "5.15",
        "sharing the host's (or another container's) PID namespace",
        "processes of the host become visible and signalable",
        "remove pid_mode",
        C.check_host_pid,
    ),
    ContainerRule(
        "no-host-ipc",
        "5.16",
        "sharing the host's (or another container's) IPC namespace",
        "shared memory of the host becomes readable",
        "remove ipc_mode (private is the default)",
        C.check_host_ipc,
    ),
    ContainerRule(
        "no-host-uts",
        "5.20",
        "sharing the host's UTS namespace",
        "the container could change the host's hostname",
        "remove the UTS mode",
        C.check_host_uts,
    ),
    ContainerRule(
        "no-host-userns",
        "5.30",
        "sharing the host's user namespace when the daemon remaps users",
        "userns=host undoes the daemon's user remapping",
        "remove userns_mode",
        C.check_host_userns,
    ),
    ContainerRule(
        "no-host-cgroupns",
        None,
        "sharing the host's cgroup namespace",
        "the host's cgroup tree shows every container and service on the host",
        "set cgroupns_mode='private' (the helper does; Docker's default on cgroup v1 hosts is 'host')",
        C.check_host_cgroupns,
    ),
    ContainerRule(
        "system-paths-masked",
        None,
        "unmasking /proc and /sys paths (systempaths=unconfined)",
        "the masked paths expose kernel knobs and information about the host",
        "remove 'systempaths=unconfined' from security_opts",
        C.check_system_paths,
    ),
    ContainerRule(
        "no-default-bridge",
        "5.29",
        "running on Docker's default bridge (docker0)",
        "docker0 joins every unconfigured container and routes to the outside",
        "keep network_mode='bridge' only together with networks_advanced (the provider then leaves docker0)",
        C.check_default_bridge,
    ),
    ContainerRule(
        "loopback-ports-only",
        "5.13",
        "publishing a port on a non-loopback host address",
        "a port on 0.0.0.0 is reachable from the network; the sandbox is for the local user only",
        "set ports[].ip to '127.0.0.1' and publish_all_ports=False",
        C.check_ports,
    ),
    ContainerRule(
        "no-docker-socket",
        "5.31",
        "mounting the Docker socket",
        "the Docker socket is root on the host",
        "remove the mount of docker.sock",
        C.check_docker_socket,
    ),
    ContainerRule(
        "no-sensitive-host-mounts",
        "5.5",
        "mounting sensitive host paths (bind or volume)",
        "system directories, the Docker data dir and credential directories must not be reachable",
        "mount only the project (and optional shared) directory and the model cache",
        C.check_sensitive_mounts,
    ),
    ContainerRule(
        "no-shared-mount-propagation",
        "5.19",
        "shared mount propagation",
        "shared propagation lets mounts made in the container appear on the host",
        "leave bind propagation at its private default",
        C.check_propagation,
    ),
    ContainerRule(
        "executor-mounts-read-only",
        None,
        "executors with a writable host mount",
        "a job could plant files in the project (code the agent or the user runs later) or on the host",
        "mount the project into executors with read_only=True; jobs write only to their tmpfs",
        C.check_executor_mounts_read_only,
    ),
    ContainerRule(
        "devices-only-for-model",
        "5.17",
        "host devices for any role but the model server",
        "a device node is direct access to host hardware",
        "remove devices from this container",
        C.check_devices,
    ),
    ContainerRule(
        "gpus-only-for-model",
        None,
        "GPU requests for any role but the model server",
        "the GPU driver is a large kernel surface; only vLLM needs it",
        "remove device_requests/gpus from this container",
        C.check_gpus,
    ),
    ContainerRule(
        "no-sysctls",
        None,
        "setting kernel parameters (sysctls)",
        "namespaced sysctls can still weaken the network stack (e.g. unprivileged ports, ping)",
        "remove sysctls",
        C.check_sysctls,
    ),
    ContainerRule(
        "no-outside-dns",
        None,
        "any role but the egress gateway resolving names outside the stack",
        "Docker's embedded DNS forwards unknown names even from internal networks (CVE-2024-29018): "
        "every lookup would be a way out past the egress gateway",
        f"set dns={list(CONTAINER_DNS_UPSTREAM)} (components.hardening does for every role but the egress gateway)",
        C.check_dns,
    ),
    ContainerRule(
        "memory-limited",
        "5.10",
        "running without a memory limit",
        "one runaway process must not take the host's memory",
        "set memory (MB)",
        C.check_memory,
    ),
    ContainerRule(
        "cpu-limited",
        "5.11",
        "running without a CPU limit",
        "one busy container must not starve the host",
        "set cpus",
        C.check_cpu,
    ),
    ContainerRule(
        "nproc-limited",
        "5.28",
        "running without a process-count limit",
        "a fork bomb must stop at a limit (pulumi-docker has no pids_limit, so the nproc ulimit is it)",
        "add a ulimit {name: 'nproc', soft: N, hard: N}",
        C.check_nproc,
    ),
    ContainerRule(
        "log-rotation",
        None,
        "logs without rotation",
        "an unrotated json log fills the host's disk",
        f"set log_driver={LOG_DRIVER!r} and log_opts {LOG_OPTS}",
        C.check_log_rotation,
    ),
    ContainerRule(
        "healthcheck-defined",
        "5.26",
        "long-running containers without a healthcheck",
        "health is how Docker, Pulumi (wait) and our checks know a role works",
        "set healthcheck.tests",
        C.check_healthcheck,
    ),
    ContainerRule(
        "restart-policy-bounded",
        "5.14",
        "restart policies other than on-failure with at most 5 retries",
        "a crash loop must stop instead of hiding a failure (or an attack) forever",
        f"set restart={RESTART_POLICY!r} and max_retry_count={RESTART_MAX_RETRIES}",
        C.check_restart,
    ),
    ContainerRule(
        "role-labelled",
        None,
        "containers without the stack and role labels",
        "users and every check find containers by opencode-sandbox.stack and opencode-sandbox.role",
        "create the container through components.hardening (it sets both labels)",
        C.check_labels,
    ),
    ResourceRule(
        "image-pinned",
        None,
        "images on a mutable tag (latest, or no tag)",
        "a mutable tag can change what runs without any change to the stack",
        "pin the image by digest (name@sha256:...) or a fixed version tag, or build it from images/",
        R.image_reference_problem,
    ),
    StackRule(
        "non-gateways-on-internal-networks-only",
        None,
        "any role but a gateway joining a non-internal network",
        "internal networks have no route out; only the audited gateways cross the boundary",
        "join the model, model gateway, workspace and executor roles to internal networks only",
        S.check_internal_only,
    ),
    StackRule(
        "executor-isolated-from-model",
        None,
        "an executor sharing a network with the model server or the model gateway",
        "code the agent generates must reach nothing but the workspace's calls (the model gateway would add the "
        "model API key to its requests)",
        "keep executors on the executor network only",
        S.check_executor_model,
    ),
    StackRule(
        "internal-networks-unaddressed",
        None,
        "internal networks whose bridge has a host address",
        "the host answers on the bridge's gateway address (and on all its others) to any container on the "
        "network: every service listening on the host would be reachable from the sandbox",
        f"create internal networks with options {dict(INTERNAL_NETWORK_OPTIONS)} (components.networks does)",
        S.check_internal_unaddressed,
    ),
    StackRule(
        "network-peers-as-designed",
        None,
        "roles sharing a network that the design does not connect",
        "each network exists for one path (sandbox_model.topology.NETWORKS): the workspace reaches the model only "
        "through the model gateway, which alone holds the key, and the executors and the gateways only on their own "
        "networks",
        "attach containers only to the networks components.networks gives their role",
        S.check_network_peers,
    ),
    ImageRule(
        "no-setuid-binaries",
        "4.8",
        "setuid/setgid binaries in the images",
        "with no-new-privileges they are inert, but stripping them removes the attack surface entirely",
        "strip setuid/setgid bits in the Dockerfile (find / -xdev -perm /6000 -exec chmod ug-s {} +)",
        IMAGE_TESTS,
    ),
    ImageRule(
        "image-healthcheck",
        "4.6",
        "images without a HEALTHCHECK",
        "an image that says how to check it is healthy can be checked wherever it runs",
        "add a HEALTHCHECK instruction to the Dockerfile",
        IMAGE_TESTS,
    ),
)

RULES_BY_ID: Mapping[str, Rule] = {rule.id: rule for rule in RULES}
CONTAINER_RULES: tuple[ContainerRule, ...] = tuple(rule for rule in RULES if isinstance(rule, ContainerRule))
STACK_RULES: tuple[StackRule, ...] = tuple(rule for rule in RULES if isinstance(rule, StackRule))
