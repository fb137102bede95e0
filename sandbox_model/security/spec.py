"""A normalized view of a container and a network that every rule check reads.

The same rule must be checked in three places that see containers differently:
the Pulumi program's declared inputs (under mocks, in tests), the policy pack
(engine-serialized props: camelCase names, floats, read-only mappings, values
unknown during preview) and a running engine (``docker inspect``). Each place
converts what it sees into these dataclasses once; the catalog's checks then
exist once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox_model.naming import LABEL_ROLE, LABEL_STACK


class _Unknown:
    """A value that cannot be known yet (a preview of a resource not yet created)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:  # an unknown must never pass for "set" by accident
        raise TypeError("UNKNOWN has no truth value; check `is UNKNOWN` first")


UNKNOWN: Any = _Unknown()


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind" | "volume" | "tmpfs"
    target: str
    source: str | None = None
    read_only: bool = False
    propagation: str | None = None
    # For a named volume of the `local` driver bound to a host path (type=none,o=bind),
    # the host path it exposes: such a volume is a bind mount in disguise.
    volume_host_path: str | None = None


@dataclass(frozen=True)
class PortBinding:
    container_port: int
    host_ip: str | None
    host_port: int | None


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    image: Any = None
    user: Any = None
    privileged: Any = False
    read_only_root: Any = False
    cap_add: Any = ()
    cap_drop: Any = ()
    security_opts: Any = ()
    network_mode: Any = None
    networks: Any = ()  # names of the networks joined besides network_mode
    pid_mode: Any = None
    ipc_mode: Any = None
    uts_mode: Any = None
    userns_mode: Any = None
    cgroupns_mode: Any = None
    group_add: Any = ()  # supplementary groups
    ports: Any = ()  # PortBinding
    publish_all_ports: Any = False
    mounts: Any = ()  # Mount (bind, volume and tmpfs mounts, and plain tmpfs entries)
    devices: Any = ()  # host device paths
    gpu_requested: Any = False
    sysctls: Any = field(default_factory=dict)
    dns: Any = ()  # the embedded DNS's upstream servers (empty: the host's resolvers)
    memory_bytes: Any = None
    nano_cpus: Any = None
    nproc_limit: Any = None  # the lower of the soft and hard nproc ulimit
    log_driver: Any = None
    log_opts: Any = field(default_factory=dict)
    healthcheck: Any = None  # the test command, e.g. ("CMD", "curl", ...)
    restart: Any = None
    restart_max_retries: Any = None

    @property
    def role(self) -> str | None:
        """The role label; UNKNOWN while the labels are not known (a preview)."""
        return UNKNOWN if is_unknown(self.labels) else self.labels.get(LABEL_ROLE)

    @property
    def stack(self) -> str | None:
        return UNKNOWN if is_unknown(self.labels) else self.labels.get(LABEL_STACK)


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    internal: Any = False
    driver: Any = "bridge"
    options: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
