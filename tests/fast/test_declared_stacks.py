"""Every committed stack, run under mocks, declares what the security model demands."""

from __future__ import annotations

import json
import re
from itertools import combinations

import pytest

from components.egress_proxy import PROXY_PORT
from sandbox_model.naming import component_type
from sandbox_model.topology import INTENDED_NETWORK_PEERS, NETWORKS
from sandbox_model.security.catalog import CheckContext, check_container, check_stack
from sandbox_model.roles import Role
from sandbox_model.security.profiles import all_seccomp_profiles
from sandbox_model.security.props import container_spec, network_spec, volume_host_path
from harness.program import DYNAMIC, STACKS, VOLUME

CONTEXT = CheckContext(seccomp_profiles=all_seccomp_profiles())

W, M, X, I, E, G = (Role.WORKSPACE.value, Role.MODEL.value, Role.EXECUTOR.value,
                    Role.INGRESS_GATEWAY.value, Role.EGRESS_GATEWAY.value, Role.MODEL_GATEWAY.value)
C = Role.CONDUCTOR.value

#: Each stack's networks (purpose -> the roles on it): the reachability the design intends, and
#: nothing more. The workspace reaches the model through the model gateway only: never on a network
#: with the model server.
EXPECTED_NETWORKS = {
    # The test double's API is published (host_port): its ingress gateway is on model-upstream. The
    # conductor is on: it reaches the workspace's API on ingress, its gateway reaches it on conductor.
    "ci": {"model": {W, G}, "model-upstream": {G, M, I}, "executor": {W, X}, "ingress": {W, I, C}, "edge": {I},
           "egress": {W, E}, "outside": {E}, "conductor": {I, C}},
    # External model, egress none: only the model gateway goes out, through the egress gateway.
    "dev": {"model": {W, G}, "executor": {W, X}, "ingress": {W, I}, "edge": {I}, "egress": {G, E},
            "outside": {E}},
    "gpu": {"model": {W, G}, "model-upstream": {G, M}, "executor": {W, X}, "ingress": {W, I}, "edge": {I},
            "egress": {W, E}, "outside": {E}},
}


def specs(declared):
    volumes = {v.inputs["name"]: volume_host_path(v.inputs) for v in declared.of_type(VOLUME)}
    return [container_spec(c.name, c.inputs, volume_paths={k: v for k, v in volumes.items() if v})
            for c in declared.containers]


def test_every_stack_file_is_covered():
    assert set(STACKS) == {"ci", "dev", "gpu"}


@pytest.mark.parametrize("stack", STACKS)
def test_every_container_satisfies_every_catalog_rule(declared_stacks, stack):
    violations = [v.message for spec in specs(declared_stacks[stack]) for v in check_container(spec, CONTEXT)]
    assert violations == []


@pytest.mark.parametrize("stack", STACKS)
def test_stack_rules_hold(declared_stacks, stack):
    declared = declared_stacks[stack]
    networks = {n.inputs["name"]: network_spec(n.name, n.inputs) for n in declared.networks}
    assert [v.message for v in check_stack(specs(declared), networks, CONTEXT)] == []


def network_members(declared) -> dict[str, set[str]]:
    """purpose (the network's label) -> the roles of the containers on it."""
    purposes = {n.inputs["name"]: {l["label"]: l["value"] for l in n.inputs["labels"]}["opencode-sandbox.network"]
                for n in declared.networks}
    members: dict[str, set[str]] = {purpose: set() for purpose in purposes.values()}
    for spec in specs(declared):
        for network in spec.networks:
            members[purposes[network]].add(spec.role)
    return members


@pytest.mark.parametrize("stack", STACKS)
def test_network_graph_is_the_intended_reachability_matrix(declared_stacks, stack):
    members = network_members(declared_stacks[stack])
    assert members == EXPECTED_NETWORKS[stack]
    for purpose, roles in members.items():
        assert roles <= NETWORKS[purpose].roles, f"{purpose}: {roles - NETWORKS[purpose].roles} not in the design"
    shared = {frozenset(pair) for roles in members.values() for pair in combinations(sorted(roles), 2)}
    assert shared <= INTENDED_NETWORK_PEERS and frozenset({W, M}) not in shared


def test_the_design_never_lets_the_workspace_meet_the_model_server():
    assert frozenset({W, M}) not in INTENDED_NETWORK_PEERS
    assert frozenset({X, M}) not in INTENDED_NETWORK_PEERS and frozenset({X, G}) not in INTENDED_NETWORK_PEERS
    assert all(net.internal for purpose, net in NETWORKS.items() if G in net.roles or M in net.roles)


@pytest.mark.parametrize("stack", STACKS)
def test_only_gateways_join_networks_with_a_route_out(declared_stacks, stack):
    declared = declared_stacks[stack]
    internal = {n.inputs["name"]: n.inputs.get("internal", False) for n in declared.networks}
    for spec in specs(declared):
        for network in spec.networks:
            if not internal[network]:
                assert spec.role in {I, E}, f"{spec.name} ({spec.role}) joins non-internal {network}"


@pytest.mark.parametrize("stack", STACKS)
def test_executors_reach_only_the_workspace(declared_stacks, stack):
    declared = declared_stacks[stack]
    executor_networks = {n for spec in specs(declared) if spec.role == X for n in spec.networks}
    for spec in specs(declared):
        if spec.role not in {X, W}:
            assert not executor_networks & set(spec.networks), f"{spec.name} shares a network with executors"


@pytest.mark.parametrize("stack", STACKS)
def test_containers_handle_the_providers_replacement_pitfalls(declared_stacks, stack):
    for container in declared_stacks[stack].containers:
        # Fixed names and host ports: the old container must go before the new one is created.
        assert container.delete_before_replace, container.name
        # pulumi-docker "updates" tmpfs and healthcheck in place without effect: replace instead.
        assert {"tmpfs", "healthcheck"} <= set(container.replace_on_changes), container.name
        # An explicit network mode; networks_advanced makes the provider leave the default bridge.
        assert container.inputs["networkMode"] == "bridge" and container.inputs["networksAdvanced"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_is_parented_to_a_component(declared_stacks, stack):
    declared = declared_stacks[stack]
    components = {r.urn for r in declared.resources if not r.custom}
    for resource in declared.resources:
        if resource.type == component_type("Sandbox"):
            continue
        assert resource.parent in components, f"{resource.urn} is not a child of a component"
        if not resource.custom:
            assert resource.type.startswith(component_type("")), resource.type


@pytest.mark.parametrize("stack", STACKS)
def test_labels_find_every_container_by_stack_and_role(declared_stacks, stack):
    roles = [spec.role for spec in specs(declared_stacks[stack])]
    assert all(spec.stack == stack for spec in specs(declared_stacks[stack]))
    assert roles.count(W) == 1 and roles.count(I) >= 1 and roles.count(X) >= 1


def test_ci_builds_its_model_double_and_gpu_pulls_a_pinned_vllm(declared_stacks):
    ci_images = {i.inputs["name"].split(":")[0] for i in declared_stacks["ci"].of_type("docker:index/remoteImage:RemoteImage")}
    assert "opencode-sandbox/model-double" in ci_images
    gpu_pulled = [i.inputs["name"] for i in declared_stacks["gpu"].of_type("docker:index/remoteImage:RemoteImage")
                  if "build" not in i.inputs]
    assert len(gpu_pulled) == 1 and gpu_pulled[0].startswith("vllm/vllm-openai:") and "@sha256:" in gpu_pulled[0]


def test_only_the_model_server_gets_the_gpu(declared_stacks):
    gpu_containers = [c for c in declared_stacks["gpu"].containers if c.inputs.get("deviceRequests")]
    assert [c.inputs["name"] for c in gpu_containers] == ["opencode-sandbox-gpu-model"]
    request = gpu_containers[0].inputs["deviceRequests"][0]
    assert request["driver"] == "nvidia" and request["capabilities"] == ["gpu"]
    model = gpu_containers[0].inputs
    assert model["shmSize"] > 0 and not model.get("ipcMode"), "shared memory comes from shm_size, not host IPC"
    assert any(e.startswith("VLLM_API_KEY=") for e in model["envs"])
    assert {"--served-model-name", "--max-model-len", "--gpu-memory-utilization"} <= set(model["command"])
    assert not model.get("ports"), "the model server publishes no host port"


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_reach_containers_only_as_pulumi_secrets(declared_stacks, stack):
    for container in declared_stacks[stack].containers:
        secret_names = ("EXECUTOR_TOKEN=", "EXECUTOR_TOKEN_SHA256=", "VLLM_API_KEY=", "MODEL_GATEWAY_API_KEY=",
                        "OPENCODE_SERVER_PASSWORD=", "MODEL_DOUBLE_API_KEY=", "CONDUCTOR_OPENCODE_PASSWORD=",
                        "CONDUCTOR_TOKEN_SHA256=")
        if any(env.startswith(secret_names) for env in container.inputs.get("envs", [])):
            assert "envs" in container.secret_inputs, f"{container.inputs['name']} gets a secret in plain text"


@pytest.mark.parametrize("stack", STACKS)
def test_executors_get_only_the_tokens_digest_and_the_workspace_the_token(declared_stacks, stack):
    """Every `docker exec` into an executor (its healthcheck) inherits its environment: no token there."""
    import hashlib

    def env(container) -> dict[str, str]:
        return dict(item.split("=", 1) for item in container.inputs["envs"])

    token = env(declared_stacks[stack].container("workspace")[0])["EXECUTOR_TOKEN"]
    executors = declared_stacks[stack].container("executor")
    assert executors
    for executor in executors:
        assert "EXECUTOR_TOKEN" not in env(executor)
        assert not any(token in value for value in env(executor).values())
        assert env(executor)["EXECUTOR_TOKEN_SHA256"] == hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.parametrize("stack", STACKS)
def test_the_web_ui_listens_on_the_ingress_network_only(declared_stacks, stack):
    workspace = declared_stacks[stack].container("workspace")[0]
    command = workspace.inputs["command"]
    host = command[command.index("--hostname") + 1]
    purposes = {n.inputs["name"]: {l["label"]: l["value"] for l in n.inputs["labels"]}["opencode-sandbox.network"]
                for n in declared_stacks[stack].networks}
    aliases = {purposes[n["name"]]: n.get("aliases") or [] for n in workspace.inputs["networksAdvanced"]}
    assert [name for name, names in aliases.items() if host in names] == ["ingress"], aliases
    web = next(c for c in declared_stacks[stack].containers if c.inputs["name"].endswith("-ingress-web"))
    assert f"INGRESS_TARGET_HOST={host}" in web.inputs["envs"]


@pytest.mark.parametrize("stack", STACKS)
def test_executors_and_gateways_never_share_a_uid(declared_stacks, stack):
    owners: dict[str, list[str]] = {}
    for spec in specs(declared_stacks[stack]):
        owners.setdefault(spec.user.split(":")[0], []).append(spec.name)
    for spec in specs(declared_stacks[stack]):
        if spec.role in {X, I, E, G, C}:
            assert owners[spec.user.split(":")[0]] == [spec.name], f"{spec.name} shares its UID"


def test_the_web_ui_is_published_where_the_settings_say(developer_home):
    from harness.program import developer_machine, run_program

    workspace = {"user": {"uid": 1000, "gid": 1000}, "project_dir": str(developer_home / "p"),
                 "web": {"host_ip": "127.0.0.2", "port": 4999}}
    with developer_machine(developer_home):
        declared = run_program("ci", set_config={"workspace": workspace})
    web = next(c for c in declared.containers if c.inputs["name"].endswith("-ingress-web"))
    assert web.inputs["ports"] == [{"internal": 8080, "external": 4999, "ip": "127.0.0.2", "protocol": "tcp"}]


# --- the model API key lives in the model gateway (and the in-stack model server) only ----------


def envs_of(container) -> dict[str, str]:
    return dict(item.split("=", 1) for item in container.inputs.get("envs", []))


@pytest.mark.parametrize("stack", STACKS)
def test_the_model_key_reaches_the_model_gateway_and_the_model_server_only(developer_home, stack):
    from components.model_gateway import API_KEY_ENV
    from components.opencode_config import MODEL_API_KEY_PLACEHOLDER
    from harness.program import developer_machine, run_program

    key = "model-key-" + "k" * 30  # for dev: an external endpoint that wants a key
    with developer_machine(developer_home):
        declared = run_program(stack, secrets={"model_api_key": key})
    holders = {c.inputs["name"]: [name for name, value in envs_of(c).items() if key in value]
               for c in declared.containers}
    holders = {name: variables for name, variables in holders.items() if variables}
    gateway = declared.container(G)
    assert len(gateway) == 1
    expected = {gateway[0].inputs["name"]: [API_KEY_ENV]}
    if stack != "dev":  # the in-stack model server checks the key
        model = declared.container(M)[0]
        expected[model.inputs["name"]] = ["MODEL_DOUBLE_API_KEY" if stack == "ci" else "VLLM_API_KEY"]
    assert holders == expected
    workspace = envs_of(declared.container(W)[0])
    assert not {name for name in workspace if "MODEL" in name and "KEY" in name}, workspace.keys()
    provider = json.loads(workspace["OPENCODE_CONFIG_CONTENT"])["provider"]["sandbox"]["options"]
    assert provider["apiKey"] == MODEL_API_KEY_PLACEHOLDER and "{env:" not in provider["apiKey"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_model_gateway_forwards_to_the_one_upstream_and_the_workspace_points_at_it(declared_stacks, stack):
    declared = declared_stacks[stack]
    gateway = declared.container(G)[0]
    env = envs_of(gateway)
    workspace = envs_of(declared.container(W)[0])
    base_url = json.loads(workspace["OPENCODE_CONFIG_CONTENT"])["provider"]["sandbox"]["options"]["baseURL"]
    assert base_url == f"http://{gateway.inputs['name']}:{env['MODEL_GATEWAY_PORT']}/v1"
    assert gateway.inputs["name"] in workspace.get("NO_PROXY", gateway.inputs["name"]).split(",")
    if stack == "dev":
        egress = declared.container(E)[0]
        assert env["MODEL_GATEWAY_UPSTREAM"] == "http://host.docker.internal:1234/v1"  # Pulumi.dev.yaml
        assert env["MODEL_GATEWAY_PROXY"] == f"http://{egress.inputs['name']}:{PROXY_PORT}"
        assert "HTTP_PROXY" not in workspace, "egress: none, and the model is the gateway's business"
    else:
        model = declared.container(M)[0]
        assert env["MODEL_GATEWAY_UPSTREAM"] == f"http://{model.inputs['name']}:8000/v1"
        assert "MODEL_GATEWAY_PROXY" not in env
    assert not gateway.inputs.get("ports"), "the model gateway publishes nothing"


# --- the conductor (ci enables it) ----------------------------------------------------------------


def test_the_conductor_listens_on_its_own_network_and_holds_only_the_tokens_digest(declared_stacks):
    import hashlib

    from components.conductor import CONDUCTOR_ALIAS, PROJECT_MOUNT

    declared = declared_stacks["ci"]
    conductor = declared.container(C)[0]
    env = envs_of(conductor)
    purposes = {n.inputs["name"]: {l["label"]: l["value"] for l in n.inputs["labels"]}["opencode-sandbox.network"]
                for n in declared.networks}
    aliases = {purposes[n["name"]]: n.get("aliases") or [] for n in conductor.inputs["networksAdvanced"]}
    assert aliases == {"conductor": [CONDUCTOR_ALIAS], "ingress": []}
    assert env["CONDUCTOR_HOST"] == CONDUCTOR_ALIAS  # not reachable from ingress, where the workspace is
    assert env["CONDUCTOR_OPENCODE_URL"] == "http://workspace-web:4096"
    assert env["CONDUCTOR_OPENCODE_PASSWORD"] == envs_of(declared.container(W)[0])["OPENCODE_SERVER_PASSWORD"]
    assert "envs" in conductor.secret_inputs
    assert not any("TOKEN=" in item for item in conductor.inputs["envs"])
    assert re.fullmatch(r"[0-9a-f]{64}", env["CONDUCTOR_TOKEN_SHA256"])
    generated = next(r for r in declared.of_type(DYNAMIC) if r.name.endswith("-conductor-token"))
    assert env["CONDUCTOR_TOKEN_SHA256"] == hashlib.sha256(generated.outputs["result"].encode()).hexdigest()
    assert [(m["target"], m.get("readOnly")) for m in conductor.inputs["mounts"]] == [(PROJECT_MOUNT, True)]


def test_the_conductor_is_published_on_loopback_through_its_ingress_gateway(declared_stacks):
    from components.conductor import CONDUCTOR_ALIAS, CONDUCTOR_PORT

    declared = declared_stacks["ci"]
    gateway = next(c for c in declared.containers if c.inputs["name"].endswith("-ingress-conductor"))
    assert gateway.inputs["ports"] == [{"internal": 8080, "external": 14097, "ip": "127.0.0.1", "protocol": "tcp"}]
    assert {f"INGRESS_TARGET_HOST={CONDUCTOR_ALIAS}", f"INGRESS_TARGET_PORT={CONDUCTOR_PORT}"} <= set(gateway.inputs["envs"])
    for stack in ("dev", "gpu"):  # off by default
        assert declared_stacks[stack].container(C) == []
