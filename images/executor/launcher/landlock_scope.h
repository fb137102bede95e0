/*
 * Landlock's scoping (ABI 6, Linux 6.12), for C headers older than the running kernel (Debian 12's know
 * ABI 2): a process in a scoped domain cannot signal a process outside that domain (kill, tgkill,
 * sigqueue, pidfd_send_signal, SIGIO/SIGURG of an fcntl F_SETOWN), nor connect or send to an abstract
 * UNIX socket made outside it. Used by job_launch.c (every job's domain) and zygote.c (the nested domain
 * of each job forked by the fork server).
 */
#ifndef EXECUTOR_LANDLOCK_SCOPE_H
#define EXECUTOR_LANDLOCK_SCOPE_H

#include <linux/types.h>
#include <stddef.h>

#define LANDLOCK_SCOPE_ABI 6
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif
#define LANDLOCK_SCOPES (LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL)

/* struct landlock_ruleset_attr as of ABI 6. */
struct scoped_ruleset_attr {
    __u64 handled_access_fs;
    __u64 handled_access_net; /* ABI 4; never handled here */
    __u64 scoped;             /* ABI 6 */
};

/* The attribute size a kernel of that ABI takes (it refuses a larger struct with unknown fields set;
 * unset trailing fields would pass too, but older kernels are then sent exactly what they know). */
static inline size_t scoped_ruleset_size(long abi)
{
    if (abi >= LANDLOCK_SCOPE_ABI)
        return sizeof(struct scoped_ruleset_attr);
    if (abi >= 4)
        return offsetof(struct scoped_ruleset_attr, scoped);
    return offsetof(struct scoped_ruleset_attr, handled_access_net);
}

#endif
