"""The stack's network paths, by real connection attempts from inside its containers and from the host.

Allowed paths must work (workspace -> model gateway -> model, workspace -> executors, host -> web UI
on 127.0.0.1); everything else must fail (executor -> model or model gateway, executor/workspace ->
outside; workspace -> model server: test_model_gateway.py). The only
outside destinations ever tried are package registries (pypi.org, deb.debian.org), which the
attempts never reach. The egress proxy's allowlist is tested in test_egress_boundary.py.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from sandbox_model.destinations import MODEL_GATEWAY_PORT, MODEL_PORT, SHARED_ALIAS, WEB_PORT
from sandbox_model.executor_contract import PORT as EXECUTOR_PORT
from sandbox_model.security import baseline
from tests.stack.runtime import connect, container_env, container_host, http_get, ip_addresses

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

#: Registry hosts only: the one kind of outside destination a test may ever try.
OUTSIDE = (("pypi.org", 443), ("deb.debian.org", 80))
CONNECT_TIMEOUT_S = 3.0


def _outside_targets() -> list[tuple[str, int]]:
    """Each registry by name and by the address this host resolves it to (when it can)."""
    targets = list(OUTSIDE)
    for host, port in OUTSIDE:
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror:
            continue
        targets.append((infos[0][4][0], port))
    return targets


def test_workspace_reaches_the_model_through_the_model_gateway(deployed_stack):
    gateway = deployed_stack.one("model-gateway")
    workspace = container_host(deployed_stack.one("workspace"))
    # No key from the workspace: the gateway adds it (the model server refuses /v1 without one).
    status, body = http_get(workspace, f"http://{gateway}:{MODEL_GATEWAY_PORT}/v1/models")
    assert status == "200", f"workspace -> {gateway}:{MODEL_GATEWAY_PORT}/v1/models: {status} {body}"


def test_workspace_reaches_every_executor(deployed_stack):
    workspace = container_host(deployed_stack.one("workspace"))
    for target in (SHARED_ALIAS, *deployed_stack.containers["executor"]):
        status, body = http_get(workspace, f"http://{target}:{EXECUTOR_PORT}/health")
        assert status == "200", f"workspace -> {target}:{EXECUTOR_PORT}/health: {status} {body}"


def test_executors_cannot_reach_the_model_or_its_gateway(deployed_stack, docker_api):
    targets = []
    for role, port in (("model", MODEL_PORT), ("model-gateway", MODEL_GATEWAY_PORT)):
        for name in deployed_stack.containers.get(role, ()):
            targets += [(name, port), *((address, port) for address in ip_addresses(docker_api, name).values())]
    assert targets
    for executor in deployed_stack.containers["executor"]:
        attempts = connect(container_host(executor), targets, CONNECT_TIMEOUT_S)
        open_paths = {f"{t}:{p}": a.detail for (t, p), a in attempts.items() if not a.blocked}
        assert not open_paths, f"{executor} -> the model was not stopped by the network: {open_paths}"


def test_executors_cannot_reach_the_workspace_web_ui(deployed_stack, docker_api):
    """OpenCode listens on its ingress-network address only: code in an executor cannot even reach its login."""
    workspace = deployed_stack.one("workspace")
    workspace_ip = ip_addresses(docker_api, workspace)[deployed_stack.networks["executor"]]
    for executor in deployed_stack.containers["executor"]:
        attempts = connect(
            container_host(executor), [(workspace, WEB_PORT), (workspace_ip, WEB_PORT)], CONNECT_TIMEOUT_S
        )
        open_paths = {f"{t}:{p}": a.detail for (t, p), a in attempts.items() if a.connected}
        assert not open_paths, f"{executor} reached the workspace's web UI: {open_paths}"


@pytest.mark.parametrize("role", ["executor", "workspace", "model", "model-gateway", "ingress-gateway", "conductor"])
def test_no_direct_route_out(deployed_stack, role):
    """No registry is reachable directly, by name or by address (the egress gateway is the only way out)."""
    names = deployed_stack.containers.get(role, ())
    if not names:
        pytest.skip(f"stack {deployed_stack.stack!r} has no {role} container")
    for name in names:
        attempts = connect(container_host(name), _outside_targets(), CONNECT_TIMEOUT_S)
        open_paths = {f"{t}:{p}": a.detail for (t, p), a in attempts.items() if not a.blocked}
        assert not open_paths, f"{name} -> outside was not stopped by the network: {open_paths}"


def _web(url: str, password: str | None) -> int:
    request = urllib.request.Request(url)
    if password is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"opencode:{password}".encode()).decode())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the host's proxy settings do not apply
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_web_ui_answers_on_loopback_behind_the_password(deployed_stack, docker_api):
    url = f"{deployed_stack.web_url}/global/health"
    password = container_env(docker_api, deployed_stack.one("workspace"))["OPENCODE_SERVER_PASSWORD"]
    assert deployed_stack.web_url.startswith("http://127.0.0.1:")
    assert _web(url, None) == 401, "the web UI answered without the password"
    assert _web(url, "not-the-password") == 401, "the web UI accepted a wrong password"
    assert _web(url, password) == 200, "the web UI refused the stack's password"


def _published(docker_api, names) -> list[tuple[str, str, int]]:
    published = []
    for name in names:
        for bindings in (docker_api.api.inspect_container(name)["HostConfig"].get("PortBindings") or {}).values():
            published += [(name, b.get("HostIp") or "0.0.0.0", int(b["HostPort"] or 0)) for b in bindings or []]
    return published


def test_nothing_listens_on_a_non_loopback_host_address(deployed_stack, docker_api):
    published = _published(docker_api, deployed_stack.all_containers)
    assert published, "the stack publishes no port at all (the web UI should be)"
    wrong = [entry for entry in published if not baseline.is_loopback_address(entry[1])]
    assert not wrong, f"ports published on non-loopback addresses: {wrong}"
    ports = {port for _name, _ip, port in published}
    listeners = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout.split("\n")
    local = [line.split()[3] for line in listeners if line.strip()]
    by_port = {
        port: [addr.rsplit(":", 1)[0].strip("[]") for addr in local if addr.rsplit(":", 1)[1] == str(port)]
        for port in ports
    }
    missing = [port for port, addresses in by_port.items() if not addresses]
    assert not missing, f"published ports nobody listens on (userland proxy off?): {missing}"
    exposed = {
        port: addresses
        for port, addresses in by_port.items()
        if not all(baseline.is_loopback_address(address) for address in addresses)
    }
    assert not exposed, f"host listeners on the stack's ports beyond loopback: {exposed}"
