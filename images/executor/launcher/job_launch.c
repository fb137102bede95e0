/*
 * job-launch: put a job's limits on itself, then exec the job's interpreter.
 *
 *   job-launch NPROC CPU_SECONDS NOFILE ADDRESS_SPACE_BYTES [-w PATH]... -- PROGRAM [ARG...]
 *
 * ADDRESS_SPACE_BYTES 0 leaves the address space unlimited. Each -w PATH is a directory (everything
 * beneath it) or a file the job may open for writing; nothing else. The executor service starts this with
 * subprocess.Popen (new session, working directory, clean environment, pipes) without a
 * preexec_fn, so Popen can vfork: forking the ~60 MB service for a preexec_fn costs several ms
 * per job, this exec well under one. Here, before the job's own code runs:
 *   - every signal is unblocked (the service blocks its stop signals; children inherit masks);
 *   - RLIMIT_NPROC, RLIMIT_CPU (SIGXCPU at the soft limit, SIGKILL one second later),
 *     RLIMIT_CORE 0, RLIMIT_NOFILE and optionally RLIMIT_AS are set, soft = hard;
 *   - oom_score_adj becomes 1000, so the OOM killer picks the job, never the service;
 *   - then a Landlock domain is entered in which no file but those beneath the -w paths can be
 *     opened for writing (or created, removed, renamed): /proc above all, so no process of the job can write an oom_score_adj
 *     (its own back down, or another's) or any /proc/<pid>/mem. With Landlock ABI 6 or later the domain
 *     is also *scoped*: no process in it can signal a process outside it (kill, sigqueue, pidfd, SIGIO)
 *     or connect to an abstract UNIX socket made outside it. Every process the job starts inherits the
 *     domain, and nothing can leave it. Landlock missing: the job does not run;
 *   - last, a seccomp filter (stacked on the container's profile, inherited by every process of the
 *     job) refuses what Landlock does not cover and the profile must allow because the service uses
 *     it: changing the limits, priority, CPU affinity, scheduling or I/O priority of any process but
 *     the caller (prlimit64 with a pid and new limits, setpriority/ioprio_set but on itself,
 *     sched_set* with a pid), and clone with CLONE_PARENT (a child handed to the job's parent).
 * On any failure the job does not run: exit status 125 with a message on stderr.
 */
#define _GNU_SOURCE /* O_PATH */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "landlock_scope.h"

/* Kernel ABI values, for C headers older than the running kernel (Debian 12's know ABI 2). */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

#define USAGE "usage: job-launch NPROC CPU_SECONDS NOFILE ADDRESS_SPACE_BYTES [-w PATH]... -- PROGRAM [ARG...]"

static int refuse(const char *what, int error)
{
    fprintf(stderr, "job-launch: %s: %s\n", what, error ? strerror(error) : "bad argument");
    return 125;
}

static int parse_count(const char *text, rlim_t *value)
{
    char *end = NULL;
    errno = 0;
    unsigned long long parsed = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-')
        return -1;
    *value = (rlim_t)parsed;
    return 0;
}

static int limit(int resource, rlim_t soft, rlim_t hard)
{
    struct rlimit values = {.rlim_cur = soft, .rlim_max = hard};
    return setrlimit(resource, &values);
}

/* What changes files: writing, creating, removing, renaming. REFER (ABI 2) must be handled to allow
 * renames between directories at all; TRUNCATE (ABI 3) is handled where the kernel knows it. */
#define CHANGES_V1                                                                                             \
    (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |         \
     LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |                \
     LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |             \
     LANDLOCK_ACCESS_FS_MAKE_SYM)

/* Changing files is allowed beneath paths[0..count) only (directories: everything beneath; files: writing
 * them); reading and executing stay as they were. */
static int confine_writes(char **paths, int count)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1)
        return refuse("Landlock (needed to keep the job from writing /proc)", abi < 0 ? errno : 0);
    __u64 on_files = LANDLOCK_ACCESS_FS_WRITE_FILE, changes = CHANGES_V1;
    if (abi >= 2)
        changes |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3) {
        changes |= LANDLOCK_ACCESS_FS_TRUNCATE;
        on_files |= LANDLOCK_ACCESS_FS_TRUNCATE;
    }
    struct scoped_ruleset_attr handled = {.handled_access_fs = changes};
    if (abi >= LANDLOCK_SCOPE_ABI)
        handled.scoped = LANDLOCK_SCOPES;
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &handled, scoped_ruleset_size(abi), 0);
    if (ruleset < 0)
        return refuse("landlock_create_ruleset", errno);
    for (int i = 0; i < count; i++) {
        struct landlock_path_beneath_attr rule = {.allowed_access = on_files};
        rule.parent_fd = open(paths[i], O_PATH | O_CLOEXEC);
        struct stat info;
        if (rule.parent_fd < 0 || fstat(rule.parent_fd, &info) != 0) {
            int error = errno;
            if (rule.parent_fd >= 0)
                close(rule.parent_fd);
            if (error == ENOENT)
                continue; /* e.g. /dev/shm outside a container: nothing to allow */
            close(ruleset);
            return refuse(paths[i], error);
        }
        if (S_ISDIR(info.st_mode))
            rule.allowed_access = changes;
        long added = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
        int error = errno;
        close(rule.parent_fd);
        if (added != 0) {
            close(ruleset);
            return refuse(paths[i], error);
        }
    }
    /* Already set in the container (no-new-privileges); required by Landlock for unprivileged callers. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) {
        int error = errno;
        close(ruleset);
        return refuse("landlock_restrict_self", error);
    }
    close(ruleset);
    return 0;
}

/* seccomp_data: the syscall number, the architecture, then six 64-bit arguments; LOW(i) is the lower half of
 * argument i (the kernel reads pid_t and int arguments from it), HIGH(i) the upper one. */
#define ARG_LOW(i) (offsetof(struct seccomp_data, args) + 8 * (i) + (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? 4 : 0))
#define ARG_HIGH(i) (offsetof(struct seccomp_data, args) + 8 * (i) + (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? 0 : 4))
#define LOAD(offset) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (offset))
#define JUMP_IF(value, yes, no) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (value), (yes), (no))
#define RETURN(action) BPF_STMT(BPF_RET | BPF_K, (action))

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#define X32_BIT 0x40000000U /* x32 syscalls: the same arch value, this bit in the number */
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#define X32_BIT 0x80000000U /* never set in a valid aarch64 syscall number */
#else
#error "job-launch knows the syscall ABI of x86_64 and aarch64 only"
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
#endif

/* Instruction indices of the filter below: every jump names where it goes, SKIP() turns that into the
 * relative offset BPF wants (from the instruction after the jump). */
enum {
    AT_NR = 3, AT_CLONE = 14, AT_PID_ARG = 16, AT_PRLIMIT = 18, AT_SETPRIORITY = 24, AT_IOPRIO = 27,
    AT_WHO_ARG = 29, AT_DENY = 31, AT_ALLOW = 32, AT_NOSYS = 33, FILTER_LENGTH = 34
};
#define SKIP(to, from) ((to) - (from) - 1)
#define JUMP_TO(value, from, yes, no) JUMP_IF(value, SKIP(yes, from), SKIP(no, from))

/* What only the caller itself may be the target of: the process the kernel takes for "0". A job gets
 * EPERM for any other target (the service, the fork server, the healthcheck, another job process: all
 * the same UID, so the kernel's own checks would allow it). Reading (prlimit64 without new limits) stays
 * allowed; so does anything the container's profile allows and this filter does not name. */
static int refuse_acting_on_others(void)
{
    struct sock_filter program[FILTER_LENGTH] = {
        [0] = LOAD(offsetof(struct seccomp_data, arch)),
        [1] = JUMP_TO(NATIVE_ARCH, 1, AT_NR, 2),
        [2] = RETURN(SECCOMP_RET_ERRNO | EPERM), /* another ABI: the container's profile refuses it too */
        [AT_NR] = LOAD(offsetof(struct seccomp_data, nr)),
        [4] = BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, X32_BIT, SKIP(AT_DENY, 4), 0),
        [5] = JUMP_TO(__NR_prlimit64, 5, AT_PRLIMIT, 6),
        [6] = JUMP_TO(__NR_setpriority, 6, AT_SETPRIORITY, 7),
        [7] = JUMP_TO(__NR_ioprio_set, 7, AT_IOPRIO, 8),
        [8] = JUMP_TO(__NR_sched_setaffinity, 8, AT_PID_ARG, 9),
        [9] = JUMP_TO(__NR_sched_setscheduler, 9, AT_PID_ARG, 10),
        [10] = JUMP_TO(__NR_sched_setparam, 10, AT_PID_ARG, 11),
        [11] = JUMP_TO(__NR_sched_setattr, 11, AT_PID_ARG, 12),
        [12] = JUMP_TO(__NR_clone, 12, AT_CLONE, 13),
        /* clone3 keeps its flags in memory seccomp cannot read: ENOSYS, and glibc falls back to clone. */
        [13] = JUMP_TO(__NR_clone3, 13, AT_NOSYS, AT_ALLOW),
        [AT_CLONE] = LOAD(ARG_LOW(0)),
        [15] = BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_PARENT, SKIP(AT_DENY, 15), SKIP(AT_ALLOW, 15)),
        [AT_PID_ARG] = LOAD(ARG_LOW(0)), /* sched_set*(pid, ...) */
        [17] = JUMP_TO(0, 17, AT_ALLOW, AT_DENY),
        [AT_PRLIMIT] = LOAD(ARG_LOW(0)), /* prlimit64(pid, resource, new, old) */
        [19] = JUMP_TO(0, 19, AT_ALLOW, 20),
        [20] = LOAD(ARG_LOW(2)),
        [21] = JUMP_TO(0, 21, 22, AT_DENY),
        [22] = LOAD(ARG_HIGH(2)),
        [23] = JUMP_TO(0, 23, AT_ALLOW, AT_DENY),
        [AT_SETPRIORITY] = LOAD(ARG_LOW(0)), /* setpriority(which, who, prio): PRIO_PROCESS, 0 */
        [25] = JUMP_TO(PRIO_PROCESS, 25, 26, AT_DENY),
        [26] = BPF_JUMP(BPF_JMP | BPF_JA, SKIP(AT_WHO_ARG, 26), 0, 0),
        [AT_IOPRIO] = LOAD(ARG_LOW(0)), /* ioprio_set(which, who, ioprio): IOPRIO_WHO_PROCESS (1), 0 */
        [28] = JUMP_TO(1, 28, AT_WHO_ARG, AT_DENY),
        [AT_WHO_ARG] = LOAD(ARG_LOW(1)),
        [30] = JUMP_TO(0, 30, AT_ALLOW, AT_DENY),
        [AT_DENY] = RETURN(SECCOMP_RET_ERRNO | EPERM),
        [AT_ALLOW] = RETURN(SECCOMP_RET_ALLOW),
        [AT_NOSYS] = RETURN(SECCOMP_RET_ERRNO | ENOSYS),
    };
    struct sock_fprog filter = {.len = FILTER_LENGTH, .filter = program};
    /* no_new_privs is set (confine_writes): an unprivileged process may install a filter. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter) != 0)
        return refuse("seccomp", errno);
    return 0;
}

int main(int argc, char **argv)
{
    rlim_t nproc, cpu, nofile, address_space;
    if (argc < 7 || parse_count(argv[1], &nproc) || parse_count(argv[2], &cpu) || parse_count(argv[3], &nofile) ||
        parse_count(argv[4], &address_space) || nproc == 0 || cpu == 0)
        return refuse(USAGE, 0);
    /* argv[5..]: pairs "-w PATH", then "--" */
    char *writable[64];
    int writable_count = 0, at = 5;
    while (at + 1 < argc && strcmp(argv[at], "-w") == 0 && writable_count < 64) {
        writable[writable_count++] = argv[at + 1];
        at += 2;
    }
    if (at + 1 >= argc || strcmp(argv[at], "--") != 0)
        return refuse(USAGE, 0);
    char **program = &argv[at + 1];

    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
        return refuse("sigprocmask", errno);

    if (limit(RLIMIT_NPROC, nproc, nproc) != 0)
        return refuse("RLIMIT_NPROC", errno);
    if (limit(RLIMIT_CPU, cpu, cpu + 1) != 0)
        return refuse("RLIMIT_CPU", errno);
    if (limit(RLIMIT_CORE, 0, 0) != 0)
        return refuse("RLIMIT_CORE", errno);
    if (limit(RLIMIT_NOFILE, nofile, nofile) != 0)
        return refuse("RLIMIT_NOFILE", errno);
    if (address_space != 0 && limit(RLIMIT_AS, address_space, address_space) != 0)
        return refuse("RLIMIT_AS", errno);

    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return refuse("open /proc/self/oom_score_adj", errno);
    if (write(fd, "1000", 4) != 4) {
        int error = errno;
        close(fd);
        return refuse("write /proc/self/oom_score_adj", error);
    }
    close(fd);

    int refused = confine_writes(writable, writable_count);
    if (refused == 0)
        refused = refuse_acting_on_others();
    if (refused != 0)
        return refused;

    execv(program[0], program);
    return refuse(program[0], errno);
}
