"""The seccomp profiles in images/seccomp: derived from the generator, shaped for Docker, as strict as promised."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from sandbox_model.paths import SECCOMP_DIR

PROFILE_NAMES = ("executor", "service", "workspace")

AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
ENOSYS = 38

#: Never allowed in any profile.
DENIED_EVERYWHERE = """
    ptrace process_vm_readv process_vm_writev
    keyctl add_key request_key bpf perf_event_open userfaultfd
    io_uring_setup io_uring_enter io_uring_register
    unshare setns chroot pivot_root mount umount2 mount_setattr move_mount open_tree
    fsopen fsconfig fsmount fspick
    kexec_load kexec_file_load init_module finit_module delete_module
    modify_ldt
""".split()

#: Additionally never allowed in the executor (the brief's list for untrusted job code).
DENIED_IN_EXECUTOR = """
    shmget shmat shmctl shmdt semget semop semctl semtimedop msgget msgsnd msgrcv msgctl
    mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr
    acct swapon swapoff reboot syslog quotactl name_to_handle_at open_by_handle_at lookup_dcookie
    clock_settime settimeofday adjtimex iopl ioperm vm86 nfsservctl uselib ustat sysfs _sysctl
    pkey_alloc pkey_free pkey_mprotect memfd_create
""".split()

VALID_ACTIONS = {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"}
VALID_OPS = {
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
}


def load_generator():
    name = "opencode_sandbox_seccomp_generate"
    spec = importlib.util.spec_from_file_location(name, SECCOMP_DIR / "generate.py")
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve annotations through sys.modules[cls.__module__].
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator():
    return load_generator()


def load_profile(name: str) -> dict:
    return json.loads((SECCOMP_DIR / f"{name}.json").read_text())


def allow_rules(profile: dict) -> list[dict]:
    return [rule for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"]


def rules_for(profile: dict, syscall: str) -> list[dict]:
    return [rule for rule in profile["syscalls"] if syscall in rule["names"]]


def unconditionally_allowed(profile: dict) -> set[str]:
    return {name for rule in allow_rules(profile) if not rule.get("args") for name in rule["names"]}


def ever_allowed(profile: dict) -> set[str]:
    return {name for rule in allow_rules(profile) for name in rule["names"]}


def test_every_committed_profile_is_the_generators_output(generator):
    generated = {profile.filename: generator.serialize(profile) for profile in generator.PROFILES}
    committed = {path.name: path.read_text() for path in SECCOMP_DIR.glob("*.json")}
    assert set(committed) == set(generated), "a profile JSON has no generator entry, or one was not generated"
    for filename, text in generated.items():
        assert committed[filename] == text, (
            f"{filename} differs from generate.py's output: run images/seccomp/generate.py"
        )


def test_check_mode_reports_a_hand_edited_profile(generator, tmp_path, capsys):
    assert generator.main(["--out-dir", str(tmp_path)]) == 0
    assert generator.main(["--check", "--out-dir", str(tmp_path)]) == 0
    edited = tmp_path / "executor.json"
    profile = json.loads(edited.read_text())
    profile["syscalls"][0]["names"].append("ptrace")
    edited.write_text(json.dumps(profile, indent=2) + "\n")
    assert generator.main(["--check", "--out-dir", str(tmp_path)]) == 1
    assert "executor.json" in capsys.readouterr().err


def test_generator_refuses_a_syscall_both_allowed_and_denied(generator):
    clash = generator.Profile(
        "clash.json",
        "test",
        allowed=(generator.FILE_IO,),
        denied=(generator.Group("denied", "test", ("read",)),),
    )
    with pytest.raises(ValueError, match="read"):
        generator.render(clash)


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profile_has_the_shape_docker_reads(name):
    profile = load_profile(name)
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]
    assert "archMap" not in profile, "sub-architectures (32-bit, x32) must not be reachable"
    assert profile["syscalls"], "a profile without rules"
    for rule in profile["syscalls"]:
        assert isinstance(rule["names"], list) and rule["names"], rule
        assert all(isinstance(n, str) and n.isidentifier() for n in rule["names"]), rule
        assert rule["action"] in VALID_ACTIONS, rule
        if rule["action"] == "SCMP_ACT_ERRNO":
            assert isinstance(rule["errnoRet"], int) and rule["errnoRet"] > 0, rule
        for arg in rule.get("args", []):
            assert set(arg) == {"index", "value", "valueTwo", "op"}, arg
            assert 0 <= arg["index"] <= 5 and arg["op"] in VALID_OPS, arg
            assert isinstance(arg["value"], int) and isinstance(arg["valueTwo"], int), arg


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_no_capability_or_kernel_conditional_rules(name):
    for rule in load_profile(name)["syscalls"]:
        assert "includes" not in rule and "excludes" not in rule, rule


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_dangerous_syscalls_are_never_allowed(name):
    profile = load_profile(name)
    leaked = sorted(set(DENIED_EVERYWHERE) & ever_allowed(profile))
    assert not leaked, f"{name}.json allows {leaked}"


def test_executor_denies_its_whole_list():
    profile = load_profile("executor")
    leaked = sorted(set(DENIED_EVERYWHERE + DENIED_IN_EXECUTOR) & ever_allowed(profile))
    assert not leaked, f"executor.json allows {leaked}"
    explicitly_denied = {
        name
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ERRNO" and rule.get("errnoRet") == 1
        for name in rule["names"]
    }
    assert {"ptrace", "process_vm_readv", "unshare", "mount", "shmget", "keyctl"} <= explicitly_denied


def test_executor_is_the_narrowest_profile():
    executor = ever_allowed(load_profile("executor"))
    for other in ("service", "workspace"):
        assert executor <= ever_allowed(load_profile(other)), f"executor allows more than {other}"


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_clone_is_allowed_only_without_namespace_flags(name):
    profile = load_profile(name)
    assert "clone" not in unconditionally_allowed(profile)
    [rule] = rules_for(profile, "clone")
    assert rule["action"] == "SCMP_ACT_ALLOW"
    assert rule["args"] == [{"index": 0, "value": NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_clone3_fails_with_enosys(name):
    [rule] = rules_for(load_profile(name), "clone3")
    assert rule["action"] == "SCMP_ACT_ERRNO" and rule["errnoRet"] == ENOSYS
    assert not rule.get("args")


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_socket_is_allowed_per_family(name):
    profile = load_profile(name)
    assert "socket" not in unconditionally_allowed(profile)
    allowed = set()
    for rule in rules_for(profile, "socket"):
        assert rule["action"] == "SCMP_ACT_ALLOW" and rule["names"] == ["socket"], rule
        by_index = {arg["index"]: arg for arg in rule["args"]}
        assert by_index[0]["op"] == "SCMP_CMP_EQ", rule
        family = by_index[0]["value"]
        if family == AF_NETLINK:
            # Only NETLINK_ROUTE (protocol 0), and only in the workspace.
            assert name == "workspace", f"{name}.json allows netlink sockets"
            assert by_index[2] == {"index": 2, "value": 0, "valueTwo": 0, "op": "SCMP_CMP_EQ"}
        else:
            assert set(by_index) == {0}, rule
        allowed.add(family)
    expected = {AF_UNIX, AF_INET, AF_INET6} | ({AF_NETLINK} if name == "workspace" else set())
    assert allowed == expected


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_socketpair_is_unix_only(name):
    profile = load_profile(name)
    [rule] = rules_for(profile, "socketpair")
    assert rule["action"] == "SCMP_ACT_ALLOW"
    assert rule["args"] == [{"index": 0, "value": AF_UNIX, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_personality_is_linux_or_query_only(name):
    profile = load_profile(name)
    assert "personality" not in unconditionally_allowed(profile)
    values = set()
    for rule in rules_for(profile, "personality"):
        assert rule["action"] == "SCMP_ACT_ALLOW"
        [arg] = rule["args"]
        assert arg["index"] == 0 and arg["op"] == "SCMP_CMP_EQ"
        values.add(arg["value"])
    assert values == {0, 0xFFFFFFFF}


def test_workspace_keeps_what_a_jit_runtime_needs():
    allowed = ever_allowed(load_profile("workspace"))
    assert {"memfd_create", "mprotect", "membarrier", "madvise", "sched_setscheduler"} <= allowed
