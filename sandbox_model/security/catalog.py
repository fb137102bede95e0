"""The security model of opencode-sandbox, stated once.

Every rule has an id, the CIS Docker Benchmark recommendation it implements
(where one exists), what it forbids, why, and how to fix a violation. The
hardening helper (``components/hardening.py``) builds containers from the
constants below, the policy pack (``policies/``) turns every container/network/
stack rule into a policy, and the runtime checks (``tests/stack``) run the
same checks against a running engine. Nothing else restates a rule.

Checks read the normalized :mod:`sandbox_model.security.spec` view. A field that
cannot be known yet (:data:`UNKNOWN`, during a preview) is never a violation:
the same check runs again when the value is known.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import PurePosixPath
from typing import Callable, Iterable, Mapping, Sequence

from sandbox_model.naming import LABEL_ROLE, LABEL_STACK
from sandbox_model.roles import ALL_ROLES, Role
from sandbox_model.security.spec import UNKNOWN, ContainerSpec, NetworkSpec, is_unknown
from sandbox_model.topology import GATEWAY_ROLES, INTENDED_NETWORK_PEERS, INTERNAL_NETWORK_OPTIONS, MODEL_ROLES


# --- Values the hardening helper applies and the checks expect -------------------------------

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


# --- Rules ------------------------------------------------------------------------------------


class Scope(str, Enum):
    CONTAINER = "container"  # one container's settings
    STACK = "stack"  # containers and networks together
    IMAGE = "image"  # a built image (checked by the image and runtime tests)
    RESOURCE = "resource"  # an image resource's reference


@dataclass(frozen=True)
class CheckContext:
    """What a check needs besides the container: the project's seccomp profiles and exemptions."""

    seccomp_profiles: Mapping[str, str] = field(default_factory=dict)  # name -> JSON text
    exempt_roles: Mapping[str, frozenset[str]] = field(default_factory=dict)  # rule id -> roles

    def is_exempt(self, rule_id: str, role: str | None) -> bool:
        roles = self.exempt_roles.get(rule_id, frozenset())
        if is_unknown(role):
            return bool(roles)  # it may be an exempt role: judged again once the labels are known
        return role is not None and role in roles


@dataclass(frozen=True)
class Rule:
    id: str
    cis: str | None
    forbids: str
    reason: str
    fix: str
    scope: Scope
    check: Callable | None = None

    def message(self, subject: str, problem: str) -> str:
        cis = f" [CIS {self.cis}]" if self.cis else ""
        return f"{subject}: {problem}. Fix: {self.fix}{cis}"


def _opts(spec: ContainerSpec, prefix: str) -> list[str]:
    if is_unknown(spec.security_opts):
        return []
    return [opt.split("=", 1)[1] if "=" in opt else opt.split(":", 1)[1] for opt in spec.security_opts
            if opt.startswith(prefix + "=") or opt.startswith(prefix + ":")]


def _check_privileged(spec, ctx):
    return ["runs privileged"] if spec.privileged is True else []


def _check_capabilities(spec, ctx):
    problems = []
    if not is_unknown(spec.cap_drop) and "ALL" not in {c.upper() for c in spec.cap_drop}:
        problems.append(f"does not drop ALL capabilities (drops {sorted(spec.cap_drop) or 'none'})")
    if not is_unknown(spec.cap_add) and not is_unknown(spec.role):
        allowed = ROLE_CAPABILITIES.get(spec.role or "", {})
        extra = sorted({_cap_name(c) for c in spec.cap_add} - {_cap_name(c) for c in allowed})
        if extra:
            problems.append(f"adds capabilities {extra} that role {spec.role!r} is not allowed")
    return problems


def _cap_name(cap: str) -> str:
    cap = cap.upper()
    return cap[4:] if cap.startswith("CAP_") else cap


def _check_read_only(spec, ctx):
    return [] if is_unknown(spec.read_only_root) or spec.read_only_root is True else [
        "root filesystem is writable"]


def _check_no_new_privileges(spec, ctx):
    if is_unknown(spec.security_opts):
        return []
    values = [v.strip().lower() for v in _opts(spec, "no-new-privileges")]
    bare = "no-new-privileges" in spec.security_opts
    return [] if bare or "true" in values else ["no-new-privileges is not set"]


def _normalized_json(text: str):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _check_seccomp(spec, ctx):
    if is_unknown(spec.security_opts):
        return []
    profiles = _opts(spec, "seccomp")
    if not profiles:
        return ["has no seccomp profile (Docker's default only applies implicitly; declare one)"]
    profile = profiles[-1]
    if profile.strip().lower() == "unconfined":
        return ["runs with seccomp=unconfined"]
    role = spec.role
    if profile.strip() == BUILTIN_SECCOMP:
        if is_unknown(role) or role in ROLES_ALLOWED_BUILTIN_SECCOMP:
            return []
        return [f"role {role!r} must run under the project's profile, not Docker's builtin one"]
    if role == Role.EXECUTOR.value:
        expected = ctx.seccomp_profiles.get(ROLE_SECCOMP_PROFILE[role])
        if expected is not None and _normalized_json(profile) != _normalized_json(expected):
            return ["the executor does not run under the project's strict profile images/seccomp/executor.json"]
    if _normalized_json(profile) is None:
        return ["seccomp profile is not inline JSON (pass the profile's content, not a path)"]
    return []


def _check_apparmor(spec, ctx):
    return ["runs with apparmor=unconfined"] if any(
        v.strip().lower() == "unconfined" for v in _opts(spec, "apparmor")) else []


def _check_non_root(spec, ctx):
    user = spec.user
    if is_unknown(user):
        return []
    if not user:
        return ["has no user set, so it runs as the image's user (root unless the image says otherwise)"]
    uid, _, gid = str(user).partition(":")
    if uid.strip() in {"0", "root", ""}:
        return [f"runs as user {user!r}"]
    if gid.strip() in {"0", "root"}:
        return [f"runs with group {gid!r} (root)"]
    if not is_unknown(spec.group_add):
        root_groups = sorted(g for g in spec.group_add if str(g).strip() in {"0", "root"})
        if root_groups:
            return [f"adds the supplementary group {root_groups[0]!r} (root)"]
    return []


def _host_namespace_check(attr: str, what: str):
    def check(spec, ctx):
        mode = getattr(spec, attr)
        if is_unknown(mode) or not mode:
            return []
        mode = str(mode).lower()
        if mode == "host":
            return [f"shares the host's {what} namespace"]
        if mode.startswith("container:"):
            return [f"joins another container's {what} namespace ({mode})"]
        return []

    return check


def _check_system_paths(spec, ctx):
    return ["unmasks the kernel's system paths (systempaths=unconfined)"] if any(
        v.strip().lower() == "unconfined" for v in _opts(spec, "systempaths")) else []


def _check_default_bridge(spec, ctx):
    if is_unknown(spec.network_mode) or is_unknown(spec.networks):
        return []
    mode = (spec.network_mode or "bridge").lower()
    # pulumi-docker starts a container in network_mode and, when networks_advanced is given,
    # disconnects it from the default bridge before starting it: that is the only safe use of it.
    if mode in {"bridge", "default"} and not spec.networks:
        return ["would run on Docker's default bridge network (docker0)"]
    if "bridge" in spec.networks:
        return ["joins Docker's default bridge network (docker0)"]
    return []


def _check_ports(spec, ctx):
    problems = []
    if spec.publish_all_ports is True:
        problems.append("publishes all exposed ports")
    if not is_unknown(spec.ports):
        for port in spec.ports:
            if is_unknown(port.host_ip):
                continue
            if not is_loopback_address(port.host_ip or ""):
                shown = port.host_ip or "0.0.0.0 (all interfaces)"
                problems.append(f"publishes container port {port.container_port} on {shown}")
    return problems


def _home_relative(path: PurePosixPath) -> PurePosixPath | None:
    """/home/alice/.ssh -> ~/.ssh, /home -> ~ (all homes); None outside home directories."""
    for root in map(PurePosixPath, HOME_ROOTS):
        if path == root:
            return PurePosixPath("~")
        if root in path.parents:
            rest = path.relative_to(root).parts
            if root != PurePosixPath("/root"):
                rest = rest[1:]  # drop the user name
            return PurePosixPath("~", *rest)
    return None


def _overlaps(a: PurePosixPath, b: PurePosixPath) -> bool:
    """One path is the other or contains it (mounting either exposes the other)."""
    return a == b or a in b.parents or b in a.parents


def _host_paths(spec) -> Iterable[tuple[str, PurePosixPath]]:
    if is_unknown(spec.mounts):
        return
    for mount in spec.mounts:
        path = mount.source if mount.kind == "bind" else mount.volume_host_path
        if path and not is_unknown(path):
            yield mount.target, PurePosixPath(path)


def sensitive_host_path(path: str | PurePosixPath) -> str | None:
    """The sensitive path a host path exposes (is, lies in, or contains), or None."""
    path = PurePosixPath(path)
    home_path = _home_relative(path)
    for sensitive in SENSITIVE_HOST_PATHS:
        if sensitive == "/":
            if path == PurePosixPath("/"):
                return sensitive
        elif sensitive.startswith("~"):
            if home_path is not None and _overlaps(home_path, PurePosixPath(sensitive)):
                return sensitive
        elif _overlaps(path, PurePosixPath(sensitive)):
            return sensitive
    return None


def sensitive_volume_problem(host_path: str) -> str | None:
    """Why a `local` volume bound to this host path is forbidden (it is a bind mount in disguise), or None."""
    sensitive = sensitive_host_path(host_path)
    return None if sensitive is None else f"binds host path {host_path} (sensitive: {sensitive})"


def _check_docker_socket(spec, ctx):
    return [f"mounts the Docker socket {path} at {target}" for target, path in _host_paths(spec)
            if str(path) in DOCKER_SOCKET_PATHS or path.name == "docker.sock"]


def _check_sensitive_mounts(spec, ctx):
    problems = []
    for target, path in _host_paths(spec):
        if str(path) in DOCKER_SOCKET_PATHS:
            continue  # reported by no-docker-socket
        match = sensitive_host_path(path)
        if match:
            problems.append(f"mounts host path {path} (sensitive: {match}) at {target}")
    return problems


def _check_executor_mounts_read_only(spec, ctx):
    if spec.role != Role.EXECUTOR.value or is_unknown(spec.mounts):
        return []
    return [f"{m.kind} mount at {m.target} is writable" for m in spec.mounts
            if m.kind in ("bind", "volume") and not is_unknown(m.read_only) and m.read_only is not True]


def _check_propagation(spec, ctx):
    if is_unknown(spec.mounts):
        return []
    return [f"mount at {m.target} uses {m.propagation} propagation" for m in spec.mounts
            if m.propagation in {"shared", "rshared"}]


def _check_devices(spec, ctx):
    if is_unknown(spec.devices) or not spec.devices or is_unknown(spec.role) or spec.role in DEVICE_ROLES:
        return []
    return [f"is given host devices {list(spec.devices)} though role {spec.role!r} may not have any"]


def _check_gpus(spec, ctx):
    if spec.gpu_requested is True and not is_unknown(spec.role) and spec.role not in DEVICE_ROLES:
        return [f"requests GPUs though role {spec.role!r} may not"]
    return []


def _check_sysctls(spec, ctx):
    if is_unknown(spec.sysctls) or not spec.sysctls:
        return []
    return [f"sets kernel parameters {sorted(spec.sysctls)}"]


def _check_dns(spec, ctx):
    if is_unknown(spec.dns) or is_unknown(spec.labels) or spec.role in ROLES_WITH_OUTSIDE_DNS:
        return []
    if tuple(spec.dns) != CONTAINER_DNS_UPSTREAM:
        return [f"its embedded DNS forwards unknown names to {list(spec.dns) or 'the host resolvers'}, "
                f"not only to {list(CONTAINER_DNS_UPSTREAM)}"]
    return []


def _check_memory(spec, ctx):
    value = spec.memory_bytes
    return [] if is_unknown(value) or (value or 0) > 0 else ["has no memory limit"]


def _check_cpu(spec, ctx):
    value = spec.nano_cpus
    return [] if is_unknown(value) or (value or 0) > 0 else ["has no CPU limit"]


def _check_nproc(spec, ctx):
    value = spec.nproc_limit
    return [] if is_unknown(value) or (value or 0) > 0 else ["has no nproc ulimit (the process-count limit)"]


def _check_log_rotation(spec, ctx):
    if is_unknown(spec.log_driver) or is_unknown(spec.log_opts):
        return []
    problems = []
    if spec.log_driver != LOG_DRIVER:
        problems.append(f"logs with driver {spec.log_driver!r}, not {LOG_DRIVER}")
    missing = [key for key in LOG_OPTS if not is_unknown(spec.log_opts.get(key)) and not spec.log_opts.get(key)]
    if missing:
        problems.append(f"log rotation options {missing} are not set")
    return problems


def _check_healthcheck(spec, ctx):
    test = spec.healthcheck
    if is_unknown(test):
        return []
    if not test or (len(test) and str(test[0]).upper() == "NONE"):
        return ["has no healthcheck"]
    return []


def _check_restart(spec, ctx):
    if is_unknown(spec.restart) or is_unknown(spec.restart_max_retries):
        return []
    if spec.restart != RESTART_POLICY or int(spec.restart_max_retries or 0) != RESTART_MAX_RETRIES:
        return [f"restart policy is {spec.restart!r} (max {spec.restart_max_retries}), "
                f"not {RESTART_POLICY} with at most {RESTART_MAX_RETRIES} retries"]
    return []


def _check_labels(spec, ctx):
    if is_unknown(spec.labels):
        return []
    problems = []
    if not spec.labels.get(LABEL_STACK):
        problems.append(f"has no {LABEL_STACK} label")
    role = spec.labels.get(LABEL_ROLE)
    if role not in ALL_ROLES:
        problems.append(f"has {LABEL_ROLE}={role!r}, not one of {sorted(ALL_ROLES)}")
    return problems


def image_reference_problem(reference: str) -> str | None:
    """Why an image reference is mutable, or None when it is pinned (digest or fixed tag)."""
    if "@sha256:" in reference or reference.startswith("sha256:"):
        return None
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {reference!r} has no tag (that means :latest)"
    tag = last.rsplit(":", 1)[1]
    if tag.lower() in MUTABLE_TAGS:
        return f"image {reference!r} is on the mutable tag {tag!r}"
    return None


# Stack-level checks take every container and network of the stack and return
# (subject, problem, roles involved); an exemption of any involved role silences the finding.

def _shared_networks(containers: Sequence[ContainerSpec]) -> dict[str, list[ContainerSpec]]:
    members: dict[str, list[ContainerSpec]] = {}
    for spec in containers:
        if is_unknown(spec.networks):
            continue
        for name in spec.networks:
            if not is_unknown(name):
                members.setdefault(name, []).append(spec)
    return members


def _check_internal_only(containers, networks: Mapping[str, NetworkSpec], ctx):
    problems = []
    for name, members in _shared_networks(containers).items():
        net = networks.get(name)
        if net is None or is_unknown(net.internal) or net.internal is True:
            continue
        for spec in members:
            if not is_unknown(spec.role) and spec.role not in GATEWAY_ROLES:
                problems.append((spec.name, f"role {spec.role!r} joins the non-internal network {name!r}, "
                                            "which routes to the outside", {spec.role}))
    return problems


#: What an executor must never share a network with: the model server, and the model gateway,
#: which would add the model API key to whatever code in an executor sent it.


def _check_executor_model(containers, networks, ctx):
    problems = []
    for name, members in _shared_networks(containers).items():
        roles = {spec.role for spec in members}
        model_roles = roles & MODEL_ROLES
        if Role.EXECUTOR.value in roles and model_roles:
            what = " and ".join(sorted(model_roles))
            problems.append((name, f"an executor and the {what} share this network, so code the agent runs "
                                   "could call the model directly", {Role.EXECUTOR.value, *model_roles}))
    return problems


def _check_internal_unaddressed(containers, networks: Mapping[str, NetworkSpec], ctx):
    problems = []
    members = _shared_networks(containers)
    for name, net in networks.items():
        if is_unknown(net.internal) or net.internal is not True or is_unknown(net.options):
            continue
        values = {key: net.options.get(key) for key in INTERNAL_NETWORK_OPTIONS}
        if any(is_unknown(value) for value in values.values()):
            continue
        missing = {key: value for key, value in INTERNAL_NETWORK_OPTIONS.items() if values[key] != value}
        if missing:
            roles = {spec.role for spec in members.get(name, [])}
            problems.append((name, f"the internal network's bridge has a host address (options lack {missing}), "
                                   "so its containers reach the host's services", roles))
    return problems


def _check_network_peers(containers, networks, ctx):
    problems = []
    # Reported by executor-isolated-from-model.
    executor_model = {frozenset({Role.EXECUTOR.value, role}) for role in MODEL_ROLES}
    for name, members in _shared_networks(containers).items():
        roles = sorted({spec.role or "unlabelled" for spec in members if not is_unknown(spec.role)})
        for i, first in enumerate(roles):
            for second in roles[i + 1:]:
                pair = frozenset({first, second})
                if pair not in INTENDED_NETWORK_PEERS and pair not in executor_model:
                    problems.append((name, f"roles {first!r} and {second!r} share this network", set(pair)))
    return problems


RULES: tuple[Rule, ...] = (
    Rule("no-privileged", "5.4", "privileged containers",
         "a privileged container has every capability and every device: it is root on the host",
         "remove privileged=True", Scope.CONTAINER, _check_privileged),
    Rule("capabilities-dropped", "5.3", "keeping Linux capabilities beyond the role's allowlist",
         "capabilities are root's powers split up; a sandbox role needs none of them",
         "set capabilities.drops=['ALL'] and add only what ROLE_CAPABILITIES allows the role",
         Scope.CONTAINER, _check_capabilities),
    Rule("read-only-root", "5.12", "a writable root filesystem",
         "a read-only root keeps what runs from changing the image's programs and leaving files behind",
         "set read_only=True and give tmpfs mounts only where the role must write", Scope.CONTAINER,
         _check_read_only),
    Rule("no-new-privileges", "5.25", "gaining privileges through setuid/setgid or file capabilities",
         "no-new-privileges makes every exec keep at most the privileges it already has",
         f"add {NO_NEW_PRIVILEGES!r} to security_opts", Scope.CONTAINER, _check_no_new_privileges),
    Rule("seccomp-confined", "5.21", "running without the project's seccomp profile (or unconfined)",
         "seccomp removes kernel attack surface; the executor runs untrusted code, so it gets the strict profile",
         "add 'seccomp=<the JSON text of images/seccomp/<profile>.json>' to security_opts "
         "(the executor: images/seccomp/executor.json)", Scope.CONTAINER, _check_seccomp),
    Rule("apparmor-not-unconfined", "5.1", "disabling AppArmor",
         "where the host has AppArmor, its default profile is another layer a container must not remove",
         "remove 'apparmor=unconfined' from security_opts", Scope.CONTAINER, _check_apparmor),
    Rule("non-root-user", "4.1", "running as root (no user, 0, root, or group 0)",
         "root in a container is root on the host's files it can reach and the first step of every escape",
         "set user to a non-root 'uid:gid' (the stack's settings give each role one)", Scope.CONTAINER,
         _check_non_root),
    Rule("no-host-network", "5.9", "sharing the host's network namespace",
         "the host network bypasses every network boundary of the stack",
         "set network_mode='bridge' with networks_advanced naming the stack's networks", Scope.CONTAINER,
         _host_namespace_check("network_mode", "network")),
    Rule("no-host-pid", "5.15", "sharing the host's (or another container's) PID namespace",
         "processes of the host become visible and signalable", "remove pid_mode", Scope.CONTAINER,
         _host_namespace_check("pid_mode", "PID")),
    Rule("no-host-ipc", "5.16", "sharing the host's (or another container's) IPC namespace",
         "shared memory of the host becomes readable", "remove ipc_mode (private is the default)",
         Scope.CONTAINER, _host_namespace_check("ipc_mode", "IPC")),
    Rule("no-host-uts", "5.20", "sharing the host's UTS namespace",
         "the container could change the host's hostname", "remove the UTS mode", Scope.CONTAINER,
         _host_namespace_check("uts_mode", "UTS")),
    Rule("no-host-userns", "5.30", "sharing the host's user namespace when the daemon remaps users",
         "userns=host undoes the daemon's user remapping", "remove userns_mode", Scope.CONTAINER,
         _host_namespace_check("userns_mode", "user")),
    Rule("no-host-cgroupns", None, "sharing the host's cgroup namespace",
         "the host's cgroup tree shows every container and service on the host",
         "set cgroupns_mode='private' (the helper does; Docker's default on cgroup v1 hosts is 'host')",
         Scope.CONTAINER, _host_namespace_check("cgroupns_mode", "cgroup")),
    Rule("system-paths-masked", None, "unmasking /proc and /sys paths (systempaths=unconfined)",
         "the masked paths expose kernel knobs and information about the host",
         "remove 'systempaths=unconfined' from security_opts", Scope.CONTAINER, _check_system_paths),
    Rule("no-default-bridge", "5.29", "running on Docker's default bridge (docker0)",
         "docker0 joins every unconfigured container and routes to the outside",
         "keep network_mode='bridge' only together with networks_advanced (the provider then leaves docker0)",
         Scope.CONTAINER, _check_default_bridge),
    Rule("loopback-ports-only", "5.13", "publishing a port on a non-loopback host address",
         "a port on 0.0.0.0 is reachable from the network; the sandbox is for the local user only",
         "set ports[].ip to '127.0.0.1' and publish_all_ports=False", Scope.CONTAINER, _check_ports),
    Rule("no-docker-socket", "5.31", "mounting the Docker socket",
         "the Docker socket is root on the host", "remove the mount of docker.sock", Scope.CONTAINER,
         _check_docker_socket),
    Rule("no-sensitive-host-mounts", "5.5", "mounting sensitive host paths (bind or volume)",
         "system directories, the Docker data dir and credential directories must not be reachable",
         "mount only the project (and optional shared) directory and the model cache",
         Scope.CONTAINER, _check_sensitive_mounts),
    Rule("no-shared-mount-propagation", "5.19", "shared mount propagation",
         "shared propagation lets mounts made in the container appear on the host",
         "leave bind propagation at its private default", Scope.CONTAINER, _check_propagation),
    Rule("executor-mounts-read-only", None, "executors with a writable host mount",
         "a job could plant files in the project (code the agent or the user runs later) or on the host",
         "mount the project into executors with read_only=True; jobs write only to their tmpfs",
         Scope.CONTAINER, _check_executor_mounts_read_only),
    Rule("devices-only-for-model", "5.17", "host devices for any role but the model server",
         "a device node is direct access to host hardware", "remove devices from this container",
         Scope.CONTAINER, _check_devices),
    Rule("gpus-only-for-model", None, "GPU requests for any role but the model server",
         "the GPU driver is a large kernel surface; only vLLM needs it",
         "remove device_requests/gpus from this container", Scope.CONTAINER, _check_gpus),
    Rule("no-sysctls", None, "setting kernel parameters (sysctls)",
         "namespaced sysctls can still weaken the network stack (e.g. unprivileged ports, ping)",
         "remove sysctls", Scope.CONTAINER, _check_sysctls),
    Rule("no-outside-dns", None, "any role but the egress gateway resolving names outside the stack",
         "Docker's embedded DNS forwards unknown names even from internal networks (CVE-2024-29018): "
         "every lookup would be a way out past the egress gateway",
         f"set dns={list(CONTAINER_DNS_UPSTREAM)} (components.hardening does for every role but the "
         "egress gateway)", Scope.CONTAINER, _check_dns),
    Rule("memory-limited", "5.10", "running without a memory limit",
         "one runaway process must not take the host's memory", "set memory (MB)", Scope.CONTAINER,
         _check_memory),
    Rule("cpu-limited", "5.11", "running without a CPU limit",
         "one busy container must not starve the host", "set cpus", Scope.CONTAINER, _check_cpu),
    Rule("nproc-limited", "5.28", "running without a process-count limit",
         "a fork bomb must stop at a limit (pulumi-docker has no pids_limit, so the nproc ulimit is it)",
         "add a ulimit {name: 'nproc', soft: N, hard: N}", Scope.CONTAINER, _check_nproc),
    Rule("log-rotation", None, "logs without rotation",
         "an unrotated json log fills the host's disk", f"set log_driver={LOG_DRIVER!r} and log_opts {LOG_OPTS}",
         Scope.CONTAINER, _check_log_rotation),
    Rule("healthcheck-defined", "5.26", "long-running containers without a healthcheck",
         "health is how Docker, Pulumi (wait) and our checks know a role works", "set healthcheck.tests",
         Scope.CONTAINER, _check_healthcheck),
    Rule("restart-policy-bounded", "5.14", "restart policies other than on-failure with at most 5 retries",
         "a crash loop must stop instead of hiding a failure (or an attack) forever",
         f"set restart={RESTART_POLICY!r} and max_retry_count={RESTART_MAX_RETRIES}", Scope.CONTAINER,
         _check_restart),
    Rule("role-labelled", None, "containers without the stack and role labels",
         "users and every check find containers by opencode-sandbox.stack and opencode-sandbox.role",
         "create the container through components.hardening (it sets both labels)", Scope.CONTAINER,
         _check_labels),
    Rule("image-pinned", None, "images on a mutable tag (latest, or no tag)",
         "a mutable tag can change what runs without any change to the stack",
         "pin the image by digest (name@sha256:...) or a fixed version tag, or build it from images/",
         Scope.RESOURCE, image_reference_problem),
    Rule("non-gateways-on-internal-networks-only", None,
         "any role but a gateway joining a non-internal network",
         "internal networks have no route out; only the audited gateways cross the boundary",
         "join the model, model gateway, workspace and executor roles to internal networks only", Scope.STACK,
         _check_internal_only),
    Rule("executor-isolated-from-model", None,
         "an executor sharing a network with the model server or the model gateway",
         "code the agent generates must reach nothing but the workspace's calls (the model gateway would add the "
         "model API key to its requests)",
         "keep executors on the executor network only", Scope.STACK, _check_executor_model),
    Rule("internal-networks-unaddressed", None, "internal networks whose bridge has a host address",
         "the host answers on the bridge's gateway address (and on all its others) to any container on the "
         "network: every service listening on the host would be reachable from the sandbox",
         f"create internal networks with options {dict(INTERNAL_NETWORK_OPTIONS)} (components.networks does)",
         Scope.STACK, _check_internal_unaddressed),
    Rule("network-peers-as-designed", None, "roles sharing a network that the design does not connect",
         "each network exists for one path (sandbox_model.topology.NETWORKS): the workspace reaches the model only through the "
         "model gateway, which alone holds the key, and the executors and the gateways only on their own networks",
         "attach containers only to the networks components.networks gives their role", Scope.STACK,
         _check_network_peers),
    Rule("no-setuid-binaries", "4.8", "setuid/setgid binaries in the images",
         "with no-new-privileges they are inert, but stripping them removes the attack surface entirely",
         "strip setuid/setgid bits in the Dockerfile (find / -xdev -perm /6000 -exec chmod ug-s {} +)",
         Scope.IMAGE),
    Rule("image-healthcheck", "4.6", "images without a HEALTHCHECK",
         "an image that says how to check it is healthy can be checked wherever it runs",
         "add a HEALTHCHECK instruction to the Dockerfile", Scope.IMAGE),
)

RULES_BY_ID: Mapping[str, Rule] = {rule.id: rule for rule in RULES}
CONTAINER_RULES = tuple(rule for rule in RULES if rule.scope is Scope.CONTAINER)
STACK_RULES = tuple(rule for rule in RULES if rule.scope is Scope.STACK)


@dataclass(frozen=True)
class Violation:
    rule: Rule
    subject: str
    problem: str

    @property
    def message(self) -> str:
        return self.rule.message(self.subject, self.problem)


def check_container(spec: ContainerSpec, ctx: CheckContext) -> list[Violation]:
    """Every container rule against one container (exempt roles skipped)."""
    violations = []
    for rule in CONTAINER_RULES:
        if ctx.is_exempt(rule.id, spec.role):
            continue
        violations.extend(Violation(rule, spec.name, problem) for problem in rule.check(spec, ctx))
    return violations


def check_stack(containers: Sequence[ContainerSpec], networks: Mapping[str, NetworkSpec],
                ctx: CheckContext) -> list[Violation]:
    violations = []
    for rule in STACK_RULES:
        for subject, problem, roles in rule.check(containers, networks, ctx):
            if not any(ctx.is_exempt(rule.id, role) for role in roles):
                violations.append(Violation(rule, subject, problem))
    return violations


__all__ = [
    "UNKNOWN", "Role", "Rule", "Scope", "RULES", "RULES_BY_ID", "CheckContext", "Violation",
    "check_container", "check_stack", "image_reference_problem", "sensitive_host_path",
    "sensitive_volume_problem",
]
