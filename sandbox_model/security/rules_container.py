"""The container rules' checks: each judges one container's spec and returns its problems.

Every check has the signature :data:`ContainerCheck`, ``(spec, ctx) -> [problem, ...]``,
and reads the normalized :mod:`sandbox_model.security.spec` view. A field that cannot
be known yet (``UNKNOWN``, during a preview) is never a problem: the same check runs
again when the value is known. Which rule each check belongs to is
:mod:`sandbox_model.security.table`'s business.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

from sandbox_model.naming import LABEL_ROLE, LABEL_STACK
from sandbox_model.roles import ALL_ROLES, Role
from sandbox_model.security.baseline import (
    BUILTIN_SECCOMP,
    CONTAINER_DNS_UPSTREAM,
    DEVICE_ROLES,
    DOCKER_SOCKET_PATHS,
    HOME_ROOTS,
    LOG_DRIVER,
    LOG_OPTS,
    RESTART_MAX_RETRIES,
    RESTART_POLICY,
    ROLE_CAPABILITIES,
    ROLE_SECCOMP_PROFILE,
    ROLES_ALLOWED_BUILTIN_SECCOMP,
    ROLES_WITH_OUTSIDE_DNS,
    SENSITIVE_HOST_PATHS,
    is_loopback_address,
)
from sandbox_model.security.context import CheckContext
from sandbox_model.security.spec import ContainerSpec, is_unknown

#: A container rule's check: one container's spec -> what is wrong with it (empty: nothing).
ContainerCheck = Callable[[ContainerSpec, CheckContext], list[str]]


def _opts(spec: ContainerSpec, prefix: str) -> list[str]:
    if is_unknown(spec.security_opts):
        return []
    return [
        opt.split("=", 1)[1] if "=" in opt else opt.split(":", 1)[1]
        for opt in spec.security_opts
        if opt.startswith(prefix + "=") or opt.startswith(prefix + ":")
    ]


def check_privileged(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    return ["runs privileged"] if spec.privileged is True else []


def check_capabilities(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
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


def check_read_only(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    return [] if is_unknown(spec.read_only_root) or spec.read_only_root is True else ["root filesystem is writable"]


def check_no_new_privileges(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    if is_unknown(spec.security_opts):
        return []
    values = [v.strip().lower() for v in _opts(spec, "no-new-privileges")]
    bare = "no-new-privileges" in spec.security_opts
    return [] if bare or "true" in values else ["no-new-privileges is not set"]


def _normalized_json(text: str) -> object:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def check_seccomp(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
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


def check_apparmor(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    return (
        ["runs with apparmor=unconfined"]
        if any(v.strip().lower() == "unconfined" for v in _opts(spec, "apparmor"))
        else []
    )


def check_non_root(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
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


def host_namespace_check(attr: str, what: str) -> ContainerCheck:
    def check(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
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


check_host_network = host_namespace_check("network_mode", "network")
check_host_pid = host_namespace_check("pid_mode", "PID")
check_host_ipc = host_namespace_check("ipc_mode", "IPC")
check_host_uts = host_namespace_check("uts_mode", "UTS")
check_host_userns = host_namespace_check("userns_mode", "user")
check_host_cgroupns = host_namespace_check("cgroupns_mode", "cgroup")


def check_system_paths(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    return (
        ["unmasks the kernel's system paths (systempaths=unconfined)"]
        if any(v.strip().lower() == "unconfined" for v in _opts(spec, "systempaths"))
        else []
    )


def check_default_bridge(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
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


def check_ports(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
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


def _host_paths(spec: ContainerSpec) -> Iterable[tuple[str, PurePosixPath]]:
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


def check_docker_socket(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    return [
        f"mounts the Docker socket {path} at {target}"
        for target, path in _host_paths(spec)
        if str(path) in DOCKER_SOCKET_PATHS or path.name == "docker.sock"
    ]


def check_sensitive_mounts(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    problems = []
    for target, path in _host_paths(spec):
        if str(path) in DOCKER_SOCKET_PATHS:
            continue  # reported by no-docker-socket
        match = sensitive_host_path(path)
        if match:
            problems.append(f"mounts host path {path} (sensitive: {match}) at {target}")
    return problems


def check_executor_mounts_read_only(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    if spec.role != Role.EXECUTOR.value or is_unknown(spec.mounts):
        return []
    return [
        f"{m.kind} mount at {m.target} is writable"
        for m in spec.mounts
        if m.kind in ("bind", "volume") and not is_unknown(m.read_only) and m.read_only is not True
    ]


def check_propagation(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    if is_unknown(spec.mounts):
        return []
    return [
        f"mount at {m.target} uses {m.propagation} propagation"
        for m in spec.mounts
        if m.propagation in {"shared", "rshared"}
    ]


def check_devices(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    if is_unknown(spec.devices) or not spec.devices or is_unknown(spec.role) or spec.role in DEVICE_ROLES:
        return []
    return [f"is given host devices {list(spec.devices)} though role {spec.role!r} may not have any"]


def check_gpus(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    if spec.gpu_requested is True and not is_unknown(spec.role) and spec.role not in DEVICE_ROLES:
        return [f"requests GPUs though role {spec.role!r} may not"]
    return []


def check_sysctls(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    if is_unknown(spec.sysctls) or not spec.sysctls:
        return []
    return [f"sets kernel parameters {sorted(spec.sysctls)}"]


def check_dns(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    if is_unknown(spec.dns) or is_unknown(spec.labels) or spec.role in ROLES_WITH_OUTSIDE_DNS:
        return []
    if tuple(spec.dns) != CONTAINER_DNS_UPSTREAM:
        return [
            f"its embedded DNS forwards unknown names to {list(spec.dns) or 'the host resolvers'}, "
            f"not only to {list(CONTAINER_DNS_UPSTREAM)}"
        ]
    return []


def check_memory(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    value = spec.memory_bytes
    return [] if is_unknown(value) or (value or 0) > 0 else ["has no memory limit"]


def check_cpu(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    value = spec.nano_cpus
    return [] if is_unknown(value) or (value or 0) > 0 else ["has no CPU limit"]


def check_nproc(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    value = spec.nproc_limit
    return [] if is_unknown(value) or (value or 0) > 0 else ["has no nproc ulimit (the process-count limit)"]


def check_log_rotation(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    if is_unknown(spec.log_driver) or is_unknown(spec.log_opts):
        return []
    problems = []
    if spec.log_driver != LOG_DRIVER:
        problems.append(f"logs with driver {spec.log_driver!r}, not {LOG_DRIVER}")
    missing = [key for key in LOG_OPTS if not is_unknown(spec.log_opts.get(key)) and not spec.log_opts.get(key)]
    if missing:
        problems.append(f"log rotation options {missing} are not set")
    return problems


def check_healthcheck(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    test = spec.healthcheck
    if is_unknown(test):
        return []
    if not test or (len(test) and str(test[0]).upper() == "NONE"):
        return ["has no healthcheck"]
    return []


def check_restart(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    if is_unknown(spec.restart) or is_unknown(spec.restart_max_retries):
        return []
    if spec.restart != RESTART_POLICY or int(spec.restart_max_retries or 0) != RESTART_MAX_RETRIES:
        return [
            f"restart policy is {spec.restart!r} (max {spec.restart_max_retries}), "
            f"not {RESTART_POLICY} with at most {RESTART_MAX_RETRIES} retries"
        ]
    return []


def check_labels(spec: ContainerSpec, ctx: CheckContext) -> list[str]:
    if is_unknown(spec.labels):
        return []
    problems = []
    if not spec.labels.get(LABEL_STACK):
        problems.append(f"has no {LABEL_STACK} label")
    role = spec.labels.get(LABEL_ROLE)
    if role not in ALL_ROLES:
        problems.append(f"has {LABEL_ROLE}={role!r}, not one of {sorted(ALL_ROLES)}")
    return problems
