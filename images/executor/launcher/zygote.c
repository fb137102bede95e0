/*
 * executor_zygote: the executor's fork server (executor_service/zygote.py), a CPython extension module.
 *
 * The fork server is a job interpreter started through job-launch (the job's environment, limits,
 * oom_score_adj, Landlock domain and seccomp filter) that stops inside its own start-up: the
 * usercustomize hook (executor_service/prestart.py, FORK_HOOK) loads this module by its path (it is
 * never importable from sys.path) and calls serve(control_fd), which never returns in the fork server.
 * It says "R" on the control socket (a SOCK_SEQPACKET socketpair whose other end only the service holds)
 * and then, per job request, forks. The fork server runs no job code and never imports anything again:
 * it only forks, reaps, and talks to the service.
 *
 *   service -> server  "J <cpu seconds> <p|n> <working directory>" + SCM_RIGHTS (stdin, stdout, stderr)
 *   server -> service  "P <pid>" + SCM_RIGHTS (a pidfd of the job's process), or "E <errno>" (no job ran)
 *   server -> service  "X <wait status>" once it has reaped that process
 *
 * serve() returns (n: True, the job's stdin is /dev/null; p: False, a pipe) only in the forked process,
 * the job's first process, after it has
 *   - entered a new Landlock domain, nested in the fork server's, scoped (ABI 6): nothing in it can signal
 *     the fork server, the service or the healthcheck, nor connect to an abstract socket outside it; and
 *     Landlock refuses ptrace-mode access (/proc/<pid>/mem, environ, fd) from it to any process outside it.
 *     The write rules of the fork server's domain keep applying beneath it (Landlock layers intersect);
 *   - set its own RLIMIT_CPU (the job's deadline; its CPU time starts at 0), setsid(), chdir() to the
 *     job's working directory, put the service's fds on 0, 1 and 2 and closed everything else it had
 *     (the control socket above all);
 *   - waited for the fork server to hand the service its pidfd: no job code runs before the service can
 *     wait for it and kill it without racing a reused PID.
 * Everything else it inherits from the fork server (the seccomp filter that refuses prlimit/setpriority/
 * sched_set* on other processes, the other limits, the environment) is what job-launch gave it.
 * A step that fails ends the process with status 125 and a message on the job's stderr, as job-launch does.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "landlock_scope.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define JOB_FDS 3
#define REQUEST_MAX (PATH_MAX + 64)

struct request {
    unsigned long cpu_seconds;
    int no_stdin;
    const char *workdir;
    int fds[JOB_FDS];
};

/* One message with optional fds; -1 with errno set on failure. */
static int send_message(int control, const char *text, const int *fds, int count)
{
    char space[CMSG_SPACE(sizeof(int) * JOB_FDS)];
    memset(space, 0, sizeof space);
    struct iovec data = {.iov_base = (void *)text, .iov_len = strlen(text)};
    struct msghdr message = {.msg_iov = &data, .msg_iovlen = 1};
    if (count > 0) {
        message.msg_control = space;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * count);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
    }
    ssize_t sent;
    do
        sent = sendmsg(control, &message, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    return sent < 0 ? -1 : 0;
}

static void close_all(const int *fds, int count)
{
    for (int i = 0; i < count; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* The next request into buffer/job: 1, or 0 when the service has gone (end of file) or sent something
 * that is not a request (then nothing is run: the fork server ends and the service starts jobs cold). */
static int receive_request(int control, char *buffer, struct request *job)
{
    char space[CMSG_SPACE(sizeof(int) * JOB_FDS)];
    struct iovec data = {.iov_base = buffer, .iov_len = REQUEST_MAX - 1};
    struct msghdr message = {.msg_iov = &data, .msg_iovlen = 1, .msg_control = space,
                             .msg_controllen = sizeof space};
    ssize_t got;
    do
        got = recvmsg(control, &message, MSG_CMSG_CLOEXEC);
    while (got < 0 && errno == EINTR);
    if (got <= 0)
        return 0;
    buffer[got] = '\0';
    int count = 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL; header = CMSG_NXTHDR(&message, header))
        if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS) {
            count = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(job->fds, CMSG_DATA(header), sizeof(int) * (count < JOB_FDS ? count : JOB_FDS));
        }
    char mode = 0;
    int workdir_at = 0;
    if (count != JOB_FDS || (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
        sscanf(buffer, "J %lu %c %n", &job->cpu_seconds, &mode, &workdir_at) != 2 || workdir_at == 0 ||
        (mode != 'p' && mode != 'n') || job->cpu_seconds == 0 || buffer[workdir_at] != '/') {
        if (count == JOB_FDS)
            close_all(job->fds, JOB_FDS);
        return 0;
    }
    job->no_stdin = mode == 'n';
    job->workdir = buffer + workdir_at;
    return 1;
}

/* In the forked process: a failed step ends it before any job code, as job-launch's refusals do. */
static void refuse(int stderr_fd, const char *what)
{
    dprintf(stderr_fd, "executor-zygote: %s: %s\n", what, strerror(errno));
    _exit(125);
}

/* The forked process becomes the job's first process (see the top of the file). */
static void become_job(int control, int go, const struct request *job)
{
    int err = job->fds[2];
    close(control);
    struct scoped_ruleset_attr scope = {.scoped = LANDLOCK_SCOPES};
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &scope, sizeof scope, 0);
    if (ruleset < 0 || syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
        refuse(err, "landlock (the job's scoped domain)");
    close(ruleset);
    struct rlimit cpu = {.rlim_cur = job->cpu_seconds, .rlim_max = job->cpu_seconds + 1};
    if (setrlimit(RLIMIT_CPU, &cpu) != 0)
        refuse(err, "RLIMIT_CPU");
    if (setsid() < 0)
        refuse(err, "setsid");
    if (chdir(job->workdir) != 0)
        refuse(err, job->workdir);
    for (int target = 0; target < JOB_FDS; target++)
        if (dup2(job->fds[target], target) < 0)
            refuse(err, "dup2");
    close_all(job->fds, JOB_FDS); /* all CLOEXEC copies above 2; 0-2 are the job's own now */
    char byte = 0;
    ssize_t got;
    do
        got = read(go, &byte, 1);
    while (got < 0 && errno == EINTR);
    if (got != 1)
        _exit(125); /* the fork server could not give the service a pidfd: it kills this process */
    close(go);
}

/* Reap the job's first process (the only child the fork server has: job-launch's filter refuses
 * CLONE_PARENT, so no job process can make itself another). -1 if it is gone without a status. */
static int reap(pid_t pid)
{
    for (;;) {
        int status = 0;
        pid_t reaped = waitpid(-1, &status, 0);
        if (reaped == pid)
            return status;
        if (reaped < 0 && errno != EINTR)
            return -1;
    }
}

static PyObject *serve(PyObject *module, PyObject *argument)
{
    (void)module;
    long control = PyLong_AsLong(argument);
    if (control < 0 || control > INT_MAX) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "serve() takes the control socket's fd");
        return NULL;
    }
    if (send_message((int)control, "R", NULL, 0) != 0)
        _exit(0);
    char buffer[REQUEST_MAX];
    for (;;) {
        struct request job;
        if (!receive_request((int)control, buffer, &job))
            _exit(0);
        int go[2];
        if (pipe2(go, O_CLOEXEC) != 0) {
            close_all(job.fds, JOB_FDS);
            char refusal[32];
            snprintf(refusal, sizeof refusal, "E %d", errno);
            if (send_message((int)control, refusal, NULL, 0) != 0)
                _exit(0);
            continue;
        }
        PyOS_BeforeFork();
        pid_t pid = fork();
        int fork_error = errno;
        if (pid == 0) {
            PyOS_AfterFork_Child();
            close(go[1]);
            become_job((int)control, go[0], &job);
            return PyBool_FromLong(job.no_stdin);
        }
        PyOS_AfterFork_Parent();
        close_all(job.fds, JOB_FDS);
        close(go[0]);
        char reply[64];
        int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
        if (pid < 0 || pidfd < 0) {
            snprintf(reply, sizeof reply, "E %d", pid < 0 ? fork_error : errno);
            if (pid > 0) { /* it is waiting for its go: it never ran job code */
                kill(pid, SIGKILL);
                reap(pid);
            }
            close(go[1]);
            if (send_message((int)control, reply, NULL, 0) != 0)
                _exit(0);
            continue;
        }
        snprintf(reply, sizeof reply, "P %d", (int)pid);
        int sent = send_message((int)control, reply, &pidfd, 1);
        close(pidfd);
        if (sent != 0) { /* the service is gone: the job must not run unwatched */
            kill(pid, SIGKILL);
            _exit(0);
        }
        ssize_t written;
        do
            written = write(go[1], "g", 1);
        while (written < 0 && errno == EINTR);
        close(go[1]);
        int status = reap(pid);
        if (status < 0)
            _exit(3); /* cannot happen while this is its parent; without a status, stop serving */
        snprintf(reply, sizeof reply, "X %d", status);
        if (send_message((int)control, reply, NULL, 0) != 0)
            _exit(0);
        /* Of the last job nothing but this status and its pid passed through here: leave neither for
         * the next job's process, which starts as a copy of this memory. */
        explicit_bzero(reply, sizeof reply);
        explicit_bzero(buffer, sizeof buffer);
        explicit_bzero(&status, sizeof status);
    }
}

static PyMethodDef methods[] = {
    {"serve", serve, METH_O, "Serve fork requests on the control socket; returns only in a forked job process."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {{0, NULL}};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "executor_zygote", "The executor's fork server (see zygote.c).", 0, methods, slots,
    NULL, NULL, NULL,
};

/* Multi-phase initialisation: loaded with _imp.create_dynamic, the module never enters sys.modules. */
PyMODINIT_FUNC PyInit_executor_zygote(void)
{
    return PyModuleDef_Init(&definition);
}
