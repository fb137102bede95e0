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
 *     (its own back down, or another's) or any /proc/<pid>/mem. Every process the job starts
 *     inherits the domain, and nothing can leave it. Landlock missing: the job does not run.
 * On any failure the job does not run: exit status 125 with a message on stderr.
 */
#define _GNU_SOURCE /* O_PATH */
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

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
    struct landlock_ruleset_attr handled = {.handled_access_fs = changes};
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &handled, sizeof handled, 0);
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
    if (refused != 0)
        return refused;

    execv(program[0], program);
    return refuse(program[0], errno);
}
