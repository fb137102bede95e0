"""Deploy what a stack declares on the local Docker engine, through the Docker Engine API.

Users deploy with `pulumi up`; this path exists because CI machines cannot run the Pulumi engine.

The Pulumi program runs unchanged under the test mocks (:func:`tests.support.program.run_program`),
and every resource it declares is created here as pulumi-docker 5.x (which bridges
kreuzwerker/terraform-provider-docker) would create it:

- ``docker:index/volume:Volume`` and ``docker:index/network:Network``: created as declared;
- ``docker:index/remoteImage:RemoteImage``: with ``build``, built from its context (relative to the
  project directory) with its build args, Dockerfile and labels and tagged with its ``name``;
  without ``build`` the image must already be on this engine (there is no registry here);
- ``random:index/randomPassword:RandomPassword``: nothing to create, the mocks' value already
  reaches the containers through their inputs;
- ``docker:index/container:Container``: created in ``networkMode``, disconnected from the default
  bridge and connected to each ``networksAdvanced`` network (with its aliases) when those are given,
  started, then (``wait``) polled until healthy, as the provider does.

Resources are created in dependency order, independent ones in parallel like the engine does. An
input this module does not map is an error naming it, never silently dropped. Everything is
found again by the label ``opencode-sandbox.stack=<stack>`` (containers, networks) or by what this
run recorded; teardown removes containers, networks and volumes, never images (build cache).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Mapping

from components.security.spec import LABEL_STACK
from tests.support.program import (
    CONTAINER, NETWORK, RANDOM_PASSWORD, REMOTE_IMAGE, REPO_ROOT, VOLUME, DeclaredResource, DeclaredStack,
    developer_machine, run_program,
)

#: Where a developer's machine keeps the extra CA the committed stacks may name (Pulumi.ci.yaml).
EXTRA_CA_RELATIVE = Path(".cache/opencode-sandbox/extra-ca.pem")
#: Parallel creations (image builds and containers waiting to be healthy overlap).
WORKERS = 4
#: Engine API calls can block for a long time (an image build step without output).
CLIENT_TIMEOUT_S = 900
#: The provider's read-refresh timeout: how long a started container may take to be running.
RUNNING_TIMEOUT_S = 15
LOG_TAIL_LINES = 40


class DeployError(RuntimeError):
    """The stack could not be deployed (or torn down); the message says what and how to fix it."""


class UnmappedInput(DeployError):
    """The program declares an input this deployer does not map (it would be silently lost)."""


Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"[deploy] {message}", file=sys.stderr, flush=True)


# --- reading declared inputs ------------------------------------------------------------------


class _Inputs:
    """A resource's declared inputs; every key must be taken, or :meth:`finish` names the rest."""

    def __init__(self, where: str, values: Mapping[str, Any] | None):
        self.where = where
        self.values = dict(values or {})
        self.taken: set[str] = set()

    def take(self, key: str, default: Any = None) -> Any:
        self.taken.add(key)
        value = self.values.get(key)
        return default if value is None else value

    def int(self, key: str, default: int | None = None) -> int | None:
        value = self.take(key)
        if value is None:
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if isinstance(value, bool) or number is None or number != int(number):
            raise DeployError(f"{self.where}: input {key!r} = {value!r} is not an integer")
        return int(number)

    def nested(self, key: str) -> _Inputs | None:
        value = self.take(key)
        return None if value is None else _Inputs(f"{self.where}.{key}", value)

    def each(self, key: str) -> list[_Inputs]:
        return [_Inputs(f"{self.where}.{key}[{index}]", item) for index, item in enumerate(self.take(key, []))]

    def finish(self) -> None:
        unmapped = sorted(key for key, value in self.values.items() if key not in self.taken and value is not None)
        if unmapped:
            raise UnmappedInput(
                f"{self.where}: input(s) {', '.join(unmapped)} are not mapped by the test deployer "
                "(tests/support/deployer.py). Fix: map them there as terraform-provider-docker does, "
                "or stop declaring them")


def _labels(entries: list[_Inputs]) -> dict[str, str]:
    labels = {}
    for entry in entries:
        labels[str(entry.take("label"))] = str(entry.take("value", ""))
        entry.finish()
    return labels


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
                     "h": 3600 * 10**9}


def go_duration_ns(text: str, where: str) -> int:
    """A Go duration ("1m30s", "15s", "500ms"), as the provider parses healthcheck times, in ns.

    The provider ignores a parse error (the duration becomes 0); here it is an error instead.
    """
    if text in ("0", ""):
        return 0
    position, total = 0, Fraction(0)
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise DeployError(f"{where} = {text!r} is not a Go duration (e.g. 15s, 1m30s, 500ms)")
        total += Fraction(match.group(1)) * _DURATION_UNIT_NS[match.group(2)]
        position = match.end()
    return int(total)


def nano_cpus(text: str, where: str) -> int:
    """``cpus`` as the Docker CLI's ``--cpus`` (which the provider reuses): a decimal count x 1e9."""
    try:
        value = Fraction(str(text)) * 10**9
    except (ValueError, ZeroDivisionError):
        raise DeployError(f"{where} = {text!r} is not a number of CPUs (e.g. 0.5, 2)") from None
    if value.denominator != 1:
        raise DeployError(f"{where} = {text!r} is too precise (at most 9 decimal places)")
    return int(value)


def _megabytes(inputs: _Inputs, key: str) -> int | None:
    value = inputs.int(key)
    return None if value is None else value * 1024 * 1024


# --- plans: declared inputs -> Engine API requests --------------------------------------------


@dataclass(frozen=True)
class NetworkAttachment:
    network: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    ipv6_address: str | None = None


@dataclass(frozen=True)
class ContainerPlan:
    """One container as the provider would request it from the engine."""

    name: str
    image: str
    create: dict[str, Any]  # docker-py APIClient.create_container(...) keywords (without host_config)
    host_config: dict[str, Any]  # docker-py APIClient.create_host_config(...) keywords
    networks: tuple[NetworkAttachment, ...]
    start: bool = True
    must_run: bool = True
    wait: bool = False
    wait_timeout_s: int = 60
    destroy_grace_s: int = 0
    remove_volumes: bool = True


def plan_container(resource: DeclaredResource, override: Mapping[str, Any] | None = None) -> ContainerPlan:
    """Translate a Container's inputs (optionally with some replaced) into Engine API requests."""
    import docker.types

    values = {**resource.inputs, **(override or {})}
    inputs = _Inputs(f"container {resource.name}", values)
    name = inputs.take("name")
    image = inputs.take("image")
    if not name or not image:
        raise DeployError(f"{inputs.where}: name and image are required")
    create: dict[str, Any] = {"name": name, "use_config_proxy": False}
    host: dict[str, Any] = {}

    for key, kwarg in (("command", "command"), ("entrypoints", "entrypoint")):
        value = inputs.take(key)
        if value is not None:
            if key == "command" and any(part == "" for part in value):
                raise DeployError(f"{inputs.where}: values for command may not be empty")
            create[kwarg] = list(value)
    for key, kwarg in (("user", "user"), ("workingDir", "working_dir"), ("hostname", "hostname"),
                       ("domainname", "domainname"), ("stopSignal", "stop_signal")):
        value = inputs.take(key)
        if value:
            create[kwarg] = value
    stop_timeout = inputs.int("stopTimeout")
    if stop_timeout is not None:
        create["stop_timeout"] = stop_timeout
    create["tty"] = bool(inputs.take("tty", False))
    create["stdin_open"] = bool(inputs.take("stdinOpen", False))
    create["environment"] = list(inputs.take("envs", []))
    create["labels"] = _labels(inputs.each("labels"))

    healthcheck = inputs.nested("healthcheck")
    if healthcheck is not None:
        where = healthcheck.where
        create["healthcheck"] = docker.types.Healthcheck(
            test=list(healthcheck.take("tests", [])),
            interval=go_duration_ns(healthcheck.take("interval", "0s"), f"{where}.interval"),
            timeout=go_duration_ns(healthcheck.take("timeout", "0s"), f"{where}.timeout"),
            start_period=go_duration_ns(healthcheck.take("startPeriod", "0s"), f"{where}.startPeriod"),
            retries=healthcheck.int("retries", 0),
        )
        # Engine API >= 1.44 (Docker 25); older engines ignore the field, as they do from the provider.
        start_interval = go_duration_ns(healthcheck.take("startInterval", "0s"), f"{where}.startInterval")
        if start_interval:
            create["healthcheck"]["StartInterval"] = start_interval
        healthcheck.finish()

    # ports: exposed in the config and bound in the host config (the schema defaults: tcp, 0.0.0.0).
    exposed, bindings = [], {}
    for port in inputs.each("ports"):
        internal, protocol = port.int("internal"), port.take("protocol", "tcp")
        external, ip = port.int("external"), port.take("ip", "0.0.0.0")
        exposed.append((internal, protocol))
        bindings.setdefault(f"{internal}/{protocol}", []).append((ip, "" if external is None else external))
        port.finish()
    if exposed:
        create["ports"] = exposed
        host["port_bindings"] = bindings
    host["publish_all_ports"] = bool(inputs.take("publishAllPorts", False))

    host["privileged"] = bool(inputs.take("privileged", False))
    host["read_only"] = bool(inputs.take("readOnly", False))
    host["auto_remove"] = bool(inputs.take("rm", False))
    restart = inputs.take("restart", "no")
    host["restart_policy"] = {"Name": restart, "MaximumRetryCount": inputs.int("maxRetryCount", 0)}
    capabilities = inputs.nested("capabilities")
    if capabilities is not None:
        host["cap_add"] = list(capabilities.take("adds", []))
        host["cap_drop"] = list(capabilities.take("drops", []))
        capabilities.finish()
    for key, kwarg in (("securityOpts", "security_opt"), ("dns", "dns"), ("dnsOpts", "dns_opt"),
                       ("dnsSearches", "dns_search"), ("groupAdds", "group_add")):
        value = inputs.take(key)
        if value:
            host[kwarg] = list(value)
    for key, kwarg in (("pidMode", "pid_mode"), ("ipcMode", "ipc_mode"), ("usernsMode", "userns_mode"),
                       ("cgroupnsMode", "cgroupns"), ("cpuSet", "cpuset_cpus"), ("runtime", "runtime"),
                       ("cgroupParent", "cgroup_parent")):
        value = inputs.take(key)
        if value:
            host[kwarg] = value
    sysctls = inputs.take("sysctls")
    if sysctls:
        host["sysctls"] = dict(sysctls)

    # Sizes are MB in the schema; the provider multiplies by 1024*1024 (memory_swap only when > 0).
    for key, kwarg in (("memory", "mem_limit"), ("shmSize", "shm_size"), ("memoryReservation", "mem_reservation")):
        value = _megabytes(inputs, key)
        if value:
            host[kwarg] = value
    swap = inputs.int("memorySwap")
    if swap:
        host["memswap_limit"] = swap * 1024 * 1024 if swap > 0 else swap
    cpus = inputs.take("cpus")
    cpu_quota, cpu_period = inputs.int("cpuQuota"), inputs.int("cpuPeriod")
    if cpus not in (None, ""):
        host["nano_cpus"] = nano_cpus(cpus, f"{inputs.where}.cpus")  # has precedence over quota/period
    else:
        if cpu_quota:
            host["cpu_quota"] = cpu_quota
        if cpu_period:
            host["cpu_period"] = cpu_period
    cpu_shares = inputs.int("cpuShares")
    if cpu_shares:
        host["cpu_shares"] = cpu_shares

    ulimits = []
    for ulimit in inputs.each("ulimits"):
        ulimits.append(docker.types.Ulimit(name=ulimit.take("name"), soft=ulimit.int("soft"), hard=ulimit.int("hard")))
        ulimit.finish()
    if ulimits:
        host["ulimits"] = ulimits

    tmpfs = inputs.take("tmpfs")
    if tmpfs:
        host["tmpfs"] = {str(path): str(options) for path, options in tmpfs.items()}
    mounts = [_mount(entry) for entry in inputs.each("mounts")]
    if mounts:
        host["mounts"] = mounts

    devices = []
    for device in inputs.each("devices"):
        host_path = device.take("hostPath")
        devices.append({"PathOnHost": host_path, "PathInContainer": device.take("containerPath") or host_path,
                        "CgroupPermissions": device.take("permissions") or "rwm"})
        device.finish()
    if devices:
        host["devices"] = devices
    requests = [_device_request(entry) for entry in inputs.each("deviceRequests")]
    gpus = inputs.take("gpus")
    if gpus:
        requests.append(_gpus_request(gpus, f"{inputs.where}.gpus"))
    if requests:
        host["device_requests"] = requests

    extra_hosts = []
    for entry in inputs.each("hosts"):
        extra_hosts.append(f"{entry.take('host')}:{entry.take('ip')}")
        entry.finish()
    if extra_hosts:
        host["extra_hosts"] = extra_hosts

    log_driver = inputs.take("logDriver")
    log_opts = inputs.take("logOpts")
    if log_driver or log_opts:
        host["log_config"] = docker.types.LogConfig(type=log_driver or "", config=dict(log_opts or {}))
    init = inputs.take("init")
    if init is not None:
        host["init"] = bool(init)

    host["network_mode"] = inputs.take("networkMode", "bridge")
    networks = []
    for entry in inputs.each("networksAdvanced"):
        networks.append(NetworkAttachment(
            network=entry.take("name"), aliases=tuple(entry.take("aliases", [])),
            ipv4_address=entry.take("ipv4Address"), ipv6_address=entry.take("ipv6Address")))
        entry.finish()

    plan = ContainerPlan(
        name=name, image=image, create=create, host_config=host, networks=tuple(networks),
        start=bool(inputs.take("start", True)), must_run=bool(inputs.take("mustRun", True)),
        wait=bool(inputs.take("wait", False)), wait_timeout_s=inputs.int("waitTimeout", 60),
        destroy_grace_s=inputs.int("destroyGraceSeconds", 0), remove_volumes=bool(inputs.take("removeVolumes", True)),
    )
    inputs.finish()
    return plan


def _mount(entry: _Inputs):
    import docker.types

    kind = entry.take("type")
    if kind not in ("bind", "volume", "tmpfs"):
        raise DeployError(f"{entry.where}.type = {kind!r}: must be bind, volume or tmpfs")
    options: dict[str, Any] = {}
    bind = entry.nested("bindOptions")
    if bind is not None:
        if kind == "bind":  # the provider reads each options block only for its own mount type
            options["propagation"] = bind.take("propagation")
            bind.finish()
        else:
            bind.taken.update(bind.values)
    volume = entry.nested("volumeOptions")
    if volume is not None:
        if kind == "volume":
            options["no_copy"] = bool(volume.take("noCopy", False))
            options["labels"] = _labels(volume.each("labels")) or None
            driver, driver_options = volume.take("driverName"), volume.take("driverOptions")
            if driver or driver_options:
                options["driver_config"] = docker.types.DriverConfig(driver or "", dict(driver_options or {}))
            volume.finish()  # subpath needs Engine API 1.45: unmapped, so an error
        else:
            volume.taken.update(volume.values)
    tmpfs = entry.nested("tmpfsOptions")
    if tmpfs is not None:
        if kind == "tmpfs":
            options["tmpfs_size"] = tmpfs.int("sizeBytes")
            options["tmpfs_mode"] = tmpfs.int("mode")
            tmpfs.finish()
        else:
            tmpfs.taken.update(tmpfs.values)
    mount = docker.types.Mount(target=entry.take("target"), source=entry.take("source") or "", type=kind,
                               read_only=bool(entry.take("readOnly", False)), **options)
    entry.finish()
    return mount


def _device_request(entry: _Inputs):
    import docker.types

    capabilities = entry.take("capabilities", [])
    request = docker.types.DeviceRequest(
        driver=entry.take("driver", ""), count=entry.int("count", 0), device_ids=list(entry.take("deviceIds", [])),
        capabilities=[list(capabilities)] if capabilities else [], options=dict(entry.take("options", {})))
    entry.finish()
    return request


def _gpus_request(value: str, where: str):
    """``gpus`` as ``docker run --gpus``: ``all`` or ``device=<id>[,<id>...]``."""
    import docker.types

    if value == "all":
        return docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    if value.startswith("device="):
        return docker.types.DeviceRequest(device_ids=value[len("device="):].split(","), capabilities=[["gpu"]])
    raise DeployError(f"{where} = {value!r}: use 'all' or 'device=<id>[,<id>...]'")


def plan_network(resource: DeclaredResource) -> dict[str, Any]:
    """docker-py APIClient.create_network(...) keywords for a Network."""
    import docker.types

    inputs = _Inputs(f"network {resource.name}", resource.inputs)
    kwargs: dict[str, Any] = {
        "name": inputs.take("name") or resource.name,
        "driver": inputs.take("driver", "bridge"),
        "options": dict(inputs.take("options", {})),
        "internal": bool(inputs.take("internal", False)),
        "labels": _labels(inputs.each("labels")),
        "enable_ipv6": bool(inputs.take("ipv6", False)),
        "attachable": bool(inputs.take("attachable", False)),
        "ingress": bool(inputs.take("ingress", False)),
    }
    pools = []
    for config in inputs.each("ipamConfigs"):
        pools.append(docker.types.IPAMPool(subnet=config.take("subnet"), iprange=config.take("ipRange"),
                                           gateway=config.take("gateway"), aux_addresses=config.take("auxAddress")))
        config.finish()
    ipam_driver, ipam_options = inputs.take("ipamDriver"), inputs.take("ipamOptions")
    if pools or ipam_driver or ipam_options:
        kwargs["ipam"] = docker.types.IPAMConfig(driver=ipam_driver or "default", pool_configs=pools,
                                                 options=dict(ipam_options or {}) or None)
    inputs.finish()
    return kwargs


def plan_volume(resource: DeclaredResource) -> dict[str, Any]:
    """docker-py APIClient.create_volume(...) keywords for a Volume."""
    inputs = _Inputs(f"volume {resource.name}", resource.inputs)
    kwargs = {
        "name": inputs.take("name") or resource.name,
        "driver": inputs.take("driver", "local"),
        "driver_opts": dict(inputs.take("driverOpts", {})) or None,
        "labels": _labels(inputs.each("labels")) or None,
    }
    inputs.finish()
    return kwargs


@dataclass(frozen=True)
class ImagePlan:
    tag: str
    #: docker-py ImageCollection.build(...) keywords; None: the image must already be on the engine.
    build: dict[str, Any] | None


def plan_image(resource: DeclaredResource) -> ImagePlan:
    inputs = _Inputs(f"image {resource.name}", resource.inputs)
    tag = inputs.take("name")
    # Only what the provider does on replacement (triggers) or on delete (keepLocally, forceRemove):
    # nothing to do when creating once; images are kept (build cache).
    for key in ("triggers", "keepLocally", "forceRemove", "pullTriggers"):
        inputs.take(key)
    build = inputs.nested("build")
    kwargs = None
    if build is not None:
        context = Path(build.take("context", "."))
        if not context.is_absolute():
            context = REPO_ROOT / context  # Pulumi runs the program and the provider in the project directory
        kwargs = {
            "path": str(context), "dockerfile": build.take("dockerfile", "Dockerfile"), "tag": tag,
            "buildargs": {key: str(value) for key, value in build.take("buildArgs", {}).items()},
            "labels": {key: str(value) for key, value in build.take("labels", {}).items()},
            "target": build.take("target"), "nocache": bool(build.take("noCache", False)),
            "pull": bool(build.take("pullParent", False)), "rm": bool(build.take("remove", True)),
            "forcerm": bool(build.take("forceRemove", False)),
        }
        build.finish()
    inputs.finish()
    return ImagePlan(tag=tag, build=kwargs)


def check_random_password(resource: DeclaredResource) -> None:
    inputs = _Inputs(f"random password {resource.name}", resource.inputs)
    for key in ("length", "special", "upper", "lower", "numeric", "number", "minUpper", "minLower", "minNumeric",
                "minSpecial", "overrideSpecial", "keepers"):
        inputs.take(key)
    inputs.finish()


# --- the engine side ----------------------------------------------------------------------------


def docker_client(timeout: int = CLIENT_TIMEOUT_S):
    import docker

    return docker.from_env(timeout=timeout)


@dataclass
class Deployment:
    """What one deploy created, by name (containers, networks, volumes) and the images it built."""

    stack: str
    declared: DeclaredStack
    home: Path
    containers: dict[str, str] = field(default_factory=dict)  # name -> id
    networks: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # tag -> image id
    timings: dict[str, float] = field(default_factory=dict)  # resource name -> seconds to create
    #: container name -> (destroyGraceSeconds, removeVolumes), how the provider deletes it.
    removal: dict[str, tuple[int, bool]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def declared_container(self, name: str) -> DeclaredResource:
        for resource in self.declared.containers:
            if resource.inputs.get("name") == name:
                return resource
        raise KeyError(f"the {self.stack} stack declares no container named {name!r}")

    def _record(self, kind: str, name: str, ident: str, seconds: float) -> None:
        with self._lock:
            getattr(self, kind)[name] = ident
            self.timings[name] = round(seconds, 1)


def _container_logs(client, ident: str) -> str:
    try:
        return client.api.logs(ident, tail=LOG_TAIL_LINES).decode(errors="replace").strip()
    except Exception as exc:  # the logs are diagnostics only
        return f"(no logs: {exc})"


def _health_log(state: Mapping[str, Any]) -> str:
    entries = (state.get("Health") or {}).get("Log") or []
    return "\n".join(f"  exit {e.get('ExitCode')}: {(e.get('Output') or '').strip()[:300]}" for e in entries[-3:])


def _wait_running(client, ident: str, name: str) -> None:
    deadline = time.monotonic() + RUNNING_TIMEOUT_S
    while True:
        state = client.api.inspect_container(ident)["State"]
        if state.get("Running"):
            return
        if state.get("Status") in ("exited", "dead") or time.monotonic() > deadline:
            raise DeployError(f"container {name} is {state.get('Status')} (exit code {state.get('ExitCode')}) "
                              f"instead of running. Its logs:\n{_container_logs(client, ident)}")
        time.sleep(0.2)


def _wait_healthy(client, ident: str, name: str, timeout_s: int) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        info = client.api.inspect_container(ident)
        state = info["State"]
        health = state.get("Health")
        if health is None:
            raise DeployError(f"container {name} is declared with wait=true but has no healthcheck "
                              "(the provider fails the same way). Fix: declare healthcheck.tests")
        if health.get("Status") == "healthy":
            return
        if not state.get("Running") and not state.get("Restarting"):
            oom = ", killed for exceeding its memory limit" if state.get("OOMKilled") else ""
            raise DeployError(f"container {name} stopped (exit code {state.get('ExitCode')}{oom}) before it became "
                              f"healthy. Last health checks:\n{_health_log(state)}\n"
                              f"Logs:\n{_container_logs(client, ident)}")
        if time.monotonic() > deadline:
            raise DeployError(f"container {name} did not become healthy within {timeout_s}s (waitTimeout); "
                              f"health is {health.get('Status')!r}. Last health checks:\n{_health_log(state)}\n"
                              f"Logs:\n{_container_logs(client, ident)}")
        time.sleep(1)


def create_container(client, plan: ContainerPlan) -> str:
    """Create, attach and start one container as the provider does; returns its id."""
    import docker.errors

    try:
        client.images.get(plan.image)
    except docker.errors.ImageNotFound:
        raise DeployError(f"container {plan.name}: image {plan.image} is not on this engine") from None
    host_config = client.api.create_host_config(**plan.host_config)
    try:
        ident = client.api.create_container(image=plan.image, host_config=host_config, **plan.create)["Id"]
    except docker.errors.APIError as exc:
        raise DeployError(f"container {plan.name}: the engine refused to create it: {exc.explanation or exc}") from None
    try:
        if plan.networks:
            try:
                client.api.disconnect_container_from_network(ident, "bridge")
            except docker.errors.APIError as exc:
                if "is not connected to the network bridge" not in str(exc):
                    raise
            for attachment in plan.networks:
                client.api.connect_container_to_network(
                    ident, attachment.network, aliases=list(attachment.aliases) or None,
                    ipv4_address=attachment.ipv4_address, ipv6_address=attachment.ipv6_address)
        if plan.start:
            client.api.start(ident)
            if plan.wait:
                _wait_healthy(client, ident, plan.name, plan.wait_timeout_s)
            elif plan.must_run:
                _wait_running(client, ident, plan.name)
    except BaseException:
        # The provider deletes a container that failed to come up; so do we (its logs are in the error).
        client.api.remove_container(ident, force=True, v=True)
        raise
    return ident


def build_image(client, plan: ImagePlan) -> str:
    """Build (or, without a build, find) one image; returns its id."""
    import docker.errors

    if plan.build is None:
        try:
            return client.images.get(plan.tag).id
        except docker.errors.ImageNotFound:
            raise DeployError(f"image {plan.tag} is not on this engine and there is no registry to pull it from. "
                              f"Fix: load it first (docker load / docker import) or build it") from None
    context = Path(plan.build["path"])
    if not (context / plan.build["dockerfile"]).is_file():
        raise DeployError(f"image {plan.tag}: no {plan.build['dockerfile']} in {context}")
    try:
        image, _log = client.images.build(**plan.build)
    except docker.errors.BuildError as exc:
        lines = "".join(chunk.get("stream", "") or chunk.get("error", "") for chunk in exc.build_log)
        raise DeployError(f"building {plan.tag} from {context} failed: {exc}\n{lines[-4000:]}") from None
    return image.id


def remove_stack(client, stack: str, log: Log = _stderr) -> list[str]:
    """Remove every container, network and volume labelled ``opencode-sandbox.stack=<stack>``."""
    label = f"{LABEL_STACK}={stack}"
    removed = []
    for info in client.api.containers(all=True, filters={"label": label}):
        client.api.remove_container(info["Id"], force=True, v=True)
        removed.append(f"container {info['Names'][0].lstrip('/')}")
    for info in client.api.networks(filters={"label": label}):
        client.api.remove_network(info["Id"])
        removed.append(f"network {info['Name']}")
    for info in client.api.volumes(filters={"label": label}).get("Volumes") or []:
        client.api.remove_volume(info["Name"])
        removed.append(f"volume {info['Name']}")
    if removed:
        log(f"removed {len(removed)} object(s) of stack {stack!r}: {', '.join(removed)}")
    return removed


def teardown(client, deployment: Deployment, log: Log = _stderr) -> None:
    """Remove what the deployment created (and anything else carrying its stack label), never images."""
    import docker.errors

    errors = []
    for name, ident in deployment.containers.items():
        grace, remove_volumes = deployment.removal.get(name, (0, True))
        try:
            if grace:  # destroyGraceSeconds: stop before removing
                client.api.stop(ident, timeout=grace)
            client.api.remove_container(ident, force=True, v=remove_volumes)
        except docker.errors.NotFound:
            pass  # replaced since (drift tests): the label sweep below finds the replacement
        except docker.errors.APIError as exc:
            errors.append(f"container {name}: {exc}")
    try:
        remove_stack(client, deployment.stack, log)
    except docker.errors.APIError as exc:
        errors.append(f"stack {deployment.stack}: {exc}")
    for kind, remove in (("networks", client.api.remove_network), ("volumes", client.api.remove_volume)):
        for name, ident in getattr(deployment, kind).items():
            try:
                remove(ident)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                errors.append(f"{kind[:-1]} {name}: {exc}")
    if errors:
        raise DeployError("teardown left objects behind:\n  - " + "\n  - ".join(errors))


def recreate_container(client, deployment: Deployment, name: str, override: Mapping[str, Any] | None = None) -> str:
    """Replace a deployed container by its declaration, optionally with some inputs changed (drift tests)."""
    plan = plan_container(deployment.declared_container(name), override)
    client.api.remove_container(name, force=True, v=True)
    ident = create_container(client, plan)
    deployment._record("containers", name, ident, 0)
    return ident


# --- deploying the declared graph ---------------------------------------------------------------


def stand_in_home(home: Path, real_home: Path | None = None) -> Path:
    """A HOME for the program holding what the committed stacks expect, copied from the real one.

    Running as root, ``~`` is /root, a host path no container may mount (catalog rule
    ``no-sensitive-host-mounts``); a stand-in HOME keeps the stack's own directories elsewhere.
    """
    real_home = real_home or Path.home()
    source = real_home / EXTRA_CA_RELATIVE
    if source.is_file():
        target = home / EXTRA_CA_RELATIVE
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    else:
        home.mkdir(parents=True, exist_ok=True)
    return home


def declared_stack(stack: str, home: Path | None = None, set_config: Mapping[str, Any] | None = None,
                   settings_from: str | None = None) -> DeclaredStack:
    """Run the program for ``stack`` (not a preview: host directories are prepared as `pulumi up` does)."""
    home = home or Path.home()
    with developer_machine(home, uid=os.getuid(), gid=os.getgid()):
        return run_program(stack, set_config=set_config, settings_from=settings_from)


def _dependency_graph(declared: DeclaredStack) -> dict[str, set[str]]:
    """custom resource urn -> the custom resources it waits for.

    A dependency on a component means all of its custom descendants, and a resource also waits
    for what its ancestor components depend on (`depends_on` given to a component).
    """
    by_urn = {resource.urn: resource for resource in declared.resources}
    children: dict[str, list[str]] = {}
    for resource in declared.resources:
        children.setdefault(resource.parent, []).append(resource.urn)

    def customs(urn: str) -> set[str]:
        resource = by_urn.get(urn)
        if resource is None:
            return set()
        if resource.custom:
            return {urn}
        return set().union(*(customs(child) for child in children.get(urn, [])))

    graph = {}
    for resource in declared.resources:
        if not resource.custom:
            continue
        deps, ancestor = set(), resource
        while ancestor is not None:
            for dep in ancestor.dependencies:
                deps |= customs(dep)
            ancestor = by_urn.get(ancestor.parent)
        deps.discard(resource.urn)
        graph[resource.urn] = deps
    return graph


def validate(declared: DeclaredStack) -> None:
    """Every input of every resource is mapped, before anything is created."""
    for resource in declared.resources:
        if not resource.custom:
            continue
        planner = {CONTAINER: plan_container, NETWORK: plan_network, VOLUME: plan_volume, REMOTE_IMAGE: plan_image,
                   RANDOM_PASSWORD: check_random_password}.get(resource.type)
        if planner is None:
            raise UnmappedInput(f"{resource.type} {resource.name}: the test deployer cannot create this resource "
                                "type. Fix: map it in tests/support/deployer.py")
        planner(resource)


def _create(client, deployment: Deployment, resource: DeclaredResource, log: Log) -> None:
    started = time.monotonic()
    if resource.type == VOLUME:
        kwargs = plan_volume(resource)
        existing = {v["Name"]: v for v in client.api.volumes().get("Volumes") or []}.get(kwargs["name"])
        if existing is not None:
            raise DeployError(f"volume {kwargs['name']} exists already and is not this deployment's. Fix: "
                              f"docker volume rm {kwargs['name']} (after checking what uses it)")
        ident = client.api.create_volume(**kwargs)["Name"]
        deployment._record("volumes", kwargs["name"], ident, time.monotonic() - started)
    elif resource.type == NETWORK:
        kwargs = plan_network(resource)
        ident = client.api.create_network(**kwargs)["Id"]
        deployment._record("networks", kwargs["name"], ident, time.monotonic() - started)
    elif resource.type == REMOTE_IMAGE:
        plan = plan_image(resource)
        log(f"image {plan.tag}: {'building' if plan.build else 'looking up'}")
        deployment._record("images", plan.tag, build_image(client, plan), time.monotonic() - started)
    elif resource.type == CONTAINER:
        plan = plan_container(resource)
        ident = create_container(client, plan)
        deployment.removal[plan.name] = (plan.destroy_grace_s, plan.remove_volumes)
        deployment._record("containers", plan.name, ident, time.monotonic() - started)
    else:  # RANDOM_PASSWORD: its value is already in the inputs of the containers that use it
        return
    log(f"{resource.type.rsplit(':', 1)[-1]} {resource.name} ready after {time.monotonic() - started:.1f}s")


def _run(deployment: Deployment, log: Log) -> None:
    graph = _dependency_graph(deployment.declared)
    by_urn = {resource.urn: resource for resource in deployment.declared.resources}
    local = threading.local()

    def task(urn: str) -> None:
        if not hasattr(local, "client"):
            local.client = docker_client()
        _create(local.client, deployment, by_urn[urn], log)

    pending, done, failures = dict(graph), set(), []
    running: dict[Future, str] = {}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        while pending or running:
            if not failures:
                for urn in [urn for urn, deps in pending.items() if deps <= done]:
                    running[pool.submit(task, urn)] = urn
                    del pending[urn]
            if not running:
                if pending and not failures:
                    raise DeployError(f"dependency cycle among {sorted(by_urn[u].name for u in pending)}")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                urn = running.pop(future)
                if future.exception() is None:
                    done.add(urn)
                else:
                    failures.append((by_urn[urn], future.exception()))
    if failures:
        resource, first = failures[0]
        others = "".join(f"\n  also: {r.name}: {e}" for r, e in failures[1:])
        raise DeployError(f"deploying {resource.type} {resource.name} failed: {first}{others}") from first


def deploy(stack: str, *, home: Path | None = None, set_config: Mapping[str, Any] | None = None,
           settings_from: str | None = None,
           client=None, log: Log = _stderr) -> Deployment:
    """Create everything ``stack`` declares; on failure, remove what was created and raise DeployError.

    ``home`` is the HOME the program sees (default: the real one), ``set_config`` replaces stack
    settings as :func:`tests.support.program.run_program` does.
    """
    client = client or docker_client()
    started = time.monotonic()
    declared = declared_stack(stack, home, set_config, settings_from)
    validate(declared)
    remove_stack(client, stack, log)  # leftovers of a run that could not clean up
    deployment = Deployment(stack=stack, declared=declared, home=home or Path.home())
    try:
        _run(deployment, log)
    except BaseException:
        teardown(client, deployment, log)
        raise
    deployment.timings["total"] = round(time.monotonic() - started, 1)
    log(f"stack {stack!r} deployed in {deployment.timings['total']}s")
    return deployment
