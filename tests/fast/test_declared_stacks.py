"""Every committed stack, run under mocks, declares what the security model demands."""

from __future__ import annotations

import json
import re

import pytest

from harness.program import DYNAMIC, STACKS, developer_machine
from harness.settings import stack_settings
from sandbox_model.destinations import MODEL_PORT, PROXY_PORT, WEB_ALIAS, WEB_PORT, Destination
from sandbox_model.naming import LABEL_NETWORK, REMOTE_IMAGE_TYPE, VOLUME_TYPE, component_type
from sandbox_model.roles import Role
from sandbox_model.security.adapters.pulumi_props import container_spec, network_spec, volume_host_path
from sandbox_model.security.context import CheckContext
from sandbox_model.security.profiles import all_seccomp_profiles
from sandbox_model.security.runner import check_container, check_stack
from sandbox_model.topology import INTENDED_NETWORK_PEERS, NETWORKS
from stacks.plan import Image, ModelSource, plan_for

CONTEXT = CheckContext(seccomp_profiles=all_seccomp_profiles())

W, M, X, I, E, G = (
    Role.WORKSPACE.value,
    Role.MODEL.value,
    Role.EXECUTOR.value,
    Role.INGRESS_GATEWAY.value,
    Role.EGRESS_GATEWAY.value,
    Role.MODEL_GATEWAY.value,
)
C = Role.CONDUCTOR.value


@pytest.fixture(scope="module")
def plans(developer_home):
    """Each committed stack's plan (stacks/plan.py), from its validated settings."""
    with developer_machine(developer_home):
        return {stack: plan_for(stack_settings(stack)) for stack in STACKS}


def specs(declared):
    volumes = {v.inputs["name"]: volume_host_path(v.inputs) for v in declared.of_type(VOLUME_TYPE)}
    return [
        container_spec(c.name, c.inputs, volume_paths={k: v for k, v in volumes.items() if v})
        for c in declared.containers
    ]


def test_every_stack_file_is_covered():
    assert set(STACKS) == {"ci", "dev", "gpu"}


# --- each committed stack's plan: what Pulumi.<stack>.yaml asks for ------------------------------

#: The outputs every stack has, written out on purpose: users, operate/ and CI read them by these names,
#: so a rename in the plan must fail here (an independent oracle, not a copy to keep in step).
COMMON_EXPORTS = (
    "web_url",
    "web_user",
    "web_password",
    "model_endpoint",
    "executor_endpoints",
    "executor_token",
    "model_api_key",
    "networks",
)
COMMON_IMAGES = (Image.WORKSPACE, Image.EXECUTOR, Image.INGRESS, Image.MODEL_GATEWAY)


def test_the_ci_plan(plans):
    """The test double, published on 127.0.0.1:18000; an allowlist; the conductor on."""
    plan = plans["ci"]
    assert (plan.model_source, plan.in_stack_model) == (ModelSource.TEST_DOUBLE, True)
    assert (plan.workspace_egress, plan.egress_gateway, plan.conductor) == (True, True, True)
    assert (plan.model_api_ingress, plan.model_api_host_port) == (True, 18000)
    assert plan.networks == ("model", "model-upstream", "executor", "ingress", "conductor", "edge", "egress", "outside")
    assert plan.workspace_networks == ("executor", "model", "egress")
    assert plan.model_gateway_upstream_network == "model-upstream"
    assert plan.built_images == (*COMMON_IMAGES, Image.EGRESS, Image.MODEL_DOUBLE, Image.CONDUCTOR)
    assert plan.pulled_images == () and plan.egress_destinations == ()
    assert plan.exports == (*COMMON_EXPORTS, "model_api_url", "conductor_url", "conductor_token", "containers")
    assert plan.exported_containers == (
        "workspace",
        "executors",
        "ingress_web",
        "model_gateway",
        "model",
        "egress",
        "ingress_model_api",
        "conductor",
        "ingress_conductor",
    )


def test_the_dev_plan(plans):
    """An external model on the host (LM Studio), egress none: only the model gateway goes out."""
    plan = plans["dev"]
    assert (plan.model_source, plan.in_stack_model) == (ModelSource.EXTERNAL, False)
    assert (plan.workspace_egress, plan.egress_gateway, plan.conductor, plan.model_api_ingress) == (
        False,
        True,
        False,
        False,
    )
    assert plan.networks == ("model", "executor", "ingress", "edge", "egress", "outside")
    assert plan.workspace_networks == ("executor", "model")
    assert plan.model_gateway_upstream_network == "egress"
    assert plan.built_images == (*COMMON_IMAGES, Image.EGRESS) and plan.pulled_images == ()
    assert plan.egress_destinations == (Destination("host.docker.internal", 1234, tls=False),)
    assert plan.exports == (*COMMON_EXPORTS, "containers")
    assert plan.exported_containers == ("workspace", "executors", "ingress_web", "model_gateway", "egress")


def test_the_gpu_plan(plans):
    """vLLM, pulled pinned by digest, unpublished; an allowlist."""
    plan = plans["gpu"]
    assert (plan.model_source, plan.in_stack_model) == (ModelSource.VLLM, True)
    assert (plan.workspace_egress, plan.egress_gateway, plan.conductor, plan.model_api_ingress) == (
        True,
        True,
        False,
        False,
    )
    assert plan.networks == ("model", "model-upstream", "executor", "ingress", "edge", "egress", "outside")
    assert plan.workspace_networks == ("executor", "model", "egress")
    assert plan.built_images == (*COMMON_IMAGES, Image.EGRESS)
    [(image, reference)] = plan.pulled_images
    assert image is Image.MODEL and reference.startswith("vllm/vllm-openai:") and "@sha256:" in reference
    assert plan.exports == (*COMMON_EXPORTS, "containers")
    assert plan.exported_containers == ("workspace", "executors", "ingress_web", "model_gateway", "model", "egress")


def test_the_plan_follows_the_settings(on_developer_machine):
    """The decisions that no committed stack shows: MCP servers alone open egress; no conductor, no network."""
    servers = {"tickets": {"url": "https://mcp.example.com/mcp"}}
    workspace = {
        "user": {"uid": 1000, "gid": 1000},
        "project_dir": str(on_developer_machine / "p"),
        "mcp_servers": servers,
    }
    plan = plan_for(stack_settings("dev", set_config={"workspace": workspace}))
    assert plan.workspace_egress and plan.workspace_networks == ("executor", "model", "egress")
    assert plan.egress_destinations == (
        Destination("host.docker.internal", 1234, tls=False),
        Destination("mcp.example.com", 443, tls=True),
    )
    plan = plan_for(stack_settings("ci", set_config={"conductor": {"enabled": False}}))
    assert not plan.conductor and "conductor" not in plan.networks and Image.CONDUCTOR not in plan.built_images
    assert not {"conductor_url", "conductor_token"} & set(plan.exports)


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
    purposes = {
        n.inputs["name"]: {lab["label"]: lab["value"] for lab in n.inputs["labels"]}[LABEL_NETWORK]
        for n in declared.networks
    }
    members: dict[str, set[str]] = {purpose: set() for purpose in purposes.values()}
    for spec in specs(declared):
        for network in spec.networks:
            members[purposes[network]].add(spec.role)
    return members


@pytest.mark.parametrize("stack", STACKS)
def test_the_declared_networks_are_the_plans(declared_stacks, plans, stack):
    """Which networks exist and who joins which is the plan's (who may, the rules judge: test_stack_rules_hold)."""
    plan = plans[stack]
    members = network_members(declared_stacks[stack])
    assert set(members) == set(plan.networks)
    joined = {role: {purpose for purpose, roles in members.items() if role in roles} for role in (W, G)}
    assert joined[W] == {"ingress", *plan.workspace_networks}
    assert joined[G] == {"model", plan.model_gateway_upstream_network}
    assert (M in members.get("model-upstream", set())) == plan.in_stack_model
    assert (I in members.get("model-upstream", set())) == plan.model_api_ingress
    assert (E in members.get("egress", set())) == plan.egress_gateway
    assert (C in members.get("ingress", set())) == plan.conductor


def test_the_design_never_lets_the_workspace_meet_the_model_server():
    """An independent oracle on sandbox_model.topology.NETWORKS: its three invariants, stated apart from it."""
    assert frozenset({W, M}) not in INTENDED_NETWORK_PEERS
    assert frozenset({X, M}) not in INTENDED_NETWORK_PEERS and frozenset({X, G}) not in INTENDED_NETWORK_PEERS
    assert all(net.internal for purpose, net in NETWORKS.items() if G in net.roles or M in net.roles)


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


@pytest.mark.parametrize("stack", STACKS)
def test_the_images_are_the_plans(declared_stacks, plans, stack):
    images = declared_stacks[stack].of_type(REMOTE_IMAGE_TYPE)
    built = [i.inputs["name"].split(":")[0] for i in images if "build" in i.inputs]
    pulled = [i.inputs["name"] for i in images if "build" not in i.inputs]
    assert sorted(built) == sorted(f"opencode-sandbox/{image.value}" for image in plans[stack].built_images)
    assert pulled == [reference for _, reference in plans[stack].pulled_images]


def test_ci_builds_its_model_double_and_gpu_pulls_a_pinned_vllm(declared_stacks):
    ci_images = {i.inputs["name"].split(":")[0] for i in declared_stacks["ci"].of_type(REMOTE_IMAGE_TYPE)}
    assert "opencode-sandbox/model-double" in ci_images
    gpu_pulled = [
        i.inputs["name"] for i in declared_stacks["gpu"].of_type(REMOTE_IMAGE_TYPE) if "build" not in i.inputs
    ]
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
        secret_names = (
            "EXECUTOR_TOKEN=",
            "EXECUTOR_TOKEN_SHA256=",
            "VLLM_API_KEY=",
            "MODEL_GATEWAY_API_KEY=",
            "OPENCODE_SERVER_PASSWORD=",
            "MODEL_DOUBLE_API_KEY=",
            "CONDUCTOR_OPENCODE_PASSWORD=",
            "CONDUCTOR_TOKEN_SHA256=",
        )
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
    purposes = {
        n.inputs["name"]: {lab["label"]: lab["value"] for lab in n.inputs["labels"]}[LABEL_NETWORK]
        for n in declared_stacks[stack].networks
    }
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

    workspace = {
        "user": {"uid": 1000, "gid": 1000},
        "project_dir": str(developer_home / "p"),
        "web": {"host_ip": "127.0.0.2", "port": 4999},
    }
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
    holders = {
        c.inputs["name"]: [name for name, value in envs_of(c).items() if key in value] for c in declared.containers
    }
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
        assert env["MODEL_GATEWAY_UPSTREAM"] == f"http://{model.inputs['name']}:{MODEL_PORT}/v1"
        assert "MODEL_GATEWAY_PROXY" not in env
    assert not gateway.inputs.get("ports"), "the model gateway publishes nothing"


# --- the conductor (ci enables it) ----------------------------------------------------------------


def test_the_conductor_listens_on_its_own_network_and_holds_only_the_tokens_digest(declared_stacks):
    import hashlib

    from sandbox_model.destinations import CONDUCTOR_ALIAS
    from sandbox_model.destinations import CONDUCTOR_PROJECT_MOUNT as PROJECT_MOUNT

    declared = declared_stacks["ci"]
    conductor = declared.container(C)[0]
    env = envs_of(conductor)
    purposes = {
        n.inputs["name"]: {lab["label"]: lab["value"] for lab in n.inputs["labels"]}[LABEL_NETWORK]
        for n in declared.networks
    }
    aliases = {purposes[n["name"]]: n.get("aliases") or [] for n in conductor.inputs["networksAdvanced"]}
    assert aliases == {"conductor": [CONDUCTOR_ALIAS], "ingress": []}
    assert env["CONDUCTOR_HOST"] == CONDUCTOR_ALIAS  # not reachable from ingress, where the workspace is
    assert env["CONDUCTOR_OPENCODE_URL"] == f"http://{WEB_ALIAS}:{WEB_PORT}"
    assert env["CONDUCTOR_OPENCODE_PASSWORD"] == envs_of(declared.container(W)[0])["OPENCODE_SERVER_PASSWORD"]
    assert "envs" in conductor.secret_inputs
    assert not any("TOKEN=" in item for item in conductor.inputs["envs"])
    assert re.fullmatch(r"[0-9a-f]{64}", env["CONDUCTOR_TOKEN_SHA256"])
    generated = next(r for r in declared.of_type(DYNAMIC) if r.name.endswith("-conductor-token"))
    assert env["CONDUCTOR_TOKEN_SHA256"] == hashlib.sha256(generated.outputs["result"].encode()).hexdigest()
    assert [(m["target"], m.get("readOnly")) for m in conductor.inputs["mounts"]] == [(PROJECT_MOUNT, True)]


def test_the_conductor_is_published_on_loopback_through_its_ingress_gateway(declared_stacks):
    from sandbox_model.destinations import CONDUCTOR_ALIAS, CONDUCTOR_PORT

    declared = declared_stacks["ci"]
    gateway = next(c for c in declared.containers if c.inputs["name"].endswith("-ingress-conductor"))
    assert gateway.inputs["ports"] == [{"internal": 8080, "external": 14097, "ip": "127.0.0.1", "protocol": "tcp"}]
    assert {f"INGRESS_TARGET_HOST={CONDUCTOR_ALIAS}", f"INGRESS_TARGET_PORT={CONDUCTOR_PORT}"} <= set(
        gateway.inputs["envs"]
    )
    for stack in ("dev", "gpu"):  # off by default
        assert declared_stacks[stack].container(C) == []
