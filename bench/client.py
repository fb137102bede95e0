"""The benchmark's client of the executor API. Runs INSIDE the workspace container (``docker exec``).

The workspace is where OpenCode calls the executors from, over the internal executor network; those
networks carry no host address (catalog rule ``internal-networks-unaddressed``), so the host cannot
reach an executor at all. bench/run.py hands this file's text to the workspace's ``python3 -I -c``
with one JSON request as the argument; it prints one JSON object. Standard library only.

The HTTP client is ``http.client`` with keep-alive connections: it adds the least to a round trip,
so the figures are the service's, not the client's. The token is the workspace's own (the
environment variable OpenCode's MCP configuration reads). A job whose result is not print(1)'s
``1`` ends the run with an error (exit 1): a broken benchmark, never a slow one.

Requests (``targets`` are executor host names on the executor network, ``port`` their API port):
  {"mode": "latency", "targets": [name], "runs": N, "warmup": W, ...}
      N sequential ``POST /v1/run`` of print(1) on one connection, then N ``GET /health``:
      {"run": [ms...], "job": [the service's duration_ms...], "health": [ms...]}
  {"mode": "throughput", "targets": [names], "jobs": J, "concurrency": C, ...}
      J jobs from C threads, job i to targets[i mod len(targets)]; every thread opens its
      connections first: {"elapsed_s": s, "latencies_ms": [ms...]}
  {"mode": "ready", "targets": [names], "timeout_s": T, ...}
      waits until every target answers GET /health with 200 (at most T s): {"waited_s": s}
"""

import http.client
import json
import os
import sys
import threading
import time

JOB = json.dumps({"language": "python", "source": "print(1)"}).encode()
JOB_OUTPUT = "1\n"


class Connection:
    """One keep-alive HTTP/1.1 connection to one executor (a host name resolves when it connects)."""

    def __init__(self, host, port, token):
        self.host = host
        self.http = http.client.HTTPConnection(host, port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def run(self):
        """POST /v1/run of print(1): (ms from sending to the checked result, the job's duration_ms)."""
        started = time.perf_counter()
        self.http.request("POST", "/v1/run", body=JOB, headers=self.headers)
        response = self.http.getresponse()
        payload = response.read()
        result = json.loads(payload) if response.status == 200 else None
        elapsed = (time.perf_counter() - started) * 1000
        if result is None or result.get("exit_code") != 0 or result.get("stdout") != JOB_OUTPUT:
            raise RuntimeError(f"{self.host}: POST /v1/run answered {response.status}: {payload[:500]!r}")
        return elapsed, float(result["duration_ms"])

    def health(self):
        """GET /health (no job): the round trip of the HTTP path alone, ms."""
        started = time.perf_counter()
        self.http.request("GET", "/health")
        response = self.http.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"{self.host}: GET /health answered {response.status}: {payload[:500]!r}")
        return elapsed


def latency(request, token):
    connection = Connection(request["targets"][0], request["port"], token)
    samples = {"run": [], "job": [], "health": []}
    try:
        connection.http.connect()
        for index in range(request["warmup"] + request["runs"]):
            elapsed, duration = connection.run()
            if index >= request["warmup"]:
                samples["run"].append(elapsed)
                samples["job"].append(duration)
        for index in range(request["warmup"] + request["runs"]):
            elapsed = connection.health()
            if index >= request["warmup"]:
                samples["health"].append(elapsed)
    finally:
        connection.http.close()
    return samples


def throughput(request, token):
    targets, jobs = request["targets"], request["jobs"]
    pools = [[Connection(target, request["port"], token) for target in targets] for _ in range(request["concurrency"])]
    lock, next_job, latencies, errors = threading.Lock(), [0], [], []

    def worker(connections):
        try:
            while True:
                with lock:
                    index, next_job[0] = next_job[0], next_job[0] + 1
                if index >= jobs:
                    return
                latencies.append(connections[index % len(targets)].run()[0])
        except Exception as exc:  # noqa: BLE001 - raised once the other threads are done
            errors.append(exc)

    try:
        for pool in pools:
            for connection in pool:
                connection.http.connect()
        threads = [threading.Thread(target=worker, args=(pool,)) for pool in pools]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed_s = time.perf_counter() - started
    finally:
        for pool in pools:
            for connection in pool:
                connection.http.close()
    if errors:
        raise errors[0]
    return {"elapsed_s": elapsed_s, "latencies_ms": latencies}


def ready(request, token):
    started = time.perf_counter()
    for target in request["targets"]:
        while True:
            connection = Connection(target, request["port"], token)
            try:
                connection.health()
                break
            except (OSError, RuntimeError, http.client.HTTPException):
                if time.perf_counter() - started > request["timeout_s"]:
                    raise
                time.sleep(0.1)
            finally:
                connection.http.close()
    return {"waited_s": time.perf_counter() - started}


def main():
    request = json.loads(sys.argv[1])
    token = os.environ.get(request["token_env"])
    if not token:
        sys.exit(f"no executor token in ${request['token_env']} in this container")
    modes = {"latency": latency, "throughput": throughput, "ready": ready}
    print(json.dumps(modes[request["mode"]](request, token)))


if __name__ == "__main__":
    main()
