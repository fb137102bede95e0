"""The egress gateway (images/egress) on a private copy of the stack's egress topology.

Networks as components.networks declares them: ``inside`` (internal, the workspace and the
gateway), ``outside`` (the gateway's route out) and ``executor`` (internal, another sandbox
network). The gateway runs hardened as the stack runs it; a stand-in workspace (curl, python3)
uses it, with the stack's DNS setting. Everything carries the label
``opencode-sandbox.test=egress`` and is removed afterwards, on failure too.

The only outside hosts contacted: deb.debian.org, pypi.org, files.pythonhosted.org (allowed) and
registry.npmjs.org (denied, so never contacted). The Docker host is contacted on a listener this
module opens.
"""

from __future__ import annotations

import io
import json
import secrets
import socket
import socketserver
import threading
import time
import uuid
from dataclasses import dataclass

import pytest

from components.egress_proxy import (
    PAGE_NOT_ALLOWLISTED,
    PAGE_PORT_NOT_ALLOWED,
    render_squid_conf,
)
from components.hardening import Tmpfs
from harness.images import EXTRA_CA_FILE, build_image, require_base_image
from sandbox_model.destinations import PROXY_PORT, Destination
from sandbox_model.roles import Role
from sandbox_model.security import baseline
from sandbox_model.security.profiles import seccomp_profile
from sandbox_model.topology import INTERNAL_NETWORK_OPTIONS
from stacks.settings import EgressSettings, GatewaySettings
from tests.image.support import remove_labelled

pytestmark = pytest.mark.docker

TEST_LABEL = {"opencode-sandbox.test": "egress"}
EGRESS_TAG = "opencode-sandbox/egress:test"
CLIENT_TAG = "opencode-sandbox/egress-test-client:test"
CLIENT_DOCKERFILE = b"""\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates curl python3-minimal \\
 && rm -rf /var/lib/apt/lists/*
"""
ALLOW = ["deb.debian.org", "pypi.org", "*.pythonhosted.org"]
CLIENT_USER = "1000:1000"
#: The egress gateway's identity (stacks.settings.GatewaySettings).
GATEWAY_USER = GatewaySettings().egress_user
CA_IN_CLIENT = "/opt/test-ca/extra-ca.pem"
HEALTHY_TIMEOUT_S = 60
#: Enough for a connection or lookup that is going to fail to fail.
PROBE_TIMEOUT_S = 4
#: A lookup nobody answers gives up after a second (glibc would wait 2 x 5 s per query type).
QUICK_LOOKUP = f"RES_OPTIONS='timeout:1 attempts:1' timeout {PROBE_TIMEOUT_S} getent hosts"

# A DNS "server" for the container's own loopback: records each query name and answers REFUSED.
DNS_RECORDER = r"""
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("listening", flush=True)
while True:
    data, peer = s.recvfrom(512)
    i, labels = 12, []
    while data[i]:
        labels.append(data[i + 1:i + 1 + data[i]].decode()); i += 1 + data[i]
    print("query", ".".join(labels), "from", peer[0], flush=True)
    s.sendto(data[:2] + b"\x81\x85" + struct.pack(">HHHH", 1, 0, 0, 0) + data[12:i + 5], peer)
"""


@pytest.fixture(scope="module")
def docker_api(docker_client):
    """The suite's client (tests/image/conftest.py), with this module's objects removed before
    (leftovers of an interrupted run) and after (pytest tears down after failures too)."""
    remove_labelled(docker_client, "egress")
    yield docker_client
    remove_labelled(docker_client, "egress")


@pytest.fixture(scope="module")
def images(docker_api):
    build_image(docker_api, "egress", EGRESS_TAG)
    docker_api.images.build(
        fileobj=io.BytesIO(CLIENT_DOCKERFILE),
        tag=CLIENT_TAG,
        rm=True,
        forcerm=True,
        buildargs={"BASE_IMAGE": require_base_image(docker_api)},
    )


class _Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass(frozen=True)
class HostListener:
    """A TCP listener on every address of the Docker host; answers any request with ``token``."""

    port: int
    token: str


@pytest.fixture(scope="module")
def host_listener():
    token = "host-listener-" + secrets.token_hex(8)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.settimeout(2)
            try:
                self.request.recv(4096)
            except OSError:
                pass
            body = token.encode()
            self.request.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    server = _Listener(("0.0.0.0", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HostListener(port=server.server_address[1], token=token)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Topology:
    client: object  # docker SDK Container
    proxy: object
    inside: object  # docker SDK Network
    outside: object
    executor_net: object
    executor: object
    control: object  # on `outside`: proves the host listener and the probe work
    listener: HostListener

    @property
    def proxy_url(self) -> str:
        return f"http://{self.proxy.name}:{PROXY_PORT}"


def gateway_run_options() -> dict:
    """The stack's hardening of the egress gateway (components.hardening), as docker SDK arguments."""
    import docker.types

    limits = EgressSettings().limits
    role = Role.EGRESS_GATEWAY.value
    run_dir = Tmpfs(size_mb=16)
    return {
        "user": GATEWAY_USER.docker_user,
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": [baseline.NO_NEW_PRIVILEGES, "seccomp=" + seccomp_profile(baseline.ROLE_SECCOMP_PROFILE[role])],
        "tmpfs": {"/run/squid": run_dir.options(), "/tmp": run_dir.options()},
        "mem_limit": f"{limits.memory_mb}m",
        "memswap_limit": f"{limits.memory_mb}m",
        "nano_cpus": int(limits.cpus * 1e9),
        "ulimits": [
            docker.types.Ulimit(name="nproc", soft=limits.nproc, hard=limits.nproc),
            docker.types.Ulimit(name="nofile", soft=4096, hard=4096),
            docker.types.Ulimit(name="core", soft=0, hard=0),
        ],
        "log_config": docker.types.LogConfig(type=baseline.LOG_DRIVER, config=dict(baseline.LOG_OPTS)),
    }


def sandbox_network(client, purpose: str, suffix: str, internal: bool):
    return client.networks.create(
        f"egress-test-{purpose}-{suffix}",
        driver="bridge",
        internal=internal,
        options=dict(INTERNAL_NETWORK_OPTIONS) if internal else None,
        labels=TEST_LABEL,
    )


def sandbox_container(client, name: str, network, **options):
    """A stand-in for a sandbox role: non-root, no capabilities, the stack's DNS setting."""
    return client.containers.run(
        CLIENT_TAG,
        ["sleep", "infinity"],
        name=name,
        detach=True,
        network=network.name,
        user=CLIENT_USER,
        cap_drop=["ALL"],
        security_opt=[baseline.NO_NEW_PRIVILEGES],
        dns=list(baseline.CONTAINER_DNS_UPSTREAM),
        labels=TEST_LABEL,
        **options,
    )


def wait_healthy(container) -> None:
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    while True:
        container.reload()
        state = container.attrs["State"]
        if state.get("Health", {}).get("Status") == "healthy":
            return
        if state["Status"] != "running" or time.monotonic() > deadline:
            raise AssertionError(
                f"the egress gateway did not become healthy ({state['Status']}, "
                f"{state.get('Health')}):\n{container.logs().decode(errors='replace')[-3000:]}"
            )
        time.sleep(0.5)


@pytest.fixture(scope="module")
def topology(docker_api, images, host_listener):
    suffix = uuid.uuid4().hex[:8]
    inside = sandbox_network(docker_api, "inside", suffix, internal=True)
    outside = sandbox_network(docker_api, "outside", suffix, internal=False)
    executor_net = sandbox_network(docker_api, "executor", suffix, internal=True)
    # The stack's external-model destination: a service on the Docker host, here the listener.
    conf = render_squid_conf(ALLOW, [Destination("host.docker.internal", host_listener.port, tls=False)])
    proxy = docker_api.containers.create(
        EGRESS_TAG,
        name=f"egress-test-proxy-{suffix}",
        network=inside.name,
        labels=TEST_LABEL,
        environment={"EGRESS_SQUID_CONF": conf},
        extra_hosts={"host.docker.internal": "host-gateway"},
        **gateway_run_options(),
    )
    outside.connect(proxy)
    proxy.start()
    # This machine's extra CA (TLS-intercepting proxy) goes to the test client only, never the gateway.
    ca = {str(EXTRA_CA_FILE): {"bind": CA_IN_CLIENT, "mode": "ro"}} if EXTRA_CA_FILE.is_file() else {}
    client = sandbox_container(docker_api, f"egress-test-client-{suffix}", inside, volumes=ca)
    executor = sandbox_container(docker_api, f"egress-test-executor-{suffix}", executor_net)
    control = docker_api.containers.run(
        CLIENT_TAG,
        ["sleep", "infinity"],
        name=f"egress-test-control-{suffix}",
        detach=True,
        network=outside.name,
        labels=TEST_LABEL,
    )
    wait_healthy(proxy)
    yield Topology(
        client=client,
        proxy=proxy,
        inside=inside,
        outside=outside,
        executor_net=executor_net,
        executor=executor,
        control=control,
        listener=host_listener,
    )
    # docker_api's finalizer removes every labelled container and network, also after a failure here.


# --- helpers --------------------------------------------------------------------------------------


def sh(container, script: str) -> tuple[int, str]:
    """(exit code, stdout and stderr) of a bash script in the container."""
    exit_code, output = container.exec_run(["bash", "-c", script])
    return exit_code, output.decode(errors="replace")


@dataclass(frozen=True)
class Fetch:
    curl_exit: int
    status: str  # the HTTP status of the (last) response, "000" when there was none
    connect_status: str  # the proxy's answer to CONNECT, "000" when none was sent
    body: str
    error: str  # curl's own message, if any


def fetch(topology: Topology, url: str, *curl_args: str, proxy: bool = True) -> Fetch:
    """curl from the stand-in workspace, through the gateway unless proxy=False."""
    route = f"-x {topology.proxy_url}" if proxy else "--noproxy '*'"
    # The system CAs plus this machine's extra CA (a TLS-intercepting proxy), when it has one.
    script = (
        f"cat /etc/ssl/certs/ca-certificates.crt {CA_IN_CLIENT} > /tmp/ca.pem 2>/dev/null; rm -f /tmp/body; "
        f"curl -sS --max-time 30 --cacert /tmp/ca.pem {route} {' '.join(curl_args)} -o /tmp/body "
        f"-w '%{{http_code}} %{{http_connect}}' '{url}' 2>/tmp/curl.err; echo \" $?\"; "
        "head -c 20000 /tmp/body 2>/dev/null"
    )
    _, output = sh(topology.client, script)
    first, _, body = output.partition("\n")
    codes = first.split()
    assert len(codes) == 3, f"curl said: {output}"
    return Fetch(
        curl_exit=int(codes[2]),
        status=codes[0],
        connect_status=codes[1],
        body=body,
        error=sh(topology.client, "cat /tmp/curl.err")[1].strip(),
    )


class ProxyLog:
    """The gateway's JSON decision lines (stdout only: squid's own messages go to stderr)."""

    def __init__(self, container):
        self.container = container
        self.seen = len(self.lines())

    def lines(self) -> list[str]:
        return self.container.logs(stdout=True, stderr=False).decode(errors="replace").splitlines()

    def new(self, count: int = 1, timeout_s: float = 10) -> list[dict]:
        """The next ``count`` decisions logged since the last call (each line must be JSON)."""
        deadline = time.monotonic() + timeout_s
        while True:
            fresh = self.lines()[self.seen :]
            if len(fresh) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.seen += len(fresh)
        assert len(fresh) == count, f"expected {count} new decision lines, got {fresh}"
        return [json.loads(line) for line in fresh]


def probe(container, address: str, port: int) -> str:
    """What a raw TCP request from ``container`` to address:port gets back ('' when nothing)."""
    script = (
        f"timeout {PROBE_TIMEOUT_S} bash -c 'exec 3<>/dev/tcp/{address}/{port} && "
        f'printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3\' 2>&1'
    )
    return sh(container, script)[1]


def registry_address(host: str, port: int) -> str:
    """The address this host resolves a registry to (the tests' only outside destinations)."""
    return socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]


def gateway_address(network) -> str:
    network.reload()
    return network.attrs["IPAM"]["Config"][0]["Gateway"]


def address_on(container, network) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]


# --- what the gateway admits ----------------------------------------------------------------------


def test_the_gateway_runs_as_the_stack_runs_it(topology):
    """squid as PID 1: the gateway's non-root UID, no capabilities, no-new-privileges, seccomp on."""
    _, status = sh(topology.proxy, "cat /proc/1/status; tr '\\0' ' ' < /proc/1/cmdline")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split() == [str(GATEWAY_USER.uid)] * 4
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1" and fields["Seccomp"].strip() == "2"
    assert "squid -N -f /run/squid/squid.conf" in status
    errors = [
        line
        for line in topology.proxy.logs(stdout=False, stderr=True).decode().splitlines()
        if "FATAL" in line or "ERROR" in line
    ]
    assert not errors, errors


def test_allowlisted_plain_http_is_fetched_through_the_gateway(topology):
    log = ProxyLog(topology.proxy)
    result = fetch(topology, "http://deb.debian.org/debian/dists/bookworm/Release")
    assert (result.curl_exit, result.status) == (0, "200"), result
    assert "Codename: bookworm" in result.body
    [decision] = log.new()
    assert (decision["method"], decision["host"], decision["port"], decision["status"], decision["decision"]) == (
        "GET",
        "deb.debian.org",
        "80",
        "200",
        "allowed",
    )
    assert decision["client"] == address_on(topology.client, topology.inside)
    assert decision["server"] != "-" and decision["time"].endswith("Z")


@pytest.mark.parametrize(
    "url, status",
    [
        ("https://pypi.org/simple/pip/", "200"),
        ("https://files.pythonhosted.org/", None),  # whatever the CDN answers for its root
    ],
)
def test_allowlisted_https_is_tunnelled_through_the_gateway(topology, url, status):
    log = ProxyLog(topology.proxy)
    result = fetch(topology, url)
    assert result.curl_exit == 0 and result.connect_status == "200", result
    if status is not None:
        assert result.status == status, result
    [decision] = log.new()
    host = url.split("/")[2]
    assert (decision["method"], decision["host"], decision["port"], decision["squid_status"], decision["decision"]) == (
        "CONNECT",
        host,
        "443",
        "TCP_TUNNEL",
        "allowed",
    )
    assert decision["server"] != "-"


def test_a_name_not_on_the_allowlist_is_denied_without_any_connection(topology):
    log = ProxyLog(topology.proxy)
    tunnel = fetch(topology, "https://registry.npmjs.org/")
    plain = fetch(topology, "http://registry.npmjs.org/")
    assert tunnel.connect_status == "403" and tunnel.curl_exit != 0, tunnel
    assert plain.status == "403", plain
    assert "opencode-sandbox egress: registry.npmjs.org is not on the allowlist (egress.allow)" in plain.body
    for decision, method, port in zip(log.new(2), ("CONNECT", "GET"), ("443", "80"), strict=True):
        assert (decision["method"], decision["host"], decision["port"]) == (method, "registry.npmjs.org", port)
        assert (decision["decision"], decision["status"], decision["error"]) == ("denied", "403", PAGE_NOT_ALLOWLISTED)
        assert decision["server"] == "-", "the gateway connected somewhere for a denied name"


@pytest.mark.parametrize(
    "url, curl_args, method, host, port",
    [
        ("https://pypi.org:8443/", (), "CONNECT", "pypi.org", "8443"),  # CONNECT to another port
        ("http://deb.debian.org:8080/", (), "GET", "deb.debian.org", "8080"),  # plain HTTP to another port
        ("http://pypi.org:443/", (), "GET", "pypi.org", "443"),  # plain HTTP to the TLS port
        ("http://deb.debian.org/", ("-X", "TRACE"), "TRACE", "deb.debian.org", "80"),  # a method that is not admitted
        ("http://pypi.org:22/", ("-p",), "CONNECT", "pypi.org", "22"),  # a tunnel to anything else
    ],
)
def test_other_ports_and_methods_of_allowlisted_names_are_denied(topology, url, curl_args, method, host, port):
    log = ProxyLog(topology.proxy)
    result = fetch(topology, url, *curl_args)
    assert "403" in (result.status, result.connect_status), result
    if method != "CONNECT":
        assert f"opencode-sandbox egress: {method} to {host} port {port} is not allowed" in result.body
    [decision] = log.new()
    assert (
        decision["method"],
        decision["host"],
        decision["port"],
        decision["decision"],
        decision["error"],
        decision["server"],
    ) == (method, host, port, "denied", PAGE_PORT_NOT_ALLOWED, "-")


def test_the_external_model_endpoint_on_the_docker_host_is_reached_exactly(topology):
    """The stack's external model (http://host.docker.internal:<port>): that port, plain HTTP, nothing else."""
    log = ProxyLog(topology.proxy)
    port = topology.listener.port
    reached = fetch(topology, f"http://host.docker.internal:{port}/v1/models")
    other_port = fetch(topology, f"http://host.docker.internal:{port + 1 if port < 65535 else port - 1}/")
    tunnel = fetch(topology, f"http://host.docker.internal:{port}/", "-p")
    assert (reached.status, reached.body) == ("200", topology.listener.token), reached
    assert other_port.status == "403" and tunnel.connect_status == "403", (other_port, tunnel)
    decisions = log.new(3)
    assert [d["decision"] for d in decisions] == ["allowed", "denied", "denied"]
    assert [d["server"] == "-" for d in decisions] == [False, True, True]


def test_every_decision_line_is_json_even_for_malformed_requests(topology):
    """Raw requests squid cannot parse, or that carry quotes, backslashes and control bytes."""
    requests = [
        'GET http://a"b.example/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n',
        "GET http://a\\\\b.example/ HTTP/1.1\\r\\n\\r\\n",
        'G"E\\\\T http://pypi.org/ HTTP/1.1\\r\\n\\r\\n',
        'CONNECT "quoted":443 HTTP/1.1\\r\\n\\r\\n',
        "GET http://\\xc3\\xa4\\x01.example/ HTTP/1.1\\r\\n\\r\\n",
        '\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xfc\\x03\\x03"\\\\\\n\\x01',
        "CONNECT [::1]:443 HTTP/1.1\\r\\n\\r\\n",
    ]
    log = ProxyLog(topology.proxy)
    for request in requests:
        script = (
            f"exec 3<>/dev/tcp/{topology.proxy.name}/{PROXY_PORT} && printf '{request}' >&3 && timeout 3 head -c 64 <&3"
        )
        _, answer = sh(topology.client, script)
        assert answer.startswith("HTTP/1.1 4"), f"{request!r} -> {answer!r}"
    decisions = log.new(len(requests))  # each line parsed as JSON
    assert {d["decision"] for d in decisions} == {"denied"}
    assert {d["server"] for d in decisions} == {"-"}
    # A connection that sends nothing (a port probe) is no decision and leaves no line.
    sh(topology.client, f"exec 3<>/dev/tcp/{topology.proxy.name}/{PROXY_PORT}; exec 3<&-")
    time.sleep(1)
    assert log.lines()[log.seen :] == []


# --- what nobody gets past it ---------------------------------------------------------------------


def test_no_direct_connection_bypasses_the_gateway(topology):
    by_name = fetch(topology, "https://pypi.org/simple/pip/", "--max-time", "8", proxy=False)
    assert by_name.curl_exit != 0 and by_name.status == "000", by_name
    for host, port in (("pypi.org", 443), ("deb.debian.org", 80)):
        address = registry_address(host, port)
        answer = probe(topology.client, address, port)
        assert "HTTP/" not in answer, f"the workspace reached {host} at {address}: {answer}"


def test_names_outside_the_stack_resolve_nowhere(topology):
    exit_code, output = sh(topology.client, f"{QUICK_LOOKUP} pypi.org")
    assert exit_code != 0, f"the workspace resolved pypi.org: {output}"
    exit_code, output = sh(topology.client, f"getent hosts {topology.proxy.name}")
    assert exit_code == 0 and address_on(topology.proxy, topology.inside) in output, output


def test_the_embedded_dns_forwards_unknown_names_into_the_container_only(docker_api, topology):
    """With the stack's dns setting, Docker's embedded DNS sends a name it does not know to the
    container's own loopback, never to the host or a resolver outside (CVE-2024-29018)."""
    recorder = sandbox_container(docker_api, f"{topology.executor.name}-dns", topology.executor_net)
    _, started = sh(recorder, f"python3 -c '{DNS_RECORDER}' > /tmp/dns.log 2>&1 & sleep 1; cat /tmp/dns.log")
    assert "listening" in started, f"the DNS recorder did not start: {started}"
    name = f"probe-{secrets.token_hex(4)}.invalid"
    exit_code, _ = sh(recorder, f"{QUICK_LOOKUP} {name}")
    _, recorded = sh(recorder, "cat /tmp/dns.log")
    assert exit_code != 0
    assert f"query {name} from 127.0.0.1" in recorded, f"the embedded DNS did not ask the container itself: {recorded}"


def test_the_docker_host_is_unreachable_from_internal_networks(topology):
    listener = topology.listener
    # The control: from a network with a route, the host's listener answers the same probe.
    assert listener.token in probe(topology.control, gateway_address(topology.outside), listener.port)
    host_addresses = {
        gateway_address(topology.inside),
        gateway_address(topology.executor_net),
        gateway_address(topology.outside),
        # This host's own address towards the outside (a UDP "connect" sends nothing).
        _source_address(registry_address("pypi.org", 443)),
    }
    for container in (topology.client, topology.executor):
        for address in sorted(host_addresses):
            answer = probe(container, address, listener.port)
            assert listener.token not in answer, f"{container.name} reached the host at {address}:{listener.port}"


def _source_address(destination: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect((destination, 9))
        return udp.getsockname()[0]


def test_another_internal_network_cannot_reach_the_gateway(topology):
    """The executors' situation: their network has no path to the gateway, by name or address."""
    exit_code, output = sh(topology.executor, f"{QUICK_LOOKUP} {topology.proxy.name}")
    assert exit_code != 0, f"an executor resolved the gateway: {output}"
    for network in (topology.inside, topology.outside):
        address = address_on(topology.proxy, network)
        answer = probe(topology.executor, address, PROXY_PORT)
        assert "HTTP/" not in answer, f"an executor reached the gateway at {address}: {answer}"
