"""Looking at a running container: the catalog's checks on its inspect data, and commands inside it.

``container_violations``/``stack_violations`` are the suite's check function: the catalog's own
``check_container``/``check_stack`` (one truth) on :mod:`sandbox_model.security.adapters.docker_inspect`'s view of
the engine. ``container_host`` is a testinfra host running commands in a container
(``docker exec``, as the container's own user, under its seccomp profile and limits).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import testinfra

from sandbox_model.naming import LABEL_STACK
from sandbox_model.security.adapters import docker_inspect as runtime_inspect
from sandbox_model.security.context import CheckContext
from sandbox_model.security.profiles import all_seccomp_profiles
from sandbox_model.security.runner import Violation, check_container, check_stack
from sandbox_model.security.spec import ContainerSpec


def check_context() -> CheckContext:
    return CheckContext(seccomp_profiles=all_seccomp_profiles())


def container_host(name: str):
    """A testinfra host for a container: ``container_host(name).run("id -u")``."""
    return testinfra.get_host(f"docker://{name}")


def runtime_spec(client, name: str) -> ContainerSpec:
    volumes = client.api.volumes().get("Volumes") or []
    return runtime_inspect.container_spec(
        client.api.inspect_container(name), runtime_inspect.volume_host_paths(volumes)
    )


def container_violations(client, names: Iterable[str]) -> list[Violation]:
    """The catalog's container rules on each named container as it runs now."""
    context = check_context()
    return [violation for name in names for violation in check_container(runtime_spec(client, name), context)]


def stack_violations(client, stack: str) -> list[Violation]:
    """The catalog's stack rules on every container and network of ``stack`` as they run now."""
    label = {"label": f"{LABEL_STACK}={stack}"}
    containers = [runtime_spec(client, info["Id"]) for info in client.api.containers(filters=label)]
    networks = {}
    for info in client.api.networks(filters=label):
        spec = runtime_inspect.network_spec(client.api.inspect_network(info["Id"]))
        networks[spec.name] = spec
    return check_stack(containers, networks, check_context())


def container_env(client, name: str) -> dict[str, str]:
    env = client.api.inspect_container(name)["Config"]["Env"] or []
    return dict(entry.split("=", 1) for entry in env if "=" in entry)


# --- connections from inside a container ----------------------------------------------------------


#: How a connection attempt fails when the network stops it (python3 and bash wordings).
NETWORK_FAILURES = (
    "gaierror",
    "name resolution",
    "Name or service not known",
    "timed out",
    "failed (exit 124)",
    "Connection refused",
    "Network is unreachable",
    "No route to host",
)


@dataclass(frozen=True)
class Connection:
    connected: bool
    detail: str  # "connected", or the error (name resolution, timeout, refused, unreachable)

    @property
    def blocked(self) -> bool:
        """Failed because of the network, not because the probe itself could not run."""
        return not self.connected and any(failure in self.detail for failure in NETWORK_FAILURES)


# Name lookups that cannot be answered (internal networks have no outside DNS) give up after
# one second instead of glibc's default 2 x 5 s.
_QUICK_RESOLVER = "RES_OPTIONS='timeout:1 attempts:1'"

_PYTHON_CONNECT = (
    "import socket, sys, threading\n"
    "timeout, results = float(sys.argv[1]), {}\n"
    "def attempt(target):\n"
    "    host, port = target.rsplit(':', 1)\n"
    "    try:\n"
    "        socket.create_connection((host, int(port)), timeout=timeout).close()\n"
    "        results[target] = 'connected'\n"
    "    except Exception as exc:\n"
    "        results[target] = f'{type(exc).__name__} {exc}'\n"
    "threads = [threading.Thread(target=attempt, args=(t,)) for t in sys.argv[2:]]\n"
    "for thread in threads: thread.start()\n"
    "for thread in threads: thread.join()\n"
    "for target in sys.argv[2:]: print(target, results[target].replace('\\n', ' '))\n"
)


def _by_target(output: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in output.strip().splitlines() if " " in line)


def has_command(host, command: str) -> bool:
    return host.run(f"command -v {shlex.quote(command)}").rc == 0


def connect(host, targets: Iterable[tuple[str, int]], timeout_s: float = 3.0) -> dict[tuple[str, int], Connection]:
    """Open TCP connections from inside the container, all at once (python3 if it has one, else bash)."""
    targets = list(targets)
    if has_command(host, "python3"):
        words = " ".join(shlex.quote(f"{target}:{port}") for target, port in targets)
        result = host.run(f"{_QUICK_RESOLVER} python3 -I -c {shlex.quote(_PYTHON_CONNECT)} {timeout_s} {words}")
        lines = _by_target(result.stdout)
        outputs = {(t, p): lines.get(f"{t}:{p}", f"no answer: {result.stderr.strip()}") for t, p in targets}
    else:  # bash's /dev/tcp, one background attempt per target
        attempts = []
        for target, port in targets:
            script = f"exec 3<>/dev/tcp/{target}/{port} && echo connected"
            attempts.append(
                f"(out=$({_QUICK_RESOLVER} timeout {timeout_s:g} bash -c {shlex.quote(script)} 2>&1 "
                f'|| echo "failed (exit $?)"); echo {shlex.quote(f"{target}:{port}")} $out) &'
            )
        result = host.run(" ".join(attempts) + " wait")
        lines = _by_target(result.stdout)
        outputs = {(t, p): lines.get(f"{t}:{p}", f"no answer: {result.stderr.strip()}") for t, p in targets}
    return {target: Connection(output == "connected", output) for target, output in outputs.items()}


_PYTHON_HTTP_GET = (
    "import sys, urllib.request\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight, never the egress proxy\n"
    "try:\n"
    "    response = opener.open(sys.argv[1], timeout=float(sys.argv[2]))\n"
    "    print(response.status, response.read(200).decode(errors='replace'))\n"
    "except urllib.error.HTTPError as exc:\n"
    "    print(exc.code, exc.read(200).decode(errors='replace'))\n"
    "except Exception as exc:\n"
    "    print('error', type(exc).__name__, exc)\n"
)


def http_get(host, url: str, timeout_s: float = 5.0) -> tuple[str, str]:
    """(status or 'error', body start) of a GET from inside a container that has python3."""
    result = host.run(f"{_QUICK_RESOLVER} python3 -I -c {shlex.quote(_PYTHON_HTTP_GET)} {shlex.quote(url)} {timeout_s}")
    status, _, body = result.stdout.strip().partition(" ")
    return status, body or result.stderr.strip()


def ip_addresses(client, name: str) -> Mapping[str, str]:
    """network name -> the container's IPv4 address on it."""
    networks = client.api.inspect_container(name)["NetworkSettings"]["Networks"]
    return {network: info["IPAddress"] for network, info in networks.items() if info.get("IPAddress")}
