"""The one way the stack creates a container: every rule of the catalog applied.

Each role states only what is particular to it (image, command, identity,
limits, mounts, networks, healthcheck); everything the security model demands is
set here from :mod:`sandbox_model.security.baseline`, so no component can forget a
rule or restate one differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from sandbox_model.engine_api import HEALTHCHECK_START_INTERVAL, ApiVersion
from sandbox_model.naming import LABEL_ROLE, LABEL_STACK
from sandbox_model.provider_forms import go_duration, provider_cpus
from sandbox_model.roles import Role
from sandbox_model.security import baseline
from sandbox_model.security.profiles import seccomp_profile
from stacks.settings import Limits

#: pulumi-docker updates these in place without touching the running container; a change
#: must replace the container instead.
REPLACE_ON_CHANGES = ["tmpfs", "healthcheck"]


@dataclass(frozen=True)
class Tmpfs:
    size_mb: int
    mode: str = "1777"
    #: The owner of the mount's root; Docker's tmpfs accepts uid=/gid= options.
    owner: tuple[int, int] | None = None
    #: Docker mounts tmpfs noexec unless told otherwise; say which explicitly.
    executable: bool = False
    #: Cap on files and directories (tmpfs otherwise allows one per two pages of RAM).
    max_inodes: int | None = None

    def options(self) -> str:
        options = [
            "rw",
            "nosuid",
            "nodev",
            "exec" if self.executable else "noexec",
            f"size={self.size_mb}m",
            f"mode={self.mode}",
        ]
        if self.max_inodes is not None:
            options.append(f"nr_inodes={self.max_inodes}")
        if self.owner is not None:
            options += [f"uid={self.owner[0]}", f"gid={self.owner[1]}"]
        return ",".join(options)


@dataclass(frozen=True)
class Healthcheck:
    tests: Sequence[str]
    # `pulumi up` (wait=True) waits for healthy, and Docker probes first one interval after the
    # start: short intervals keep a stack's start fast. Docker >= 25 probes every start_interval
    # during start_period instead; it is sent only to engines that have it (sandbox_model.engine_api).
    interval_s: int = 5
    timeout_s: int = 5
    retries: int = 3
    start_period_s: int = 10
    start_interval_s: int = 1


@dataclass(frozen=True)
class NetworkAttachment:
    network: pulumi.Input[str]
    aliases: Sequence[str] = ()


@dataclass(frozen=True)
class GpuRequest:
    """NVIDIA GPUs for the model server: all of them, or the listed device ids."""

    device_ids: Sequence[str] = ()


@dataclass(frozen=True)
class HardenedContainerArgs:
    stack: str
    role: Role
    name: str
    image: pulumi.Input[str]
    user: str
    limits: Limits
    healthcheck: Healthcheck
    networks: Sequence[NetworkAttachment]
    #: The Engine API version of the stack's engine (settings ``engine.api_version``).
    engine_api: ApiVersion
    command: Sequence[str] | None = None
    entrypoint: Sequence[str] | None = None
    envs: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    tmpfs: Mapping[str, Tmpfs] = field(default_factory=dict)
    mounts: Sequence[docker.ContainerMountArgs] = ()
    #: container port -> host port, published on ``publish_ip`` (a loopback address) only.
    published_ports: Mapping[int, int] = field(default_factory=dict)
    publish_ip: str = baseline.DEFAULT_PUBLISH_IP
    #: Use Docker's own default seccomp profile instead of the project's (allowed for the model role only).
    builtin_seccomp: bool = False
    shm_size_mb: int | None = None
    gpu: GpuRequest | None = None
    extra_hosts: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    #: docker-init as PID 1 (reaps orphans); the executor must be PID 1 itself.
    init: bool = False
    #: How long `pulumi up` waits for the container to become healthy.
    wait_timeout_s: int = 120


#: Time a create or an update needs beyond the wait for healthy (image checks, network connects, start).
CREATE_MARGIN_S = 300


def create_timeouts(wait_timeout_s: int) -> pulumi.CustomTimeouts:
    """The provider cuts a create at 20 minutes by default, whatever ``wait_timeout`` says."""
    return pulumi.CustomTimeouts(
        create=go_duration(wait_timeout_s + CREATE_MARGIN_S), update=go_duration(wait_timeout_s + CREATE_MARGIN_S)
    )


def healthcheck_args(healthcheck: Healthcheck, engine_api: ApiVersion) -> docker.ContainerHealthcheckArgs:
    """Durations in the form the provider reads back; start_interval only where the engine has it."""
    start_interval = healthcheck.start_interval_s if HEALTHCHECK_START_INTERVAL.supported_by(engine_api) else 0
    return docker.ContainerHealthcheckArgs(
        tests=list(healthcheck.tests),
        interval=go_duration(healthcheck.interval_s),
        timeout=go_duration(healthcheck.timeout_s),
        retries=healthcheck.retries,
        start_period=go_duration(healthcheck.start_period_s),
        start_interval=go_duration(start_interval),
    )


def _envs(envs: Mapping[str, pulumi.Input[str]]) -> list[pulumi.Input[str]]:
    return [pulumi.Output.concat(key, "=", value) for key, value in sorted(envs.items())]


def security_opts(role: Role, builtin_seccomp: bool = False) -> list[str]:
    if builtin_seccomp:
        if role.value not in baseline.ROLES_ALLOWED_BUILTIN_SECCOMP:
            raise ValueError(f"role {role.value!r} must run under the project's seccomp profile")
        profile = baseline.BUILTIN_SECCOMP
    else:
        profile = seccomp_profile(baseline.ROLE_SECCOMP_PROFILE[role.value])
    return [baseline.NO_NEW_PRIVILEGES, f"seccomp={profile}"]


def hardened_container(
    resource_name: str, args: HardenedContainerArgs, opts: pulumi.ResourceOptions | None = None
) -> docker.Container:
    role = args.role.value
    if args.gpu is not None and role not in baseline.DEVICE_ROLES:
        raise ValueError(f"role {role!r} may not request GPUs (baseline.DEVICE_ROLES)")
    if args.published_ports and not baseline.is_loopback_address(args.publish_ip):
        raise ValueError(f"{args.name}: ports may be published on loopback addresses only, not {args.publish_ip}")
    if not args.networks:
        raise ValueError(f"{args.name}: a container needs at least one of the stack's networks")
    allowed_caps = sorted(baseline.ROLE_CAPABILITIES.get(role, {}))
    device_requests = None
    if args.gpu is not None:
        device_requests = [
            docker.ContainerDeviceRequestArgs(
                driver="nvidia",
                capabilities=["gpu"],
                count=None if args.gpu.device_ids else -1,
                device_ids=list(args.gpu.device_ids) or None,
            )
        ]
    options = pulumi.ResourceOptions.merge(
        pulumi.ResourceOptions(
            # Fixed names (and host ports) cannot exist twice: delete before creating the replacement.
            delete_before_replace=True,
            replace_on_changes=REPLACE_ON_CHANGES,
            custom_timeouts=create_timeouts(args.wait_timeout_s),
        ),
        opts,
    )
    return docker.Container(
        resource_name,
        name=args.name,
        image=args.image,
        user=args.user,
        command=list(args.command) if args.command is not None else None,
        entrypoints=list(args.entrypoint) if args.entrypoint is not None else None,
        envs=_envs(args.envs),
        working_dir=args.working_dir,
        labels=[
            docker.ContainerLabelArgs(label=LABEL_STACK, value=args.stack),
            docker.ContainerLabelArgs(label=LABEL_ROLE, value=role),
        ],
        read_only=True,
        privileged=False,
        # Docker's default on cgroup v1 hosts is the host's cgroup namespace.
        cgroupns_mode="private",
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=allowed_caps or None),
        security_opts=security_opts(args.role, args.builtin_seccomp),
        memory=args.limits.memory_mb,
        memory_swap=args.limits.memory_mb,  # equal to memory: no swap on top of the limit
        cpus=provider_cpus(args.limits.cpus),
        ulimits=[
            docker.ContainerUlimitArgs(name="nproc", soft=args.limits.nproc, hard=args.limits.nproc),
            docker.ContainerUlimitArgs(name="nofile", soft=4096, hard=4096),
            docker.ContainerUlimitArgs(name="core", soft=0, hard=0),
        ],
        tmpfs={path: tmpfs.options() for path, tmpfs in args.tmpfs.items()} or None,
        mounts=list(args.mounts) or None,
        shm_size=args.shm_size_mb,
        device_requests=device_requests,
        # The provider starts the container in network_mode and, since networks_advanced is set,
        # disconnects it from the default bridge before starting it (see rule no-default-bridge).
        network_mode="bridge",
        networks_advanced=[
            docker.ContainerNetworksAdvancedArgs(name=attachment.network, aliases=list(attachment.aliases) or None)
            for attachment in args.networks
        ],
        ports=[
            docker.ContainerPortArgs(internal=internal, external=external, ip=args.publish_ip, protocol="tcp")
            for internal, external in sorted(args.published_ports.items())
        ]
        or None,
        hosts=[docker.ContainerHostArgs(host=host, ip=ip) for host, ip in sorted(args.extra_hosts.items())] or None,
        # Names outside the stack resolve nowhere but in the egress gateway (catalog rule no-outside-dns).
        dns=None if role in baseline.ROLES_WITH_OUTSIDE_DNS else list(baseline.CONTAINER_DNS_UPSTREAM),
        log_driver=baseline.LOG_DRIVER,
        log_opts=dict(baseline.LOG_OPTS),
        healthcheck=healthcheck_args(args.healthcheck, args.engine_api),
        restart=baseline.RESTART_POLICY,
        max_retry_count=baseline.RESTART_MAX_RETRIES,
        init=args.init,
        wait=True,
        wait_timeout=args.wait_timeout_s,
        opts=options,
    )
