"""The seccomp profiles in force: what they deny fails, what the workloads need works.

Probes run in the workspace image (it has python3, bash, coreutils) under the stack's
runtime hardening: a non-root UID with no passwd entry, cap_drop ALL, no-new-privileges,
read-only root, the profile passed inline. The syscall numbers are x86_64's.
"""

from __future__ import annotations

import json
import platform

import pytest

from tests.image.support import hardened_options, run_to_completion

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="the probe's syscall numbers are x86_64's"),
]

# Prints {check: "ok" | errno name}. A raw clone with a namespace flag that
# wrongly succeeds makes a child, which leaves at once.
PROBE = r"""
import asyncio, ctypes, errno, json, multiprocessing, os, socket, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = dict(process_vm_readv=310, ptrace=101, personality=135, unshare=272, clone=56, clone3=435,
          io_uring_setup=425, keyctl=250, bpf=321, shmget=29, mq_open=240, memfd_create=319)
def raw(name, *args):
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) for a in args])
    if result == 0 and name == "clone":
        os._exit(0)
    return "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()]
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return errno.errorcode[exc.errno]
class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
source, target = ctypes.create_string_buffer(b"secret!"), ctypes.create_string_buffer(8)
local, remote = IoVec(ctypes.addressof(target), 8), IoVec(ctypes.addressof(source), 8)
out = {}
ctypes.set_errno(0)
result = libc.syscall(ctypes.c_long(NR["process_vm_readv"]), ctypes.c_long(os.getpid()), ctypes.byref(local),
                      ctypes.c_long(1), ctypes.byref(remote), ctypes.c_long(1), ctypes.c_long(0))
out["process_vm_readv"] = "ok" if result == 8 and target.value == b"secret!" else errno.errorcode[ctypes.get_errno()]
out["ptrace_attach"] = raw("ptrace", 16, -1, 0, 0)
out["personality_bsd"] = raw("personality", 6)
out["personality_query"] = raw("personality", 0xFFFFFFFF)
out["unshare_newuser"] = raw("unshare", 0x10000000)
out["clone_newuser"] = raw("clone", 0x10000000 | 17, 0, 0, 0, 0)
out["clone3"] = raw("clone3", 0, 0)
out["io_uring_setup"] = raw("io_uring_setup", 8, 0)
out["keyctl"] = raw("keyctl", 0, -3, 0)
out["bpf"] = raw("bpf", 0, 0, 0)
out["shmget"] = raw("shmget", 0, 4096, 0o1000 | 0o600)
out["mq_open"] = raw("mq_open", ctypes.addressof(ctypes.create_string_buffer(b"probe")), 0o100 | 2, 0o600, 0)
out["memfd_create"] = raw("memfd_create", ctypes.addressof(ctypes.create_string_buffer(b"probe")), 0)
for name, family, kind, proto in (("unix", socket.AF_UNIX, socket.SOCK_STREAM, 0),
                                  ("inet", socket.AF_INET, socket.SOCK_STREAM, 0),
                                  ("inet6", socket.AF_INET6, socket.SOCK_STREAM, 0),
                                  ("netlink_route", socket.AF_NETLINK, socket.SOCK_RAW, 0),
                                  ("netlink_audit", socket.AF_NETLINK, socket.SOCK_RAW, 9),
                                  ("packet", socket.AF_PACKET, socket.SOCK_DGRAM, 0)):
    out["socket_" + name] = attempt(lambda: socket.socket(family, kind, proto).close())
out["socketpair_unix"] = attempt(lambda: [s.close() for s in socket.socketpair(socket.AF_UNIX)])
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = "ok" if os.waitpid(pid, 0)[1] >> 8 == 7 else "wrong exit status"
run = subprocess.run(["sh", "-c", "echo from-sh | tr a-z A-Z; ls / >/dev/null"], capture_output=True, text=True)
out["subprocess"] = "ok" if run.stdout == "FROM-SH\n" else run.stderr
seen = []
thread = threading.Thread(target=seen.append, args=(1,))
thread.start(); thread.join()
out["thread"] = "ok" if seen == [1] else "thread did not run"
async def echo_round_trip():
    async def handle(reader, writer):
        writer.write((await reader.read(5)).upper()); await writer.drain(); writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    writer.write(b"hello"); await writer.drain()
    answer = await reader.read(5)
    writer.close(); server.close()
    return answer
out["asyncio_tcp"] = "ok" if asyncio.run(echo_round_trip()) == b"HELLO" else "wrong answer"
with multiprocessing.Pool(2) as pool:
    out["multiprocessing"] = "ok" if pool.map(abs, [-1, -2]) == [1, 2] else "wrong result"
print(json.dumps(out))
"""

WORKLOADS_OK = {
    "fork": "ok",
    "subprocess": "ok",
    "thread": "ok",
    "asyncio_tcp": "ok",
    "multiprocessing": "ok",
    "socket_unix": "ok",
    "socket_inet": "ok",
    "socket_inet6": "ok",
    "socketpair_unix": "ok",
    "personality_query": "ok",
}
DENIED_EVERYWHERE = {
    "process_vm_readv": "EPERM",
    "ptrace_attach": "EPERM",
    "personality_bsd": "EPERM",
    "unshare_newuser": "EPERM",
    "clone_newuser": "EPERM",
    "clone3": "ENOSYS",
    "shmget": "EPERM",
    "mq_open": "EPERM",
    "socket_netlink_audit": "EPERM",
    "socket_packet": "EPERM",
}
EXPECTED = {
    "executor": {**WORKLOADS_OK, **DENIED_EVERYWHERE, "socket_netlink_route": "EPERM", "memfd_create": "EPERM"},
    "service": {**WORKLOADS_OK, **DENIED_EVERYWHERE, "socket_netlink_route": "EPERM", "memfd_create": "EPERM"},
    "workspace": {**WORKLOADS_OK, **DENIED_EVERYWHERE, "socket_netlink_route": "ok", "memfd_create": "ok"},
}
#: Kernel interfaces a profile may refuse with EPERM or, where a kernel lacks them, ENOSYS.
EPERM_OR_ENOSYS = ("io_uring_setup", "keyctl", "bpf")


def probe(client, image: str, options: dict) -> dict:
    code, output = run_to_completion(client, image, ["python3", "-c", PROBE], options)
    assert code == 0, f"the probe failed (exit {code}):\n{output[-3000:]}"
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.parametrize("profile", sorted(EXPECTED))
def test_profile_denies_and_allows_as_designed(client, workspace_image, profile):
    results = probe(client, workspace_image, hardened_options(profile))
    for check in EPERM_OR_ENOSYS:
        assert results.pop(check) in ("EPERM", "ENOSYS"), f"{profile}: {check} was not refused"
    assert results == EXPECTED[profile]


def test_probe_tells_our_profile_from_dockers_default(client, workspace_image):
    """Docker's default profile lets the same probe through (with CAP_SYS_PTRACE for process_vm_readv):
    so an EPERM above comes from our profile, not from the probe or the kernel."""
    options = hardened_options(None)
    options["cap_drop"] = ["ALL"]
    options["cap_add"] = ["SYS_PTRACE"]
    results = probe(client, workspace_image, options)
    assert results["process_vm_readv"] == "ok"
    assert results["ptrace_attach"] == "ESRCH"  # the kernel's answer: no process -1
    assert results["socket_netlink_audit"] == "ok"
    assert results["shmget"] == "ok"
    # Ours even with the capability: no capability re-allows anything.
    results = probe(client, workspace_image, {**options, "security_opt": hardened_options("executor")["security_opt"]})
    assert results["process_vm_readv"] == "EPERM"


def test_workspace_tools_run_under_the_workspace_profile(client, workspace_image):
    script = (
        "set -e; cd /workspace; git init -q .; echo needle > notes.txt; git add notes.txt; git commit -qm probe;"
        " git log --format=%s; rg -l needle; python3 -c 'import sqlite3, ssl; print(sqlite3.sqlite_version > \"3\")';"
        ' echo "$BASH_VERSION" | cut -d. -f1; opencode --version'
    )
    options = hardened_options(
        "workspace",
        tmpfs={
            "/tmp": "rw,nosuid,nodev,exec,size=64m",
            "/home/opencode": "rw,nosuid,nodev,size=64m",
            "/workspace": "rw,nosuid,nodev,size=16m,uid=1234,gid=1234",
        },
    )
    code, output = run_to_completion(
        client, workspace_image, ["bash", "-c", script], options, environment={"HOME": "/home/opencode"}
    )
    assert code == 0, output[-3000:]
    assert output.split() == ["probe", "notes.txt", "True", "5", "1.18.34"]
