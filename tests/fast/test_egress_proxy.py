"""The egress gateway's squid.conf (components/egress_proxy.py) and how the program wires the gateway.

Rendering is checked as text here and by squid itself: ``test_squid_accepts_the_rendered_configuration``
runs ``squid -k parse`` in the built images/egress image (marker ``docker``). What the proxy then
does with real requests is tests/image/test_egress_gateway.py.
"""

from __future__ import annotations

import json
import re

import pytest

from components.egress_proxy import (
    PAGE_NOT_ALLOWLISTED,
    PAGE_PORT_NOT_ALLOWED,
    dedupe_domains,
    render_squid_conf,
)
from harness.program import run_program, stack_config
from sandbox_model.destinations import PROXY_PORT, SHARED_ALIAS, WEB_ALIAS, Destination
from sandbox_model.naming import LABEL_NETWORK, PROJECT
from sandbox_model.roles import Role
from stacks.settings import EgressSettings

PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
#: A squid logformat code: %[{argument}][<|>]name (e.g. %>a, %{...}tg, %err_code).
SQUID_CODE = re.compile(r"%(?:\{[^}]*\})?[<>]?[A-Za-z_]+")


def directives(conf: str, name: str) -> list[str]:
    """The values of every `name ...` line of a squid.conf, in order."""
    return [line[len(name) + 1 :] for line in conf.splitlines() if line.startswith(name + " ")]


def acls(conf: str) -> dict[str, str]:
    return dict(value.split(" ", 1) for value in directives(conf, "acl"))


# --- rendering ------------------------------------------------------------------------------------


def test_wildcards_become_squid_domains_and_covered_names_are_dropped():
    allow = [
        "pypi.org",
        "*.pythonhosted.org",
        "files.pythonhosted.org",
        "pythonhosted.org",
        "*.example.com",
        "*.a.example.com",
        "PyPI.org",
    ]
    # squid refuses 'pythonhosted.org' next to '.pythonhosted.org' (it is matched by it anyway).
    assert dedupe_domains(allow) == [".example.com", ".pythonhosted.org", "pypi.org"]
    assert acls(render_squid_conf(allow))["allowlisted"] == "dstdomain -n .example.com .pythonhosted.org pypi.org"


def test_a_name_is_not_covered_by_an_unrelated_suffix():
    # 'notexample.com' ends with 'example.com' but is not under '.example.com'.
    assert dedupe_domains(["*.example.com", "notexample.com"]) == [".example.com", "notexample.com"]


def test_allowlisted_names_are_admitted_for_connect_443_and_plain_http_80_only():
    conf = render_squid_conf(["pypi.org"])
    acl = acls(conf)
    assert acl["allowlisted_tls"] == "all-of CONNECT port_443 allowlisted"
    assert acl["allowlisted_http"] == "all-of plain_method port_80 allowlisted"
    assert acl["CONNECT"] == "method CONNECT" and acl["port_443"] == "port 443" and acl["port_80"] == "port 80"
    assert "CONNECT" not in acl["plain_method"].split() and "TRACE" not in acl["plain_method"].split()
    assert acl["permitted"] == "any-of allowlisted_tls allowlisted_http"
    assert directives(conf, "http_access") == ["allow permitted", "deny allowlisted", "deny all"]
    # Names are matched as written: no dstdomain ACL may resolve an address back to a name.
    assert all(value.startswith("dstdomain -n ") for value in acl.values() if value.startswith("dstdomain"))


def test_denials_say_why():
    conf = render_squid_conf(["pypi.org"], [Destination.from_url("http://host.docker.internal:1234/v1")])
    assert directives(conf, "deny_info") == [
        f"{PAGE_PORT_NOT_ALLOWED} allowlisted dest_0_host",
        f"{PAGE_NOT_ALLOWLISTED} all",
    ]


@pytest.mark.parametrize(
    "url, method, host, port",
    [
        ("http://host.docker.internal:1234/v1", "plain_method", "host.docker.internal", 1234),
        ("https://models.example.com/v1", "CONNECT", "models.example.com", 443),
        ("http://192.168.1.20:11434/v1", "plain_method", "192.168.1.20", 11434),
    ],
)
def test_the_external_model_endpoint_is_admitted_exactly(url, method, host, port):
    conf = render_squid_conf([], [Destination.from_url(url)])
    acl = acls(conf)
    assert acl["dest_0_host"] == f"dstdomain -n {host}"
    assert acl["dest_0_port"] == f"port {port}"
    assert acl["dest_0"] == f"all-of {method} dest_0_host dest_0_port"
    assert acl["permitted"] == "any-of dest_0"
    assert "allowlisted" not in acl


def test_without_allowlist_or_destination_everything_is_denied():
    conf = render_squid_conf([])
    assert directives(conf, "http_access") == ["deny all"]
    assert "permitted" not in acls(conf)
    assert directives(conf, "access_log") == ["stdio:/dev/stdout logformat=sandbox_denied with_request"]


def test_the_logged_decision_is_the_acl_that_decides():
    conf = render_squid_conf(["pypi.org"], [Destination.from_url("https://models.example.com/v1")])
    assert [line for line in directives(conf, "http_access") if line.startswith("allow")] == ["allow permitted"]
    assert directives(conf, "access_log") == [
        "stdio:/dev/stdout logformat=sandbox_allowed permitted",
        "stdio:/dev/stdout logformat=sandbox_denied !permitted with_request",
    ]


@pytest.mark.parametrize("filler", ["-", "pypi.org", "0"])
def test_every_log_line_is_one_json_object(filler):
    """Whatever squid puts in place of a code ("-" when it has no value), the line is JSON."""
    formats = dict(value.split(" ", 1) for value in directives(render_squid_conf(["pypi.org"]), "logformat"))
    assert set(formats) == {"sandbox_allowed", "sandbox_denied"}
    for name, template in formats.items():
        record = json.loads(SQUID_CODE.sub(filler, template))
        assert set(record) >= {"time", "client", "method", "host", "port", "decision", "server"}
        assert record["decision"] == name.removeprefix("sandbox_")


def test_nothing_is_written_to_the_read_only_root():
    conf = render_squid_conf(["pypi.org"])
    assert directives(conf, "pid_filename") == ["/run/squid/squid.pid"]
    assert directives(conf, "cache_log") == ["stdio:/dev/stderr"]
    assert {line.split()[0] for line in directives(conf, "access_log")} == {"stdio:/dev/stdout"}
    assert directives(conf, "cache_store_log") == ["none"] and directives(conf, "netdb_filename") == ["none"]
    assert directives(conf, "pinger_enable") == ["off"]  # the setuid ICMP helper (bits stripped in the image)
    assert directives(conf, "http_port") == [str(PROXY_PORT)]


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://host.docker.internal:1234/v1", Destination("host.docker.internal", 1234, tls=False)),
        ("https://Models.Example.com/v1", Destination("models.example.com", 443, tls=True)),
        ("http://10.0.0.5", Destination("10.0.0.5", 80, tls=False)),
    ],
)
def test_destination_from_url(url, expected):
    assert Destination.from_url(url) == expected


@pytest.mark.parametrize("url", ["http://[::1]:1234/v1", "ftp://models.example.com/", "http://a b:1/", "http:///v1"])
def test_a_destination_squid_cannot_match_as_written_is_refused(url):
    with pytest.raises(ValueError, match="Fix: give e.g. http://host.docker.internal:1234/v1"):
        Destination.from_url(url)


# --- how the program wires the gateway (under mocks) ----------------------------------------------


def envs(container) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in container.inputs.get("envs", []))


def networks_of(container) -> list[str]:
    return [attachment["name"] for attachment in container.inputs.get("networksAdvanced", [])]


def network_purposes(declared) -> dict[str, tuple[str, bool]]:
    """network name -> (purpose label, internal)."""
    return {
        n.inputs["name"]: (
            {label["label"]: label["value"] for label in n.inputs["labels"]}[LABEL_NETWORK],
            bool(n.inputs.get("internal")),
        )
        for n in declared.networks
    }


def stack_allowlist(stack: str) -> list[str]:
    raw = stack_config(stack).get(f"{PROJECT}:egress", "none")
    return EgressSettings.model_validate({"allow": []} if raw == "none" else json.loads(raw)).allow


def only(containers):
    assert len(containers) == 1, [c.name for c in containers]
    return containers[0]


@pytest.mark.parametrize("stack", ["ci", "gpu"])
def test_the_gateway_runs_the_allowlist_of_the_stack_file(declared_stacks, stack):
    gateway = only(declared_stacks[stack].container(Role.EGRESS_GATEWAY.value))
    assert envs(gateway)["EGRESS_SQUID_CONF"] == render_squid_conf(stack_allowlist(stack))


@pytest.mark.parametrize("stack", ["ci", "gpu", "dev"])
def test_the_gateway_joins_the_egress_network_and_the_network_out(declared_stacks, stack):
    declared = declared_stacks[stack]
    gateway = only(declared.container(Role.EGRESS_GATEWAY.value))
    purposes = network_purposes(declared)
    assert [purposes[name] for name in networks_of(gateway)] == [("egress", True), ("outside", False)]


@pytest.mark.parametrize("stack", ["ci", "gpu"])
def test_the_workspace_goes_out_through_the_gateway_and_reaches_the_stack_directly(declared_stacks, stack):
    declared = declared_stacks[stack]
    gateway = only(declared.container(Role.EGRESS_GATEWAY.value))
    workspace = only(declared.container(Role.WORKSPACE.value))
    env = envs(workspace)
    assert {key: env.get(key) for key in PROXY_ENV} == dict.fromkeys(
        PROXY_ENV, f"http://{gateway.inputs['name']}:{PROXY_PORT}"
    )
    # The stack's own names, the workspace's own web address (its health check calls it) included;
    # the model through the model gateway (the workspace reaches no model server).
    direct = {
        SHARED_ALIAS,
        WEB_ALIAS,
        *(c.inputs["name"] for c in declared.container(Role.EXECUTOR.value)),
        *(c.inputs["name"] for c in declared.container(Role.MODEL_GATEWAY.value)),
    }
    for key in ("NO_PROXY", "no_proxy"):
        entries = env[key].split(",")
        assert entries[:2] == ["localhost", "127.0.0.1"] and set(entries[2:]) == direct, f"{key}={env[key]}"
    purposes = network_purposes(declared)
    assert ("egress", True) in [purposes[name] for name in networks_of(workspace)]


def test_an_external_model_is_the_model_gateways_way_out_not_the_workspaces(declared_stacks):
    """dev: egress none and an external model: the model gateway goes out through the egress gateway, the
    workspace not at all (it has no proxy and is not on the egress network)."""
    declared = declared_stacks["dev"]
    egress = only(declared.container(Role.EGRESS_GATEWAY.value))
    model_gateway = only(declared.container(Role.MODEL_GATEWAY.value))
    workspace = only(declared.container(Role.WORKSPACE.value))
    purposes = network_purposes(declared)
    assert [purposes[name][0] for name in networks_of(model_gateway)] == ["model", "egress"]
    assert envs(model_gateway)["MODEL_GATEWAY_PROXY"] == f"http://{egress.inputs['name']}:{PROXY_PORT}"
    assert not set(envs(workspace)) & {*PROXY_ENV, "NO_PROXY", "no_proxy"}
    assert not {purposes[name][0] for name in networks_of(workspace)} & {"egress", "outside"}


@pytest.mark.parametrize("stack", ["ci", "gpu", "dev"])
def test_no_other_role_is_given_a_proxy_or_a_network_out(declared_stacks, stack):
    declared = declared_stacks[stack]
    purposes = network_purposes(declared)
    for role in (Role.EXECUTOR, Role.MODEL, Role.INGRESS_GATEWAY, Role.MODEL_GATEWAY):
        for container in declared.container(role.value):
            assert not set(envs(container)) & {*PROXY_ENV, "NO_PROXY", "no_proxy"}, container.name
            joined = {purposes[name][0] for name in networks_of(container)}
            if role is Role.MODEL_GATEWAY and stack == "dev":
                assert joined == {"model", "egress"}, joined  # the external model, through the egress gateway
                continue
            assert not joined & {"egress", "outside"}, f"{container.name} joins {joined}"


def test_the_dev_stack_admits_its_external_model_on_the_docker_host(declared_stacks):
    gateway = only(declared_stacks["dev"].container(Role.EGRESS_GATEWAY.value))
    conf = envs(gateway)["EGRESS_SQUID_CONF"]
    # Pulumi.dev.yaml: egress none, model at http://host.docker.internal:1234/v1.
    assert conf == render_squid_conf([], [Destination("host.docker.internal", 1234, tls=False)])
    assert gateway.inputs["hosts"] == [{"host": "host.docker.internal", "ip": "host-gateway"}]


def test_the_allowlist_gateway_resolves_no_docker_host_alias(declared_stacks):
    gateway = only(declared_stacks["ci"].container(Role.EGRESS_GATEWAY.value))
    assert not gateway.inputs.get("hosts")


@pytest.mark.usefixtures("on_developer_machine")
def test_no_allowlist_and_an_in_stack_model_means_no_route_out():
    declared = run_program("ci", set_config={"egress": "none"})
    assert not declared.container(Role.EGRESS_GATEWAY.value)
    assert {purpose for purpose, _internal in network_purposes(declared).values()} & {"egress", "outside"} == set()
    assert not set(envs(only(declared.container(Role.WORKSPACE.value)))) & set(PROXY_ENV)
