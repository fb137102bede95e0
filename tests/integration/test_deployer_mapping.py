"""The test deployer's translation of pulumi-docker inputs into Engine API requests (no engine needed).

What the provider (terraform-provider-docker) does with each input is restated here on small
declarations; the live check that the engine ends up with exactly the declared values is
test_catalog_on_live_stack.py.
"""

from __future__ import annotations

import pytest

from components.security import catalog
from tests.support import deployer
from tests.support.program import CONTAINER, NETWORK, REMOTE_IMAGE, REPO_ROOT, DeclaredResource, DeclaredStack

MIB = 1024 * 1024


def _container(**inputs) -> DeclaredResource:
    base = {"name": "c", "image": "img:1"}
    return DeclaredResource(type=CONTAINER, name="c", urn="urn:c", parent="", custom=True,
                            inputs={**base, **inputs}, outputs={})


def test_every_input_of_every_committed_stack_is_mapped(declared_stacks):
    for declared in declared_stacks.values():
        deployer.validate(declared)


def test_an_unmapped_input_is_an_error_naming_it():
    with pytest.raises(deployer.UnmappedInput, match=r"container c: input\(s\) macAddress are not mapped"):
        deployer.plan_container(_container(macAddress="02:42:ac:11:00:02"))
    with pytest.raises(deployer.UnmappedInput, match=r"container c\.healthcheck: input\(s\) startPeriods"):
        deployer.plan_container(_container(healthcheck={"tests": ["CMD", "true"], "startPeriods": "1s"}))
    with pytest.raises(deployer.UnmappedInput, match=r"mounts\[0\]\.volumeOptions: input\(s\) subpath"):
        deployer.plan_container(_container(mounts=[{"type": "volume", "source": "v", "target": "/v",
                                                     "volumeOptions": {"subpath": "x"}}]))


def test_healthcheck_durations_are_go_durations_in_nanoseconds():
    plan = deployer.plan_container(_container(healthcheck={
        "tests": ["CMD", "true"], "interval": "5s", "timeout": "1500ms", "startPeriod": "1m",
        "startInterval": "1s", "retries": 3.0}))
    check = plan.create["healthcheck"]
    assert (check["Interval"], check["Timeout"], check["StartPeriod"], check["StartInterval"]) == (
        5 * 10**9, 15 * 10**8, 60 * 10**9, 10**9)
    assert check["Retries"] == 3


def test_sizes_are_megabytes_and_cpus_are_nano_cpus():
    plan = deployer.plan_container(_container(memory=512.0, memorySwap=512.0, shmSize=64.0, cpus="0.5",
                                              cpuQuota=10000.0, cpuPeriod=100000.0))
    host = plan.host_config
    assert (host["mem_limit"], host["memswap_limit"], host["shm_size"]) == (512 * MIB, 512 * MIB, 64 * MIB)
    assert host["nano_cpus"] == 500_000_000
    assert "cpu_quota" not in host and "cpu_period" not in host  # cpus has precedence
    assert deployer.plan_container(_container(memorySwap=-1.0)).host_config["memswap_limit"] == -1
    with pytest.raises(deployer.DeployError, match="too precise"):
        deployer.plan_container(_container(cpus="0.0000000001"))


@pytest.mark.parametrize("text, nanoseconds", [("15s", 15 * 10**9), ("1m30s", 90 * 10**9), ("500ms", 5 * 10**8),
                                                ("15m", 900 * 10**9), ("1.5h", 5400 * 10**9), ("0s", 0)])
def test_healthcheck_times_are_go_durations(text, nanoseconds):
    assert deployer.go_duration_ns(text, "t") == nanoseconds


def test_a_duration_without_unit_is_an_error():
    with pytest.raises(deployer.DeployError, match="not a Go duration"):
        deployer.go_duration_ns("15", "healthcheck.interval")


def test_ports_take_the_schema_defaults():
    plan = deployer.plan_container(_container(ports=[{"internal": 8080.0, "external": 14096.0},
                                                     {"internal": 53.0, "ip": "127.0.0.1", "protocol": "udp"}]))
    assert plan.create["ports"] == [(8080, "tcp"), (53, "udp")]
    assert plan.host_config["port_bindings"] == {"8080/tcp": [("0.0.0.0", 14096)], "53/udp": [("127.0.0.1", "")]}


def test_the_rest_of_what_the_hardening_helper_declares():
    plan = deployer.plan_container(_container(
        user="20000:20000", readOnly=True, privileged=False, init=False, restart="on-failure", maxRetryCount=5.0,
        capabilities={"drops": ["ALL"]}, securityOpts=["no-new-privileges:true", "seccomp={}"],
        ulimits=[{"name": "nproc", "soft": 256.0, "hard": 256.0}], tmpfs={"/tmp": "rw,size=64m"},
        mounts=[{"type": "bind", "source": "/p", "target": "/workspace", "readOnly": True}],
        hosts=[{"host": "host.docker.internal", "ip": "host-gateway"}], logDriver="json-file",
        logOpts={"max-size": "10m"}, envs=["A=1"], labels=[{"label": "k", "value": "v"}], workingDir="/w",
        command=["serve"], entrypoints=["socat"], networkMode="bridge", wait=True, waitTimeout=120.0,
        healthcheck={"tests": ["CMD", "true"], "interval": "10s", "timeout": "5s", "startPeriod": "10s",
                     "retries": 3.0},
        networksAdvanced=[{"name": "n1", "aliases": ["executor"]}, {"name": "n2"}],
        deviceRequests=[{"driver": "nvidia", "count": -1.0, "capabilities": ["gpu"]}]))
    host, create = plan.host_config, plan.create
    assert host["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": 5}
    assert (host["cap_drop"], host["cap_add"], host["read_only"], host["init"]) == (["ALL"], [], True, False)
    assert host["security_opt"] == ["no-new-privileges:true", "seccomp={}"]
    assert [dict(u) for u in host["ulimits"]] == [{"Name": "nproc", "Soft": 256, "Hard": 256}]
    assert host["tmpfs"] == {"/tmp": "rw,size=64m"}
    assert dict(host["mounts"][0]) == {"Target": "/workspace", "Source": "/p", "Type": "bind", "ReadOnly": True}
    assert host["extra_hosts"] == ["host.docker.internal:host-gateway"]
    assert dict(host["log_config"]) == {"Type": "json-file", "Config": {"max-size": "10m"}}
    assert dict(host["device_requests"][0]) == {"Driver": "nvidia", "Count": -1, "DeviceIDs": [],
                                                "Capabilities": [["gpu"]], "Options": {}}
    assert (host["network_mode"], plan.networks) == ("bridge", (
        deployer.NetworkAttachment("n1", ("executor",)), deployer.NetworkAttachment("n2")))
    assert (create["user"], create["working_dir"], create["command"], create["entrypoint"]) == (
        "20000:20000", "/w", ["serve"], ["socat"])
    assert (create["environment"], create["labels"]) == (["A=1"], {"k": "v"})
    assert dict(create["healthcheck"]) == {"Test": ["CMD", "true"], "Interval": 10 * 10**9, "Timeout": 5 * 10**9,
                                           "StartPeriod": 10 * 10**9, "Retries": 3}
    assert (plan.wait, plan.wait_timeout_s, plan.start, plan.must_run) == (True, 120, True, True)
    assert create["use_config_proxy"] is False  # the engine user's proxy settings must not leak into the env


def test_an_override_replaces_a_declared_input():
    resource = _container(readOnly=True)
    assert deployer.plan_container(resource, {"readOnly": False}).host_config["read_only"] is False
    assert resource.inputs["readOnly"] is True


def test_networks_and_images():
    network = deployer.plan_network(DeclaredResource(
        type=NETWORK, name="n", urn="urn:n", parent="", custom=True, outputs={},
        inputs={"name": "net", "driver": "bridge", "internal": True, "options": {"o": "1"},
                "labels": [{"label": "opencode-sandbox.stack", "value": "ci"}]}))
    assert {k: network[k] for k in ("name", "driver", "internal", "options", "labels")} == {
        "name": "net", "driver": "bridge", "internal": True, "options": {"o": "1"},
        "labels": {"opencode-sandbox.stack": "ci"}}
    built = deployer.plan_image(DeclaredResource(
        type=REMOTE_IMAGE, name="i", urn="urn:i", parent="", custom=True, outputs={},
        inputs={"name": "opencode-sandbox/x:ci-1", "keepLocally": False, "triggers": {"d": "1"},
                "build": {"context": "images/executor", "dockerfile": "Dockerfile", "buildArgs": {"A": "b"},
                          "labels": {"l": "v"}}}))
    assert (built.tag, built.build["path"], built.build["buildargs"], built.build["labels"]) == (
        "opencode-sandbox/x:ci-1", str(REPO_ROOT / "images" / "executor"), {"A": "b"}, {"l": "v"})
    pulled = deployer.plan_image(DeclaredResource(type=REMOTE_IMAGE, name="p", urn="urn:p", parent="", custom=True,
                                                  outputs={}, inputs={"name": "vllm/vllm-openai:v1", "keepLocally": True}))
    assert pulled.build is None


def test_dependencies_on_components_and_of_ancestors_are_waited_for():
    def resource(urn, parent="", custom=True, deps=()):
        return DeclaredResource(type=CONTAINER if custom else "c:C", name=urn, urn=urn, parent=parent,
                                custom=custom, inputs={}, outputs={}, dependencies=tuple(deps))

    stack = DeclaredStack(stack="s", resources=[
        resource("pool", custom=False), resource("e0", parent="pool"), resource("e1", parent="pool"),
        resource("workspace", custom=False, deps=["pool"]), resource("ws", parent="workspace", deps=["net"]),
        resource("net"),
    ])
    graph = deployer._dependency_graph(stack)
    assert graph["ws"] == {"e0", "e1", "net"}
    assert graph["e0"] == set() and graph["net"] == set()


def test_the_catalog_constants_reach_the_engine_request(declared_stacks):
    """On the ci stack as declared: what the catalog demands is what the deployer asks the engine for."""
    for resource in declared_stacks["ci"].containers:
        plan = deployer.plan_container(resource)
        assert dict(plan.host_config["log_config"]) == {"Type": catalog.LOG_DRIVER, "Config": dict(catalog.LOG_OPTS)}
        assert plan.host_config["restart_policy"] == {"Name": catalog.RESTART_POLICY,
                                                      "MaximumRetryCount": catalog.RESTART_MAX_RETRIES}
        assert catalog.NO_NEW_PRIVILEGES in plan.host_config["security_opt"]
        assert plan.host_config["network_mode"] == "bridge" and plan.networks
