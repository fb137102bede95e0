#!/usr/bin/env python3
"""Generate the stack's seccomp profiles from the syscall groups below.

This file is the source of truth; the JSON files beside it are derived and
committed so the stack can read them without running Python code:

    python3 images/seccomp/generate.py           # (re)write the JSON files
    python3 images/seccomp/generate.py --check   # exit 1 when a committed file differs

Every profile denies by default (EPERM) and allows named groups. A syscall name
that an architecture does not have (e.g. ``open`` on aarch64) is skipped for
that architecture by runc/libseccomp, so one list serves x86_64 and aarch64.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

EPERM = 1
ENOSYS = 38

# Native 64-bit ABIs only: no i386/x32/arm32 sub-architectures, so the 32-bit
# syscall tables (a classic way around a filter) are not reachable at all.
ARCHITECTURES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]

# Namespace-creating clone flags (include/uapi/linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NAMESPACE_FLAGS = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)

AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
AF_NETLINK = 16
NETLINK_ROUTE = 0

PER_LINUX = 0
PERSONALITY_QUERY = 0xFFFFFFFF


@dataclass(frozen=True)
class Group:
    """Syscalls that are allowed (or denied) together, and why."""

    name: str
    why: str
    syscalls: tuple[str, ...]


def group(name: str, why: str, syscalls: str) -> Group:
    return Group(name, why, tuple(syscalls.split()))


# --------------------------------------------------------------------------
# Allowed groups. Each profile is a union of some of these.
# --------------------------------------------------------------------------

FILE_IO = group(
    "file-io",
    "Reading, writing and seeking open files and pipes: every program.",
    """
    read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 lseek
    close close_range dup dup2 dup3 fcntl ioctl flock pipe pipe2
    sendfile copy_file_range splice
    fsync fdatasync sync_file_range fadvise64 readahead
    ftruncate truncate fallocate
    """,
)

FILESYSTEM = group(
    "filesystem",
    "Opening, inspecting and changing paths (coreutils, Python's os/shutil/pathlib, git). "
    "The container's own files only: mount-level operations are in no group.",
    """
    open openat openat2 creat
    stat fstat lstat newfstatat statx statfs fstatfs
    access faccessat faccessat2
    getdents getdents64 getcwd chdir fchdir
    readlink readlinkat
    mkdir mkdirat rmdir unlink unlinkat
    rename renameat renameat2 link linkat symlink symlinkat
    mknod mknodat
    chmod fchmod fchmodat fchmodat2 chown fchown lchown fchownat umask
    utime utimes utimensat futimesat
    getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr
    setxattr lsetxattr fsetxattr removexattr lremovexattr fremovexattr
    inotify_init inotify_init1 inotify_add_watch inotify_rm_watch
    """,
)

MEMORY = group(
    "memory",
    "Process memory: the dynamic loader (mmap/mprotect), malloc (brk/madvise/mremap).",
    """
    brk mmap munmap mremap mprotect madvise msync mincore
    """,
)

PROCESS = group(
    "process",
    "Running programs and threads: exec, exit, wait, the thread/TLS set-up glibc does "
    "(set_tid_address, robust futex lists, rseq, arch_prctl), futexes, scheduling queries "
    "and rlimits. clone is allowed separately, only without namespace flags.",
    """
    execve execveat exit exit_group wait4 waitid
    fork vfork
    getpid getppid gettid getpgid setpgid getpgrp getsid setsid
    getuid geteuid getgid getegid getresuid getresgid getgroups
    set_tid_address set_robust_list get_robust_list rseq arch_prctl prctl
    futex futex_waitv
    sched_yield sched_getaffinity sched_setaffinity sched_getparam sched_getscheduler
    sched_get_priority_max sched_get_priority_min sched_rr_get_interval
    getpriority setpriority getcpu
    getrlimit setrlimit prlimit64 getrusage
    uname sysinfo capget
    pidfd_open pidfd_send_signal
    restart_syscall seccomp map_shadow_stack
    """,
)

SELF_CONFINEMENT = group(
    "self-confinement",
    "Landlock: a process may only ever narrow its own file access (and its descendants'), never "
    "widen it. The executor's job launcher puts every job in a domain that cannot open /proc (or "
    "anything but its scratch space) for writing: launcher/job_launch.c.",
    """
    landlock_create_ruleset landlock_add_rule landlock_restrict_self
    """,
)

SIGNALS = group(
    "signals",
    "Signal delivery and handling (shells, subprocess, asyncio's signal handling).",
    """
    kill tkill tgkill
    rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend rt_sigpending
    rt_sigtimedwait rt_sigqueueinfo rt_tgsigqueueinfo sigaltstack pause
    """,
)

TIME = group(
    "time",
    "Reading clocks, sleeping and timers. Setting the clock is denied (see DENIED_CLOCK).",
    """
    clock_gettime clock_getres clock_nanosleep nanosleep gettimeofday time times
    alarm getitimer setitimer
    timer_create timer_settime timer_gettime timer_getoverrun timer_delete
    """,
)

EVENT_LOOP = group(
    "event-loop",
    "Readiness and notification fds: select/poll for shells and subprocess, epoll and "
    "eventfd/signalfd/timerfd for asyncio, uvicorn and other event loops.",
    """
    select pselect6 poll ppoll
    epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait epoll_pwait2
    eventfd eventfd2 signalfd signalfd4
    timerfd_create timerfd_settime timerfd_gettime
    """,
)

SOCKETS = group(
    "sockets",
    "Using sockets once made. Making one is argument-filtered (socket, socketpair rules).",
    """
    bind listen accept accept4 connect shutdown
    getsockname getpeername getsockopt setsockopt
    sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg
    """,
)

RANDOM = group(
    "random",
    "Entropy for hash seeds, TLS and uuid (Python reads getrandom at start-up).",
    "getrandom",
)

# --- extra groups for the broader profiles ---------------------------------

JIT_RUNTIME = group(
    "jit-runtime",
    "What a JIT-ing runtime such as Bun/JavaScriptCore uses: anonymous executable "
    "files (memfd_create), cross-thread instruction-cache barriers (membarrier), "
    "memory locking for secrets, NUMA placement hints and protection keys. pkeys "
    "only change the calling process's own page permissions; JITs use them to keep "
    "code pages write-protected, so denying them would weaken the runtime's own defence.",
    """
    memfd_create membarrier
    mlock mlock2 munlock mlockall munlockall
    get_mempolicy set_mempolicy mbind
    pkey_alloc pkey_free pkey_mprotect
    """,
)

SCHEDULING_POLICY = group(
    "scheduling-policy",
    "Per-thread scheduling policy: Bun marks its pool threads SCHED_RESET_ON_FORK. "
    "Without CAP_SYS_NICE (and with RLIMIT_RTPRIO 0) a process can only lower its own "
    "priority, never take a real-time policy.",
    """
    sched_setscheduler sched_setparam sched_setattr sched_getattr
    """,
)

LINUX_AIO = group(
    "linux-aio",
    "Kernel AIO (io_submit): used by some runtimes for file I/O when io_uring is "
    "unavailable. io_uring itself stays denied.",
    """
    io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents
    """,
)

PIPE_EXTRAS = group(
    "pipe-extras",
    "Zero-copy pipe helpers some tools (git, runtimes) use.",
    "tee vmsplice",
)

IDENTITY_SWITCH = group(
    "identity-switch",
    "Changing user/group ids. Without capabilities a process can only switch among "
    "ids it already holds; daemons that are started as root to drop privileges "
    "(squid) call these, and fail if they are missing, even when they are no-ops.",
    """
    setuid setgid setreuid setregid setresuid setresgid setgroups setfsuid setfsgid
    capset
    """,
)

# --------------------------------------------------------------------------
# Denied groups: never in any allow list. They are listed explicitly (EPERM)
# so the intent is visible in the JSON and the tests can check it.
# --------------------------------------------------------------------------

DENIED_INTROSPECTION = group(
    "denied-process-introspection",
    "Reading or writing another process's memory and state: ptrace and its relatives. "
    "Docker's default profile allows process_vm_readv only to CAP_SYS_PTRACE (so with no "
    "capabilities it cannot tell the profiles apart); the runtime checks probe ioprio_set, "
    "which Docker's default allows and ours deny.",
    """
    ptrace process_vm_readv process_vm_writev process_madvise pidfd_getfd kcmp
    """,
)

DENIED_NAMESPACES_AND_MOUNTS = group(
    "denied-namespaces-and-mounts",
    "Leaving or reshaping the container's view of the system: new namespaces, joining "
    "others, and the whole mount API (old and new).",
    """
    unshare setns chroot pivot_root
    mount umount umount2 mount_setattr move_mount open_tree
    fsopen fsconfig fsmount fspick
    """,
)

DENIED_KERNEL_ATTACK_SURFACE = group(
    "denied-kernel-attack-surface",
    "Large or historically exploit-prone kernel interfaces no workload here needs: "
    "io_uring, the keyring, BPF, perf events, userfaultfd (used to win kernel races), "
    "LDT/IO-port access, vm86, obsolete calls.",
    """
    io_uring_setup io_uring_enter io_uring_register
    keyctl add_key request_key
    bpf perf_event_open userfaultfd
    modify_ldt iopl ioperm vm86 vm86old
    nfsservctl uselib ustat sysfs _sysctl lookup_dcookie
    name_to_handle_at open_by_handle_at
    remap_file_pages memfd_secret
    """,
)

DENIED_SYSTEM_ADMIN = group(
    "denied-system-administration",
    "Host-wide administration: kernel images and modules, reboot, swap, accounting, "
    "quotas, the kernel log, host names.",
    """
    kexec_load kexec_file_load init_module finit_module delete_module
    reboot swapon swapoff acct quotactl quotactl_fd syslog
    sethostname setdomainname vhangup
    """,
)

DENIED_CLOCK = group(
    "denied-clock",
    "Setting or slewing the system clock (host-wide).",
    """
    clock_settime settimeofday adjtimex clock_adjtime stime
    """,
)

DENIED_IPC = group(
    "denied-ipc",
    "SysV IPC and POSIX message queues: objects outlive the process that made them, so "
    "one job could leave state (or a trap) for the next job in the same IPC namespace.",
    """
    shmget shmat shmctl shmdt
    semget semop semctl semtimedop
    msgget msgsnd msgrcv msgctl
    mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr
    """,
)

ALWAYS_DENIED = (
    DENIED_INTROSPECTION,
    DENIED_NAMESPACES_AND_MOUNTS,
    DENIED_KERNEL_ATTACK_SURFACE,
    DENIED_SYSTEM_ADMIN,
    DENIED_CLOCK,
)

# What the executor additionally keeps out, although other profiles allow it.
EXECUTOR_ONLY_DENIED = group(
    "denied-in-executor",
    "Not needed by Python or a shell, so not offered to untrusted job code: fileless "
    "executables (memfd_create), memory locking, NUMA and pkey calls, kernel AIO, "
    "identity switching, and flushing every filesystem of the host (sync/syncfs).",
    """
    memfd_create membarrier mlock mlock2 munlock mlockall munlockall
    get_mempolicy set_mempolicy mbind migrate_pages move_pages
    pkey_alloc pkey_free pkey_mprotect
    io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents
    setuid setgid setreuid setregid setresuid setresgid setgroups setfsuid setfsgid capset
    sync syncfs
    """,
)


# --------------------------------------------------------------------------
# Argument-filtered rules.
# --------------------------------------------------------------------------


def _arg(index: int, value: int, op: str = "SCMP_CMP_EQ", value_two: int = 0) -> dict:
    return {"index": index, "value": value, "valueTwo": value_two, "op": op}


def clone_without_namespaces() -> dict:
    # clone's flags are argument 0 on x86_64 and aarch64 (only s390 differs).
    # MASKED_EQ: (flags & value) == valueTwo, i.e. no namespace bit set.
    return {
        "names": ["clone"],
        "action": "SCMP_ACT_ALLOW",
        "args": [_arg(0, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ", 0)],
        "comment": "threads and fork, but no clone flag that creates a namespace",
    }


def clone3_enosys() -> dict:
    # clone3 takes its flags in a struct that seccomp cannot read, so it cannot
    # be filtered; ENOSYS (not EPERM) makes glibc fall back to clone.
    return {
        "names": ["clone3"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": ENOSYS,
        "comment": "flags unreadable by seccomp: ENOSYS so glibc falls back to the filtered clone",
    }


def socket_rules(domains: dict[str, int]) -> list[dict]:
    # One rule per domain: the args of a single rule are ANDed.
    return [
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [_arg(0, number)],
            "comment": f"socket({name}, ...)",
        }
        for name, number in domains.items()
    ]


def netlink_route_socket() -> dict:
    # Reading interfaces and addresses (getifaddrs: Bun's os.networkInterfaces,
    # `ip addr`). Changing them needs CAP_NET_ADMIN, which no container has; other
    # netlink families (netfilter, audit, ...) stay denied. Both args must match.
    return {
        "names": ["socket"],
        "action": "SCMP_ACT_ALLOW",
        "args": [_arg(0, AF_NETLINK), _arg(2, NETLINK_ROUTE)],
        "comment": "socket(AF_NETLINK, *, NETLINK_ROUTE) only",
    }


def socketpair_unix_only() -> dict:
    return {
        "names": ["socketpair"],
        "action": "SCMP_ACT_ALLOW",
        "args": [_arg(0, AF_UNIX)],
        "comment": "socketpair(AF_UNIX, ...) only",
    }


def personality_rules() -> list[dict]:
    # PER_LINUX is the only personality anything here runs with; 0xffffffff only
    # queries. Other values (e.g. READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE) weaken
    # memory protections.
    return [
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [_arg(0, value)],
            "comment": comment,
        }
        for value, comment in ((PER_LINUX, "PER_LINUX"), (PERSONALITY_QUERY, "query the current personality"))
    ]


INET_DOMAINS = {"AF_UNIX": AF_UNIX, "AF_INET": AF_INET, "AF_INET6": AF_INET6}


# --------------------------------------------------------------------------
# Profiles.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    filename: str
    description: str
    allowed: tuple[Group, ...]
    denied: tuple[Group, ...]
    netlink_route: bool = False


BASE_GROUPS = (FILE_IO, FILESYSTEM, MEMORY, PROCESS, SIGNALS, TIME, EVENT_LOOP, SOCKETS, RANDOM, SELF_CONFINEMENT)

PROFILES = (
    Profile(
        "executor.json",
        "Executor containers running the agent's generated code: Python 3, a POSIX shell, "
        "coreutils and asyncio/uvicorn HTTP services. Stricter than Docker's default.",
        allowed=BASE_GROUPS,
        denied=(*ALWAYS_DENIED, DENIED_IPC, EXECUTOR_ONLY_DENIED),
    ),
    Profile(
        "service.json",
        "Long-running network daemons: the gateways (socat, squid) and the CI model test double.",
        allowed=(*BASE_GROUPS, IDENTITY_SWITCH, PIPE_EXTRAS),
        denied=(*ALWAYS_DENIED, DENIED_IPC),
    ),
    Profile(
        "workspace.json",
        "The OpenCode workspace: the Bun/JavaScriptCore agent binary, git, ripgrep, python3, bash, coreutils and curl.",
        allowed=(*BASE_GROUPS, JIT_RUNTIME, SCHEDULING_POLICY, LINUX_AIO, PIPE_EXTRAS),
        denied=(*ALWAYS_DENIED, DENIED_IPC),
        netlink_route=True,
    ),
)


def _names(groups: tuple[Group, ...]) -> list[str]:
    return sorted({name for g in groups for name in g.syscalls})


def render(profile: Profile) -> dict:
    allowed = _names(profile.allowed)
    denied = _names(profile.denied)
    overlap = sorted(set(allowed) & set(denied))
    if overlap:
        raise ValueError(f"{profile.filename}: allowed and denied at once: {overlap}")
    filtered = {"clone", "clone3", "socket", "socketpair", "personality"}
    if filtered & (set(allowed) | set(denied)):
        raise ValueError(f"{profile.filename}: argument-filtered syscalls must not be in a plain group")
    rules: list[dict] = [
        {
            "names": allowed,
            "action": "SCMP_ACT_ALLOW",
            "comment": "groups: " + ", ".join(g.name for g in profile.allowed),
        },
        clone_without_namespaces(),
        clone3_enosys(),
        *socket_rules(INET_DOMAINS),
        *([netlink_route_socket()] if profile.netlink_route else []),
        socketpair_unix_only(),
        *personality_rules(),
        {
            "names": denied,
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": EPERM,
            "comment": "explicitly denied: " + ", ".join(g.name for g in profile.denied),
        },
    ]
    return {
        "comment": f"GENERATED by images/seccomp/generate.py, do not edit. {profile.description}",
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ARCHITECTURES,
        "syscalls": rules,
    }


def serialize(profile: Profile) -> str:
    return json.dumps(render(profile), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the committed files")
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args(argv)
    stale = []
    for profile in PROFILES:
        path = args.out_dir / profile.filename
        text = serialize(profile)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run images/seccomp/generate.py): " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
