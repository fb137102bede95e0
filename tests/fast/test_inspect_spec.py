"""sandbox_model/security/adapters/docker_inspect.py on inspect data shaped as Docker 20.10 returns it (no engine needed).

The live counterpart (the same conversion on every container of the running stack, compared
with the declaration) is test_catalog_on_live_stack.py.
"""

from __future__ import annotations

from sandbox_model.security.adapters import docker_inspect as runtime_inspect
from sandbox_model.security.context import CheckContext
from sandbox_model.security.runner import check_container
from sandbox_model.security.spec import Mount, PortBinding


def _attrs(**host_config) -> dict:
    host = {
        "NetworkMode": "bridge",
        "IpcMode": "private",
        "PidMode": "",
        "UTSMode": "",
        "UsernsMode": "",
        "Privileged": False,
        "ReadonlyRootfs": True,
        "CapAdd": None,
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges:true", "seccomp={}"],
        "PortBindings": {},
        "PublishAllPorts": False,
        "Memory": 536870912,
        "NanoCpus": 1000000000,
        "CpuQuota": 0,
        "CpuPeriod": 0,
        "Ulimits": [{"Name": "nproc", "Hard": 256, "Soft": 128}],
        "Tmpfs": {"/tmp": "rw,size=64m"},
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 5},
        "Devices": [],
        "DeviceRequests": None,
        "Sysctls": None,
        "CgroupnsMode": "private",
        "GroupAdd": None,
        "MaskedPaths": ["/proc/asound", "/proc/kcore"],
        "ReadonlyPaths": ["/proc/sys"],
    }
    host.update(host_config)
    return {
        "Name": "/opencode-sandbox-ci-executor-0",
        "Config": {
            "User": "20000:20000",
            "Image": "opencode-sandbox/executor:ci-1",
            "Labels": {"opencode-sandbox.stack": "ci", "opencode-sandbox.role": "executor"},
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 10000000000},
        },
        "HostConfig": host,
        "Mounts": [],
        "NetworkSettings": {"Networks": {"opencode-sandbox-ci-executor-net": {"IPAddress": "172.21.0.2"}}},
    }


def test_a_hardened_container_reads_as_declared():
    spec = runtime_inspect.container_spec(_attrs())
    assert spec.name == "opencode-sandbox-ci-executor-0" and spec.role == "executor"
    assert (spec.user, spec.read_only_root, spec.cap_drop, spec.cap_add) == ("20000:20000", True, ("ALL",), ())
    assert (spec.memory_bytes, spec.nano_cpus, spec.nproc_limit) == (536870912, 1e9, 128)
    assert spec.mounts == (Mount(kind="tmpfs", target="/tmp"),)
    assert spec.networks == ("opencode-sandbox-ci-executor-net",) and spec.network_mode == "bridge"
    assert (spec.pid_mode, spec.uts_mode, spec.userns_mode, spec.ipc_mode) == (None, None, None, "private")
    assert (spec.cgroupns_mode, spec.group_add) == ("private", ())
    assert (spec.restart, spec.restart_max_retries, spec.healthcheck) == ("on-failure", 5, ("CMD", "true"))
    assert spec.log_opts == {"max-size": "10m", "max-file": "3"} and not spec.gpu_requested


def test_cpu_quota_counts_when_nano_cpus_is_unset():
    spec = runtime_inspect.container_spec(_attrs(NanoCpus=0, CpuQuota=50000, CpuPeriod=100000))
    assert spec.nano_cpus == 5e8
    assert runtime_inspect.container_spec(_attrs(NanoCpus=0)).nano_cpus is None


def test_port_bindings_keep_their_host_address():
    spec = runtime_inspect.container_spec(
        _attrs(
            PortBindings={
                "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "14096"}],
                "9090/tcp": [{"HostIp": "", "HostPort": ""}],
            }
        )
    )
    assert spec.ports == (PortBinding(8080, "127.0.0.1", 14096), PortBinding(9090, None, None))
    violations = check_container(spec, CheckContext())
    assert [v.rule.id for v in violations if v.rule.id == "loopback-ports-only"] == ["loopback-ports-only"]
    assert "9090 on 0.0.0.0" in [v for v in violations if v.rule.id == "loopback-ports-only"][0].message


def test_a_volume_bound_to_a_host_directory_is_seen_with_its_path():
    volumes = [
        {"Name": "cache", "Driver": "local", "Options": {"type": "none", "o": "bind", "device": "/etc"}},
        {"Name": "plain", "Driver": "local", "Options": None},
    ]
    attrs = _attrs()
    attrs["Mounts"] = [
        {
            "Type": "volume",
            "Name": "cache",
            "Source": "/var/lib/docker/volumes/cache/_data",
            "Destination": "/models",
            "RW": True,
            "Propagation": "",
        },
        {
            "Type": "bind",
            "Source": "/home/u/project",
            "Destination": "/workspace",
            "RW": False,
            "Propagation": "rprivate",
        },
    ]
    spec = runtime_inspect.container_spec(attrs, runtime_inspect.volume_host_paths(volumes))
    assert spec.mounts[:2] == (
        Mount(kind="volume", target="/models", source="cache", volume_host_path="/etc"),
        Mount(kind="bind", target="/workspace", source="/home/u/project", read_only=True, propagation="rprivate"),
    )
    rules = [v.rule.id for v in check_container(spec, CheckContext())]
    assert "no-sensitive-host-mounts" in rules


def test_unmasked_system_paths_are_read_back_from_the_masked_paths():
    """`--security-opt systempaths=unconfined` reaches the engine as empty MaskedPaths, not as an option."""
    assert (
        "systempaths=unconfined"
        not in runtime_inspect.container_spec(_attrs(MaskedPaths=["/proc/kcore"])).security_opts
    )
    spec = runtime_inspect.container_spec(_attrs(SecurityOpt=[], MaskedPaths=[], ReadonlyPaths=[]))
    assert "system-paths-masked" in [v.rule.id for v in check_container(spec, CheckContext())]


def test_a_network_reads_as_declared():
    spec = runtime_inspect.network_spec(
        {"Name": "n", "Internal": True, "Driver": "bridge", "Options": {}, "Labels": {"opencode-sandbox.stack": "ci"}}
    )
    assert (spec.name, spec.internal, spec.driver, spec.labels) == (
        "n",
        True,
        "bridge",
        {"opencode-sandbox.stack": "ci"},
    )
