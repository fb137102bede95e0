/*
 * job-launch: put a job's limits on itself, then exec the job's interpreter.
 *
 *   job-launch NPROC CPU_SECONDS NOFILE ADDRESS_SPACE_BYTES -- PROGRAM [ARG...]
 *
 * ADDRESS_SPACE_BYTES 0 leaves the address space unlimited. The executor service starts this with
 * subprocess.Popen (new session, working directory, clean environment, pipes) without a
 * preexec_fn, so Popen can vfork: forking the ~60 MB service for a preexec_fn costs several ms
 * per job, this exec well under one. Here, before the job's own code runs:
 *   - every signal is unblocked (the service blocks its stop signals; children inherit masks);
 *   - RLIMIT_NPROC, RLIMIT_CPU (SIGXCPU at the soft limit, SIGKILL one second later),
 *     RLIMIT_CORE 0, RLIMIT_NOFILE and optionally RLIMIT_AS are set, soft = hard;
 *   - oom_score_adj becomes 1000, so the OOM killer picks the job, never the service.
 * On any failure the job does not run: exit status 125 with a message on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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

int main(int argc, char **argv)
{
    rlim_t nproc, cpu, nofile, address_space;
    if (argc < 7 || strcmp(argv[5], "--") != 0 || parse_count(argv[1], &nproc) || parse_count(argv[2], &cpu) ||
        parse_count(argv[3], &nofile) || parse_count(argv[4], &address_space) || nproc == 0 || cpu == 0)
        return refuse("usage: job-launch NPROC CPU_SECONDS NOFILE ADDRESS_SPACE_BYTES -- PROGRAM [ARG...]", 0);

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

    execv(argv[6], &argv[6]);
    return refuse(argv[6], errno);
}
