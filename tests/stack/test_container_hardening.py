"""Every container of the running stack, from inside: the catalog's rules are in force, not just configured.

One test per (rule, role): a failure names the rule (test id) and the container (message). Each
probe reads what the kernel enforces for the container's PID 1 or tries what the rule forbids;
expected values come from the catalog or from the container's own configuration (``docker
inspect``), whose compliance test_catalog_on_live_stack.py checks.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

import pytest

from sandbox_model.naming import LABEL_STACK
from sandbox_model.roles import ALL_ROLES
from sandbox_model.security import baseline
from tests.stack.runtime import container_host, has_command

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

ROLES = sorted(ALL_ROLES)

# Linux capability numbers (include/uapi/linux/capability.h), to compare a role's allowlist
# with the kernel's capability bitmasks.
CAPABILITY_NUMBERS = {
    name: number
    for number, name in enumerate(
        (
            "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
            "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT "
            "SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE "
            "AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ "
            "PERFMON BPF CHECKPOINT_RESTORE"
        ).split()
    )
}

# Syscalls the project's profiles deny (EPERM), tried on the container itself. ioprio_set
# (`ionice`, util-linux, in every image) is allowed by Docker's default profile on every engine
# version, so its denial proves our profile is in force. process_vm_readv on the process's own
# memory (python3, where the image has it) is allowed by Docker's default profile from Docker 23
# on; Docker 20.10's allows it only with CAP_SYS_PTRACE.
IONICE_PROBE = "ionice -c 3 -p $$ 2>&1 && echo allowed"
IONICE_DENIED = "ionice: ioprio_set failed: Operation not permitted"
IONICE_ALLOWED = "allowed"
PROCESS_VM_READV_PROBE = (
    "import ctypes, os\n"
    "class IoVec(ctypes.Structure):\n"
    "    _fields_ = [('base', ctypes.c_void_p), ('length', ctypes.c_size_t)]\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "source, target = ctypes.create_string_buffer(b'probe', 8), ctypes.create_string_buffer(8)\n"
    "local = IoVec(ctypes.cast(target, ctypes.c_void_p), 8)\n"
    "remote = IoVec(ctypes.cast(source, ctypes.c_void_p), 8)\n"
    "count = libc.process_vm_readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)\n"
    "print(count, ctypes.get_errno())\n"
)
PYTHON_PROBE = f"python3 -I -c {shlex.quote(PROCESS_VM_READV_PROBE)}"
PYTHON_DENIED = "-1 1"  # returned -1, errno EPERM
PYTHON_ALLOWED = "8 0"  # read its 8 bytes


def _for_each_container(stack, role: str, rule_id: str, probe: Callable[[str], str | None]) -> None:
    names = stack.containers.get(role, ())
    if not names:
        pytest.skip(f"stack {stack.stack!r} has no {role} container")
    problems = [
        f"rule {rule_id} on container {name}: {problem}" for name in names if (problem := probe(name)) is not None
    ]
    assert not problems, "\n".join(problems)


def _status(name: str) -> dict[str, str]:
    text = container_host(name).file("/proc/1/status").content_string
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _inspect(docker_api, name: str) -> dict:
    return docker_api.api.inspect_container(name)


@pytest.mark.parametrize("role", ROLES)
def test_non_root_user(deployed_stack, docker_api, role):
    def probe(name):
        host = container_host(name)
        uid, gid = host.check_output("id -u"), host.check_output("id -g")
        configured = _inspect(docker_api, name)["Config"]["User"]
        if uid == "0" or gid == "0":
            return f"runs as uid {uid} gid {gid}"
        if configured.split(":")[0] != uid:
            return f"runs as uid {uid}, configured user is {configured!r}"
        return None

    _for_each_container(deployed_stack, role, "non-root-user", probe)


@pytest.mark.parametrize("role", ROLES)
def test_read_only_root(deployed_stack, role):
    def probe(name):
        host = container_host(name)
        result = host.run("touch /.opencode-sandbox-write-probe")
        if result.rc == 0:
            host.run("rm -f /.opencode-sandbox-write-probe")
            return "a file could be created in /"
        if "Read-only file system" not in result.stderr:
            return f"writing / failed for another reason than a read-only root: {result.stderr.strip()}"
        root = [
            line.split() for line in host.file("/proc/1/mounts").content_string.splitlines() if line.split()[1] == "/"
        ]
        if not root or "ro" not in root[-1][3].split(","):
            return f"/ is not mounted read-only: {root}"
        return None

    _for_each_container(deployed_stack, role, "read-only-root", probe)


@pytest.mark.parametrize("role", ROLES)
def test_capabilities_dropped(deployed_stack, role):
    allowed = 0
    for capability in baseline.ROLE_CAPABILITIES.get(role, {}):
        allowed |= 1 << CAPABILITY_NUMBERS[capability.upper().removeprefix("CAP_")]

    def probe(name):
        status = _status(name)
        sets = {key: int(status[key], 16) for key in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb")}
        wrong = {key: f"{value:#x}" for key, value in sets.items() if value & ~allowed}
        return f"capability sets beyond the role's allowlist ({allowed:#x}): {wrong}" if wrong else None

    _for_each_container(deployed_stack, role, "capabilities-dropped", probe)


@pytest.mark.parametrize("role", ROLES)
def test_no_new_privileges(deployed_stack, role):
    def probe(name):
        value = _status(name).get("NoNewPrivs")
        return None if value == "1" else f"NoNewPrivs is {value!r} in /proc/1/status"

    _for_each_container(deployed_stack, role, "no-new-privileges", probe)


def _seccomp_probes(name: str) -> list[tuple[str, str, str]]:
    """(command, output when denied, output when allowed) of each probe that applies to this container."""
    probes = [(IONICE_PROBE, IONICE_DENIED, IONICE_ALLOWED)]
    if has_command(container_host(name), "python3"):
        probes.append((PYTHON_PROBE, PYTHON_DENIED, PYTHON_ALLOWED))
    return probes


@pytest.mark.parametrize("role", ROLES)
def test_seccomp_confined(deployed_stack, docker_api, role):
    def probe(name):
        mode = _status(name).get("Seccomp")
        if mode != "2":
            return f"Seccomp is {mode!r} in /proc/1/status (2 = filter mode)"
        opts = _inspect(docker_api, name)["HostConfig"]["SecurityOpt"] or []
        if f"seccomp={baseline.BUILTIN_SECCOMP}" in opts:
            return None  # Docker's own profile (allowed for the model role only, see the catalog check)
        for command, denied, _allowed in _seccomp_probes(name):
            output = container_host(name).run(command).stdout.strip()
            if output != denied:
                return f"{command.split()[0]} probe printed {output!r}, expected {denied!r} (EPERM)"
        return None

    _for_each_container(deployed_stack, role, "seccomp-confined", probe)


@pytest.mark.parametrize("probe", ["ionice", "python3"])
def test_seccomp_probes_pass_under_dockers_default_profile(deployed_stack, docker_api, probe):
    """Control: each probe succeeds under Docker's default profile, so its EPERM above is our profile's.

    The same image, user and hardening, minus the project's profile. process_vm_readv gets
    CAP_SYS_PTRACE, which Docker 20.10's default profile requires for it (Docker 23+ does not).
    """
    command, _denied, allowed = {
        "ionice": (IONICE_PROBE, IONICE_DENIED, IONICE_ALLOWED),
        "python3": (PYTHON_PROBE, PYTHON_DENIED, PYTHON_ALLOWED),
    }[probe]
    name = next((name for name in deployed_stack.all_containers if has_command(container_host(name), probe)), None)
    if name is None:
        pytest.skip(f"no container of the stack has {probe}")
    config = _inspect(docker_api, name)["Config"]
    output = (
        docker_api.containers.run(
            config["Image"],
            [f"{command}; exit 0"],
            entrypoint=["/bin/sh", "-c"],
            user=config["User"],
            remove=True,
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            cap_add=["SYS_PTRACE"] if probe == "python3" else None,
            security_opt=[baseline.NO_NEW_PRIVILEGES],
            labels={LABEL_STACK: deployed_stack.stack},  # the teardown's label sweep finds it if it outlives the test
        )
        .decode()
        .strip()
    )
    assert output == allowed, f"the {probe} probe in {name}'s image under Docker's default profile printed {output!r}"


CGROUP_V1 = "/sys/fs/cgroup/memory/memory.limit_in_bytes"


def _cgroup_file(host, v1: str, v2: str) -> str:
    """A cgroup file of the container's own cgroup: the v1 controller file, else the unified (v2) one."""
    return host.file(f"/sys/fs/cgroup/{v1 if host.file(CGROUP_V1).exists else v2}").content_string.strip()


@pytest.mark.parametrize("role", ROLES)
def test_memory_limited(deployed_stack, docker_api, role):
    def probe(name):
        configured = _inspect(docker_api, name)["HostConfig"]["Memory"]
        enforced = _cgroup_file(container_host(name), "memory/memory.limit_in_bytes", "memory.max")
        if not configured:
            return "no memory limit is configured"
        return None if enforced == str(configured) else f"the cgroup limit is {enforced}, configured {configured}"

    _for_each_container(deployed_stack, role, "memory-limited", probe)


@pytest.mark.parametrize("role", ROLES)
def test_cpu_limited(deployed_stack, docker_api, role):
    def probe(name):
        host = container_host(name)
        configured = _inspect(docker_api, name)["HostConfig"]["NanoCpus"]
        if host.file(CGROUP_V1).exists:
            quota = int(_cgroup_file(host, "cpu/cpu.cfs_quota_us", ""))
            period = int(_cgroup_file(host, "cpu/cpu.cfs_period_us", ""))
        else:
            quota_text, period_text = _cgroup_file(host, "", "cpu.max").split()
            quota, period = (-1 if quota_text == "max" else int(quota_text)), int(period_text)
        if not configured or quota <= 0:
            return f"no CPU limit (NanoCpus {configured}, CFS quota {quota})"
        enforced = quota * 10**9 // period
        return None if enforced == configured else f"the CFS quota allows {enforced} nano-CPUs, configured {configured}"

    _for_each_container(deployed_stack, role, "cpu-limited", probe)


@pytest.mark.parametrize("role", ROLES)
def test_nproc_limited(deployed_stack, docker_api, role):
    def probe(name):
        configured = [u for u in _inspect(docker_api, name)["HostConfig"].get("Ulimits") or [] if u["Name"] == "nproc"]
        limits = container_host(name).file("/proc/1/limits").content_string
        line = next((line for line in limits.splitlines() if line.startswith("Max processes")), "")
        enforced = re.split(r"\s{2,}", line.strip())[1:3]
        if not configured:
            return f"no nproc ulimit is configured (PID 1 has {enforced})"
        expected = [str(configured[0]["Soft"]), str(configured[0]["Hard"])]
        return None if enforced == expected else f"PID 1's Max processes is {enforced}, configured {expected}"

    _for_each_container(deployed_stack, role, "nproc-limited", probe)


@pytest.mark.parametrize("role", ROLES)
def test_tmpfs_sizes_in_force(deployed_stack, docker_api, role):
    """Each tmpfs is mounted with the size and flags it is configured with (no catalog rule: sizing)."""

    def probe(name):
        configured = _inspect(docker_api, name)["HostConfig"].get("Tmpfs") or {}
        mounts = {
            fields[1]: fields[3].split(",")
            for fields in (
                line.split() for line in container_host(name).file("/proc/1/mounts").content_string.splitlines()
            )
            if fields[2] == "tmpfs"
        }
        problems = []
        for target, options in configured.items():
            wanted = options.split(",")
            size = next((o.split("=", 1)[1] for o in wanted if o.startswith("size=")), None)
            actual = mounts.get(target)
            if actual is None:
                problems.append(f"{target} is not a tmpfs")
                continue
            if size is not None and f"size={_kibibytes(size)}k" not in actual:
                problems.append(f"{target} is mounted {actual}, configured size={size}")
            for flag in ("noexec", "nosuid", "nodev"):
                if flag in wanted and flag not in actual:
                    problems.append(f"{target} lacks {flag}: {actual}")
        return "; ".join(problems) or None

    _for_each_container(deployed_stack, role, "tmpfs-sizes", probe)


def _kibibytes(size: str) -> int:
    units = {"k": 1, "m": 1024, "g": 1024 * 1024}
    return int(size[:-1]) * units[size[-1].lower()] if size[-1].isalpha() else int(size) // 1024


@pytest.mark.parametrize("role", ROLES)
def test_log_rotation(deployed_stack, docker_api, role):
    def probe(name):
        config = _inspect(docker_api, name)["HostConfig"]["LogConfig"]
        expected = {"Type": baseline.LOG_DRIVER, "Config": dict(baseline.LOG_OPTS)}
        return None if config == expected else f"log config is {config}, expected {expected}"

    _for_each_container(deployed_stack, role, "log-rotation", probe)


@pytest.mark.parametrize("role", ROLES)
def test_healthy(deployed_stack, docker_api, role):
    def probe(name):
        state = _inspect(docker_api, name)["State"]
        health = (state.get("Health") or {}).get("Status")
        return None if health == "healthy" else f"health is {health!r} (state {state.get('Status')})"

    _for_each_container(deployed_stack, role, "healthcheck-defined", probe)
