"""Convert what a running engine reports (``docker inspect``) to the spec view the rules check.

The runtime suite runs the kernel's own ``check_container``/``check_stack``
(:mod:`sandbox_model.security.runner`) on a live stack, whoever created it (``pulumi up``,
or someone by hand). Input is the plain JSON the Engine API returns (the docker SDK's
``.attrs``); nothing here talks to an engine.

A named ``local`` volume bound to a host directory is a bind mount in disguise: pass the
volumes' inspect data so such a mount is seen with its host path (``Options.device``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sandbox_model.security.adapters.docker_semantics import bind_volume_device, nano_cpus_from_quota
from sandbox_model.security.spec import ContainerSpec, Mount, NetworkSpec, PortBinding


def volume_host_path(volume: Mapping[str, Any]) -> str | None:
    """The host directory a ``local`` volume exposes (``-o type=none,o=bind,device=<dir>``), if any."""
    return bind_volume_device(volume.get("Driver"), volume.get("Options") or {})


def volume_host_paths(volumes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """volume name -> host directory, for the volumes bound to one."""
    paths = {}
    for volume in volumes:
        path = volume_host_path(volume)
        if path:
            paths[volume["Name"]] = path
    return paths


def _mounts(attrs: Mapping[str, Any], volume_paths: Mapping[str, str]) -> tuple[Mount, ...]:
    mounts = []
    for mount in attrs.get("Mounts") or []:
        kind = mount.get("Type") or "volume"
        # For a volume the spec's source is the volume's name (as declared), not its data directory.
        source = mount.get("Name") if kind == "volume" else mount.get("Source")
        mounts.append(
            Mount(
                kind=kind,
                target=mount.get("Destination"),
                source=source or None,
                read_only=mount.get("RW") is False,
                propagation=mount.get("Propagation") or None,
                volume_host_path=volume_paths.get(source) if kind == "volume" and source else None,
            )
        )
    # `--tmpfs`/HostConfig.Tmpfs mounts are not listed in Mounts.
    mounts.extend(Mount(kind="tmpfs", target=target) for target in (attrs["HostConfig"].get("Tmpfs") or {}))
    return tuple(mounts)


def _ports(host_config: Mapping[str, Any]) -> tuple[PortBinding, ...]:
    ports = []
    for key, bindings in sorted((host_config.get("PortBindings") or {}).items()):
        container_port = int(str(key).split("/", 1)[0])
        for binding in bindings or [{}]:
            host_port = (binding or {}).get("HostPort")
            ports.append(
                PortBinding(
                    container_port=container_port,
                    host_ip=(binding or {}).get("HostIp") or None,
                    host_port=int(host_port) if host_port else None,
                )
            )
    return tuple(ports)


def _nano_cpus(host_config: Mapping[str, Any]) -> float | None:
    if host_config.get("NanoCpus"):
        return float(host_config["NanoCpus"])
    return nano_cpus_from_quota(host_config.get("CpuQuota"), host_config.get("CpuPeriod"))


def _nproc(host_config: Mapping[str, Any]) -> float | None:
    for ulimit in host_config.get("Ulimits") or []:
        if ulimit.get("Name") == "nproc":
            return float(min(ulimit.get("Soft", 0), ulimit.get("Hard", 0)))
    return None


def _or_none(value: Any) -> Any:
    return value or None


def _security_opts(host_config: Mapping[str, Any]) -> tuple[str, ...]:
    # An inline seccomp profile is kept as given (seccomp=<JSON text>). `systempaths=unconfined`
    # is not: the CLI turns it into empty MaskedPaths/ReadonlyPaths, so it is read back from those.
    opts = tuple(host_config.get("SecurityOpt") or ())
    if host_config.get("MaskedPaths") == [] and not host_config.get("Privileged"):
        opts += ("systempaths=unconfined",)
    return opts


def container_spec(attrs: Mapping[str, Any], volume_paths: Mapping[str, str] | None = None) -> ContainerSpec:
    """The spec of a container from its inspect data (``docker inspect <container>``)."""
    config = attrs.get("Config") or {}
    host = attrs.get("HostConfig") or {}
    healthcheck = config.get("Healthcheck") or {}
    restart = host.get("RestartPolicy") or {}
    log_config = host.get("LogConfig") or {}
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    return ContainerSpec(
        name=str(attrs.get("Name", "")).lstrip("/"),
        labels=dict(config.get("Labels") or {}),
        image=config.get("Image"),
        user=config.get("User") or None,
        privileged=bool(host.get("Privileged")),
        read_only_root=bool(host.get("ReadonlyRootfs")),
        cap_add=tuple(host.get("CapAdd") or ()),
        cap_drop=tuple(host.get("CapDrop") or ()),
        security_opts=_security_opts(host),
        network_mode=_or_none(host.get("NetworkMode")),
        networks=tuple(networks),
        pid_mode=_or_none(host.get("PidMode")),
        ipc_mode=_or_none(host.get("IpcMode")),
        uts_mode=_or_none(host.get("UTSMode")),
        userns_mode=_or_none(host.get("UsernsMode")),
        cgroupns_mode=_or_none(host.get("CgroupnsMode")),
        group_add=tuple(host.get("GroupAdd") or ()),
        ports=_ports(host),
        publish_all_ports=bool(host.get("PublishAllPorts")),
        mounts=_mounts(attrs, volume_paths or {}),
        devices=tuple(device.get("PathOnHost") for device in host.get("Devices") or ()),
        gpu_requested=bool(host.get("DeviceRequests")),
        sysctls=dict(host.get("Sysctls") or {}),
        dns=tuple(host.get("Dns") or ()),
        memory_bytes=float(host["Memory"]) if host.get("Memory") else None,
        nano_cpus=_nano_cpus(host),
        nproc_limit=_nproc(host),
        log_driver=log_config.get("Type"),
        log_opts=dict(log_config.get("Config") or {}),
        # Config.Healthcheck is the effective one: the container's, else the image's.
        healthcheck=tuple(healthcheck["Test"]) if healthcheck.get("Test") else None,
        restart=restart.get("Name") or None,
        restart_max_retries=restart.get("MaximumRetryCount"),
    )


def network_spec(attrs: Mapping[str, Any]) -> NetworkSpec:
    """The spec of a network from its inspect data (``docker network inspect <network>``)."""
    return NetworkSpec(
        name=attrs["Name"],
        internal=bool(attrs.get("Internal")),
        driver=attrs.get("Driver") or "bridge",
        options=dict(attrs.get("Options") or {}),
        labels=dict(attrs.get("Labels") or {}),
    )
