"""Convert pulumi-docker resource properties, as the engine serializes them, to the spec view.

The engine hands policies (and mocks) the provider's camelCase names, numbers as
floats, nested values as read-only mappings/sequences, and values unknown during
a preview. In the policy pack, reading an unknown value raises the SDK's
``UnknownValueError``; callers pass that type as ``unknown_errors`` and such a
field becomes :data:`UNKNOWN` instead of failing the whole conversion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sandbox_model.security.adapters.docker_semantics import bind_volume_device, nano_cpus_from_quota
from sandbox_model.security.spec import UNKNOWN, ContainerSpec, Mount, NetworkSpec, PortBinding, is_unknown

MB = 1024 * 1024


class _Reader:
    def __init__(self, unknown_errors: tuple[type[BaseException], ...]):
        self.unknown_errors = unknown_errors

    def get(self, mapping: Any, key: str, default: Any = None) -> Any:
        if is_unknown(mapping) or mapping is None:
            return mapping if is_unknown(mapping) else default
        try:
            value = mapping.get(key, default) if isinstance(mapping, Mapping) else default
        except self.unknown_errors:
            return UNKNOWN
        return default if value is None else value

    def items(self, sequence: Any) -> list[Any] | Any:
        """The elements of a sequence, each UNKNOWN where it cannot be read."""
        if is_unknown(sequence):
            return UNKNOWN
        if sequence is None or isinstance(sequence, (str, bytes)) or not isinstance(sequence, Sequence):
            return []
        out = []
        try:
            for index in range(len(sequence)):
                try:
                    out.append(sequence[index])
                except self.unknown_errors:
                    out.append(UNKNOWN)
        except self.unknown_errors:
            return UNKNOWN
        return out

    def mapping(self, value: Any) -> dict[str, Any] | Any:
        if is_unknown(value):
            return UNKNOWN
        if not isinstance(value, Mapping):
            return {}
        out = {}
        try:
            for key in list(value.keys()):
                out[key] = self.get(value, key)
        except self.unknown_errors:
            return UNKNOWN
        return out


def _tuple_of_str(reader: _Reader, value: Any) -> tuple[str, ...] | Any:
    items = reader.items(value)
    if is_unknown(items):
        return UNKNOWN
    if any(is_unknown(item) for item in items):
        return UNKNOWN
    return tuple(str(item) for item in items)


def _labels(reader: _Reader, value: Any) -> dict[str, str] | Any:
    items = reader.items(value)
    if is_unknown(items):
        return UNKNOWN
    labels = {}
    for item in items:
        key, val = reader.get(item, "label"), reader.get(item, "value")
        if is_unknown(item) or is_unknown(key) or is_unknown(val):
            return UNKNOWN  # a label not known yet may be the role: the labels are not known
        if key is not None:
            labels[str(key)] = str(val)
    return labels


def volume_host_path(props: Mapping[str, Any], unknown_errors: tuple = ()) -> str | None | Any:
    """The host directory a `local` volume is bound to (driver opts type=none, o=bind), if any."""
    reader = _Reader(unknown_errors)
    driver = reader.get(props, "driver", "local")
    opts = reader.mapping(reader.get(props, "driverOpts", {}))
    if is_unknown(driver) or is_unknown(opts):
        return UNKNOWN
    if driver not in ("local", "") or "device" not in opts:
        return None
    if is_unknown(opts.get("type")) or is_unknown(opts.get("o")):
        return UNKNOWN
    return bind_volume_device(driver, opts)  # the device itself may be UNKNOWN: then so is the path


def _read_only(reader: _Reader, item) -> bool | Any:
    """A mount's readOnly flag; an unknown one stays unknown (no rule may guess it)."""
    value = reader.get(item, "readOnly", False)
    return value if is_unknown(value) else value is True


def _mounts(reader: _Reader, props, volume_paths: Mapping[str, str]) -> tuple[Mount, ...] | Any:
    mounts: list[Mount] = []
    for item in _known_items(reader, reader.get(props, "mounts", [])):
        if item is UNKNOWN:
            return UNKNOWN
        kind = reader.get(item, "type")
        source = reader.get(item, "source")
        bind = reader.get(item, "bindOptions", {})
        if is_unknown(kind) or is_unknown(source) or is_unknown(bind):
            return UNKNOWN
        mounts.append(
            Mount(
                kind=kind,
                target=reader.get(item, "target"),
                source=source,
                read_only=_read_only(reader, item),
                propagation=reader.get(bind, "propagation") if isinstance(bind, Mapping) else None,
                volume_host_path=volume_paths.get(source) if kind == "volume" and isinstance(source, str) else None,
            )
        )
    for item in _known_items(reader, reader.get(props, "volumes", [])):
        if item is UNKNOWN:
            return UNKNOWN
        host_path, volume = reader.get(item, "hostPath"), reader.get(item, "volumeName")
        if is_unknown(host_path) or is_unknown(volume):
            return UNKNOWN
        mounts.append(
            Mount(
                kind="bind" if host_path else "volume",
                target=reader.get(item, "containerPath"),
                source=host_path or volume,
                read_only=_read_only(reader, item),
                volume_host_path=volume_paths.get(volume) if volume else None,
            )
        )
    tmpfs = reader.mapping(reader.get(props, "tmpfs", {}))
    if is_unknown(tmpfs):
        return UNKNOWN
    mounts.extend(Mount(kind="tmpfs", target=target) for target in tmpfs)
    return tuple(mounts)


def _known_items(reader: _Reader, value) -> list:
    items = reader.items(value)
    return [UNKNOWN] if is_unknown(items) else items


def _none_if_empty(value: Any) -> Any:
    return value if is_unknown(value) or value else None


def _ports(reader: _Reader, props) -> tuple[PortBinding, ...] | Any:
    ports = []
    for item in _known_items(reader, reader.get(props, "ports", [])):
        if item is UNKNOWN:
            return UNKNOWN
        external, internal = reader.get(item, "external"), reader.get(item, "internal", 0)
        ports.append(
            PortBinding(
                container_port=internal if is_unknown(internal) else int(internal),
                host_ip=_none_if_empty(reader.get(item, "ip")),
                host_port=int(external) if isinstance(external, (int, float)) else external,
            )
        )
    return tuple(ports)


def _nano_cpus(reader: _Reader, props) -> float | None | Any:
    cpus = reader.get(props, "cpus")
    if is_unknown(cpus):
        return UNKNOWN
    if cpus not in (None, ""):
        try:
            return float(cpus) * 1e9
        except ValueError:
            return None
    quota, period = reader.get(props, "cpuQuota"), reader.get(props, "cpuPeriod")
    if is_unknown(quota) or is_unknown(period):
        return UNKNOWN
    return nano_cpus_from_quota(quota, period)


def _nproc(reader: _Reader, props) -> float | None | Any:
    for item in _known_items(reader, reader.get(props, "ulimits", [])):
        if item is UNKNOWN:
            return UNKNOWN
        name = reader.get(item, "name")
        if is_unknown(name):
            return UNKNOWN  # it may be the nproc limit
        if name == "nproc":
            soft, hard = reader.get(item, "soft"), reader.get(item, "hard")
            if is_unknown(soft) or is_unknown(hard):
                return UNKNOWN
            return min(float(soft), float(hard))
    return None


def _gpu_requested(reader: _Reader, props) -> bool | Any:
    gpus = reader.get(props, "gpus")
    requests = reader.items(reader.get(props, "deviceRequests", []))
    if is_unknown(gpus) or is_unknown(requests):
        return UNKNOWN
    return bool(gpus) or bool(requests)


def _networks(reader: _Reader, props) -> tuple[str, ...] | Any:
    names = []
    for item in _known_items(reader, reader.get(props, "networksAdvanced", [])):
        if item is UNKNOWN:
            return UNKNOWN
        name = reader.get(item, "name")
        if is_unknown(name):
            return UNKNOWN
        names.append(str(name))
    return tuple(names)


def _name(declared: Any, fallback: str) -> str:
    return fallback if is_unknown(declared) or not declared else str(declared)


def container_spec(
    name: str,
    props: Mapping[str, Any],
    *,
    volume_paths: Mapping[str, str] | None = None,
    unknown_errors: tuple[type[BaseException], ...] = (),
) -> ContainerSpec:
    """The spec of a `docker:index/container:Container` from its (camelCase) properties."""
    reader = _Reader(unknown_errors)
    get = lambda key, default=None: reader.get(props, key, default)  # noqa: E731
    capabilities = get("capabilities", {})
    healthcheck = get("healthcheck")
    memory = get("memory")
    devices = reader.items(get("devices", []))
    return ContainerSpec(
        name=_name(get("name"), name),
        labels=_labels(reader, get("labels", [])),
        image=get("image"),
        user=get("user"),
        privileged=get("privileged", False),
        read_only_root=get("readOnly", False),
        cap_add=_tuple_of_str(reader, reader.get(capabilities, "adds", [])),
        cap_drop=_tuple_of_str(reader, reader.get(capabilities, "drops", [])),
        security_opts=_tuple_of_str(reader, get("securityOpts", [])),
        network_mode=get("networkMode"),
        networks=_networks(reader, props),
        pid_mode=get("pidMode"),
        ipc_mode=get("ipcMode"),
        uts_mode=get("utsMode"),
        userns_mode=get("usernsMode"),
        cgroupns_mode=get("cgroupnsMode"),
        group_add=_tuple_of_str(reader, get("groupAdds", [])),
        ports=_ports(reader, props),
        publish_all_ports=get("publishAllPorts", False),
        mounts=_mounts(reader, props, volume_paths or {}),
        devices=UNKNOWN
        if is_unknown(devices)
        else tuple(UNKNOWN if is_unknown(d) else reader.get(d, "hostPath") for d in devices),
        gpu_requested=_gpu_requested(reader, props),
        sysctls=reader.mapping(get("sysctls", {})),
        dns=_tuple_of_str(reader, get("dns", [])),
        memory_bytes=UNKNOWN if is_unknown(memory) else (float(memory) * MB if memory else None),
        nano_cpus=_nano_cpus(reader, props),
        nproc_limit=_nproc(reader, props),
        log_driver=get("logDriver"),
        log_opts=reader.mapping(get("logOpts", {})),
        healthcheck=UNKNOWN
        if is_unknown(healthcheck)
        else (_tuple_of_str(reader, reader.get(healthcheck, "tests", [])) if healthcheck else None),
        restart=get("restart"),
        restart_max_retries=get("maxRetryCount"),
    )


def network_spec(name: str, props: Mapping[str, Any], unknown_errors: tuple = ()) -> NetworkSpec:
    reader = _Reader(unknown_errors)
    return NetworkSpec(
        name=_name(reader.get(props, "name"), name),
        internal=reader.get(props, "internal", False),
        driver=reader.get(props, "driver", "bridge"),
        options=reader.mapping(reader.get(props, "options", {})),
        labels=_labels(reader, reader.get(props, "labels", [])),
    )
