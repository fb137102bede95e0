/*
 * healthcheck: the Docker HEALTHCHECK of an executor; exits 0 when GET /health on 127.0.0.1:$EXECUTOR_PORT
 * (default 8080) answers 200, 1 otherwise.
 *
 * Docker runs it with `docker exec`: in the container, as the container's user (the jobs' UID), with
 * the container's environment. So it is built static and installed execute-only (mode 0711): a
 * process exec'd from a file its user cannot read is non-dumpable from its first instruction (the
 * kernel's would_dump()), so no job can read its /proc/<pid>/{environ,mem,fd,...}, and having no
 * dynamic loader or interpreter, nothing of it is ever readable. That is what lets the sweep after
 * each job spare it (see executor_service/sweeper.py). It reads nothing but its port.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int fail(const char *what, int error)
{
    fprintf(stderr, "executor health: %s%s%s\n", what, error ? ": " : "", error ? strerror(error) : "");
    return 1;
}

int main(void)
{
    alarm(4); /* a backstop behind the socket timeouts; Docker's own timeout is 5 s */
    const char *text = getenv("EXECUTOR_PORT");
    long port = 8080;
    if (text != NULL && *text != '\0') {
        char *end = NULL;
        port = strtol(text, &end, 10);
        if (*end != '\0' || port < 1 || port > 65535)
            return fail("EXECUTOR_PORT is not a port number", 0);
    }
    int sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return fail("socket", errno);
    struct timeval timeout = {.tv_sec = 3};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* The sweep after a job freezes and thaws every process of the UID (SIGSTOP, SIGCONT): socket calls
     * with a timeout then fail with EINTR instead of restarting, so each is retried. */
    if (connect(sock, (struct sockaddr *)&address, sizeof address) != 0) {
        if (errno != EINTR)
            return fail("no answer on the service's port", errno);
        struct pollfd ready = {.fd = sock, .events = POLLOUT};
        int polled;
        do
            polled = poll(&ready, 1, 3000);
        while (polled < 0 && errno == EINTR);
        int error = 0;
        socklen_t length = sizeof error;
        if (polled <= 0 || getsockopt(sock, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0)
            return fail("no answer on the service's port", polled == 0 ? ETIMEDOUT : error ? error : errno);
    }
    static const char request[] = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    size_t sent = 0;
    while (sent < sizeof request - 1) {
        ssize_t n = write(sock, request + sent, sizeof request - 1 - sent);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail("sending the request", errno);
        sent += (size_t)n;
    }
    char reply[512];
    size_t got = 0;
    while (got < sizeof reply - 1) {
        ssize_t n = read(sock, reply + got, sizeof reply - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail("reading the answer", errno);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    reply[got] = '\0';
    close(sock);
    /* "HTTP/1.1 200 OK" */
    if (got < 12 || strncmp(reply, "HTTP/1.", 7) != 0 || strncmp(reply + 8, " 200", 4) != 0) {
        char *line_end = strpbrk(reply, "\r\n");
        if (line_end != NULL)
            *line_end = '\0';
        fprintf(stderr, "executor health: %s\n", got ? reply : "empty answer");
        return 1;
    }
    return 0;
}
