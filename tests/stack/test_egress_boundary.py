"""The egress boundary of the deployed stack: the workspace goes out only through the egress gateway.

The ci stack allows pypi.org and files.pythonhosted.org (Pulumi.ci.yaml). Requests are made from
inside the workspace with its own tools and environment (curl reads HTTP(S)_PROXY), and every
decision is read back from the gateway's log. The workspace does not trust this machine's
TLS-intercepting proxy (if there is one): an admitted tunnel is proven by the gateway's
``200 Connection established``, whatever the TLS handshake inside it then does. Outside hosts
contacted: pypi.org, files.pythonhosted.org (admitted); registry.npmjs.org (denied, so never).
The catalog's no-outside-dns and internal-networks-unaddressed rules are checked on the running
stack by test_catalog_on_live_stack.py; the paths they close are proven in
tests/image/test_egress_gateway.py.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass

import pytest

from components.egress_proxy import PAGE_NOT_ALLOWLISTED, PAGE_PORT_NOT_ALLOWED
from sandbox_model.destinations import PROXY_PORT, SHARED_ALIAS
from tests.stack.runtime import connect, container_env, container_host, ip_addresses

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
LOOKUP_TIMEOUT_S = 4
#: A lookup nobody answers gives up after a second (glibc would wait 2 x 5 s per query type).
QUICK_LOOKUP = f"RES_OPTIONS='timeout:1 attempts:1' timeout {LOOKUP_TIMEOUT_S} getent hosts"


@pytest.fixture(scope="module")
def gateway(deployed_stack) -> str:
    if not deployed_stack.containers.get("egress-gateway"):
        pytest.skip(f"stack {deployed_stack.stack!r} has no egress gateway (egress: none)")
    return deployed_stack.one("egress-gateway")


@pytest.fixture(scope="module")
def allowlist(docker_api, gateway) -> set[str]:
    """The names the running gateway admits (its rendered config), so the suite also fits a user's stack."""
    conf = container_env(docker_api, gateway).get("EGRESS_SQUID_CONF", "")
    for line in conf.splitlines():
        if line.startswith("acl allowlisted dstdomain -n "):
            return set(line.split()[4:])
    return set()


def admitted(allowlist: set[str], host: str) -> bool:
    return host in allowlist or any(d.startswith(".") and (host == d[1:] or host.endswith(d)) for d in allowlist)


def require(condition: bool, why: str) -> None:
    """Only registries may be contacted: a check that needs another allowlist skips, saying why."""
    if not condition:
        pytest.skip(why)


@dataclass(frozen=True)
class Answer:
    status: str  # HTTP status of the final response ("000": none)
    connect_status: str  # the gateway's answer to CONNECT ("000": none sent)
    body: str


def from_workspace(deployed_stack, url: str, *curl_args: str) -> Answer:
    """curl in the workspace with the workspace's own proxy environment."""
    workspace = container_host(deployed_stack.one("workspace"))
    args = " ".join(shlex.quote(arg) for arg in curl_args)
    result = workspace.run(
        f"curl -sS --max-time 30 {args} -o /tmp/egress-test-body "
        f"-w '%{{http_code}} %{{http_connect}}\\n' {shlex.quote(url)}; "
        "head -c 4000 /tmp/egress-test-body 2>/dev/null; rm -f /tmp/egress-test-body"
    )
    codes, _, body = result.stdout.partition("\n")
    status, connect_status = codes.split()
    return Answer(status=status, connect_status=connect_status, body=body)


def decisions(docker_api, gateway: str, since: float) -> list[dict]:
    """The gateway's decision lines since ``since`` (each must be one JSON object)."""
    time.sleep(1)  # squid writes the line when the transaction ends
    text = docker_api.containers.get(gateway).logs(stdout=True, stderr=False, since=since).decode()
    return [json.loads(line) for line in text.splitlines()]


def decision(lines: list[dict], method: str, host: str, port: str) -> dict:
    matching = [line for line in lines if (line["method"], line["host"], line["port"]) == (method, host, port)]
    assert matching, f"no decision logged for {method} {host}:{port}: {lines}"
    return matching[-1]


def test_the_workspace_is_configured_to_go_out_through_the_gateway(deployed_stack, docker_api, gateway):
    env = container_env(docker_api, deployed_stack.one("workspace"))
    assert {key: env.get(key) for key in PROXY_ENV} == dict.fromkeys(PROXY_ENV, f"http://{gateway}:{PROXY_PORT}")
    direct = set(env["NO_PROXY"].split(","))
    assert {SHARED_ALIAS, *deployed_stack.containers["executor"], deployed_stack.one("model-gateway")} <= direct
    for role in ("executor", "model", "model-gateway", "ingress-gateway", "conductor"):
        for name in deployed_stack.containers.get(role, ()):
            assert not set(container_env(docker_api, name)) & set(PROXY_ENV), f"{name} has a proxy setting"


@pytest.mark.parametrize("url", ["https://pypi.org/simple/pip/", "https://files.pythonhosted.org/"])
def test_allowlisted_names_are_tunnelled(deployed_stack, docker_api, gateway, allowlist, url):
    require(admitted(allowlist, url.split("/")[2]), f"this stack's egress.allow does not admit {url}")
    since = time.time()
    answer = from_workspace(deployed_stack, url)
    assert answer.connect_status == "200", answer
    host = url.split("/")[2]
    entry = decision(decisions(docker_api, gateway, since), "CONNECT", host, "443")
    assert entry["decision"] == "allowed" and entry["server"] != "-", entry


def test_allowlisted_plain_http_reaches_the_origin(deployed_stack, docker_api, gateway, allowlist):
    require(admitted(allowlist, "pypi.org"), "this stack's egress.allow does not admit pypi.org")
    since = time.time()
    answer = from_workspace(deployed_stack, "http://pypi.org/simple/pip/")
    entry = decision(decisions(docker_api, gateway, since), "GET", "pypi.org", "80")
    assert entry["decision"] == "allowed" and entry["server"] != "-", entry
    assert answer.status == entry["status"] and answer.status != "403", answer  # the origin's answer (a redirect)


@pytest.mark.parametrize(
    "url, curl_args, method, host, port, page",
    [
        ("https://registry.npmjs.org/", (), "CONNECT", "registry.npmjs.org", "443", PAGE_NOT_ALLOWLISTED),
        ("http://registry.npmjs.org/", (), "GET", "registry.npmjs.org", "80", PAGE_NOT_ALLOWLISTED),
        ("https://pypi.org:8443/", (), "CONNECT", "pypi.org", "8443", PAGE_PORT_NOT_ALLOWED),
        ("http://pypi.org:8080/", (), "GET", "pypi.org", "8080", PAGE_PORT_NOT_ALLOWED),
        (
            "http://files.pythonhosted.org:22/",
            ("-p",),
            "CONNECT",
            "files.pythonhosted.org",
            "22",
            PAGE_PORT_NOT_ALLOWED,
        ),
    ],
)
def test_everything_else_is_denied_before_any_connection(
    deployed_stack, docker_api, gateway, allowlist, url, curl_args, method, host, port, page
):
    require(
        admitted(allowlist, host) == (page == PAGE_PORT_NOT_ALLOWED),
        f"this stack's egress.allow {'admits' if admitted(allowlist, host) else 'does not admit'} {host}",
    )
    since = time.time()
    answer = from_workspace(deployed_stack, url, *curl_args)
    assert "403" in (answer.status, answer.connect_status), answer
    if method == "GET":  # the denial page says what was refused
        assert "opencode-sandbox egress:" in answer.body and host in answer.body, answer.body
    entry = decision(decisions(docker_api, gateway, since), method, host, port)
    assert (entry["decision"], entry["error"], entry["server"]) == ("denied", page, "-"), entry


def test_names_outside_the_stack_resolve_only_in_the_gateway(deployed_stack, gateway):
    # Every container but the gateway resolves outside names nowhere, whatever the allowlist says.
    lookup = f"{QUICK_LOOKUP} pypi.org"
    for role in ("workspace", "executor", "model", "model-gateway", "conductor"):
        for name in deployed_stack.containers.get(role, ()):
            result = container_host(name).run(lookup)
            assert result.rc != 0, f"{name} resolved pypi.org: {result.stdout}"
    assert container_host(gateway).run(lookup).rc == 0, "the egress gateway cannot resolve an allowlisted name"


def test_executors_cannot_reach_the_gateway(deployed_stack, docker_api, gateway):
    targets = [(target, PROXY_PORT) for target in (gateway, *ip_addresses(docker_api, gateway).values())]
    for executor in deployed_stack.containers["executor"]:
        for target, attempt in connect(container_host(executor), targets, LOOKUP_TIMEOUT_S).items():
            assert attempt.blocked, f"{executor} -> egress gateway at {target}: {attempt.detail}"


def test_every_line_of_the_decision_log_is_json(deployed_stack, docker_api, gateway):
    from_workspace(deployed_stack, "http://registry.npmjs.org/")  # at least one decision
    time.sleep(1)
    lines = docker_api.containers.get(gateway).logs(stdout=True, stderr=False).decode().splitlines()
    assert lines, "the gateway logged no decision at all"
    for line in lines:
        entry = json.loads(line)
        assert entry["decision"] in {"allowed", "denied"}, line
