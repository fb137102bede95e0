"""Every policy catches an insecure variant of a real declared resource, and only a role exemption lifts it.

Each variant takes one resource a committed stack declares and makes one thing
insecure. Through the analyzer service (Analyze of the changed resource, then
AnalyzeStack of the whole stack) it must yield mandatory violations of exactly
its policy, each naming the resource, the fix and the CIS id. Exempting the
resource's role from that policy in the pack's config removes exactly that
violation: another policy still reports what it reports, and an exemption from
other policies changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from harness.declared import Change, ChangedStack, named, role_of, with_role
from harness.program import DeclaredResource, DeclaredStack
from policies.sandbox_policies import EXEMPT_ROLES, pack_rules
from sandbox_model.naming import CONTAINER_TYPE, LABEL_ROLE, LABEL_STACK, NETWORK_TYPE, REMOTE_IMAGE_TYPE, VOLUME_TYPE
from sandbox_model.paths import REPO_ROOT
from sandbox_model.roles import ALL_ROLES, Role
from sandbox_model.security.profiles import seccomp_profile
from sandbox_model.security.table import RULES_BY_ID

POLICIES_DIR = REPO_ROOT / "policies"

W, M, X = Role.WORKSPACE.value, Role.MODEL.value, Role.EXECUTOR.value
I, E, G = Role.INGRESS_GATEWAY.value, Role.EGRESS_GATEWAY.value, Role.MODEL_GATEWAY.value
C = Role.CONDUCTOR.value


# --- changes ---------------------------------------------------------------------------------


def put(key, value) -> Change:
    return lambda props: props.__setitem__(key, value)


def drop(key) -> Change:
    return lambda props: props.pop(key, None)


def append(key, item) -> Change:
    return lambda props: props.setdefault(key, []).append(item)


def security_opts(edit: Callable[[list[str]], list[str]]) -> Change:
    return lambda props: props.__setitem__("securityOpts", edit(list(props["securityOpts"])))


def without_seccomp(opts: list[str]) -> list[str]:
    return [opt for opt in opts if not opt.startswith("seccomp")]


def bind(source: str, target: str = "/mnt/host") -> Change:
    return append("mounts", {"type": "bind", "source": source, "target": target})


def edit_labels(edit: Callable[[dict], dict]) -> Change:
    def change(props):
        labels = edit({item["label"]: item["value"] for item in props["labels"]})
        props["labels"] = [{"label": k, "value": v} for k, v in labels.items()]

    return change


def project_mount_propagation(value: str) -> Change:
    def change(props):
        props["mounts"][0]["bindOptions"] = {"propagation": value}

    return change


def ulimits_without_nproc(props):
    props["ulimits"] = [u for u in props["ulimits"] if u["name"] != "nproc"]


def driver_device(path: str) -> Change:
    return lambda props: props["driverOpts"].__setitem__("device", path)


# --- variants --------------------------------------------------------------------------------

Select = Callable[[DeclaredStack], DeclaredResource]


def role(name: str, index: int = 0) -> Select:
    return lambda declared: with_role(declared, name, index)


def resource(type_: str, name: str) -> Select:
    return lambda declared: named(declared, type_, name)


def network_of(purpose: str) -> Callable[[DeclaredStack], str]:
    return lambda declared: named(declared, NETWORK_TYPE, f"sandbox-networks-{purpose}").inputs["name"]


@dataclass(frozen=True)
class Variant:
    id: str
    rule: str
    stack: str
    target: Select
    #: The change, or a function of the stack that makes it (when it names another resource).
    change: Change | Callable[[DeclaredStack], Change]
    #: The roles whose exemption (together) lifts the violation; None: the target's role. (): none can.
    exempt: tuple[str, ...] | None = None
    #: Every role the violation is about (a shared network names two): exempting any other lifts nothing.
    involved: tuple[str, ...] = ()
    #: What the message names, when it is not the target's own name (a shared network).
    subject: Callable[[DeclaredStack], str] | None = None
    needs_stack: bool = False
    #: Policies this variant breaks as well, unavoidably (a container without a valid role shares
    #: networks with roles the design does not pair it with).
    also: tuple[str, ...] = ()

    def build(self, declared: DeclaredStack, *extra: Change) -> ChangedStack:
        change = self.change(declared) if self.needs_stack else self.change
        return ChangedStack(declared).change(self.target(declared), change, *extra)

    def roles(self, declared: DeclaredStack) -> tuple[str, ...]:
        return (role_of(self.target(declared)),) if self.exempt is None else self.exempt

    def involved_roles(self, declared: DeclaredStack) -> set[str]:
        return {*self.roles(declared), *self.involved}

    def subject_name(self, declared: DeclaredStack) -> str:
        if self.subject is not None:
            return self.subject(declared)
        target = self.target(declared)
        return target.inputs["name"] if target.type != REMOTE_IMAGE_TYPE else target.name


def joins(purpose: str) -> Callable[[DeclaredStack], Change]:
    return lambda declared: append("networksAdvanced", {"name": network_of(purpose)(declared)})


OTHER_SECCOMP = "seccomp=" + seccomp_profile("workspace")
MODEL_IMAGE = resource(REMOTE_IMAGE_TYPE, "sandbox-images-model")
MODEL_CACHE = resource(VOLUME_TYPE, "sandbox-model-cache")
#: The conductor's ingress gateway (the ci stack enables the conductor).
CONDUCTOR_INGRESS = resource(CONTAINER_TYPE, "sandbox-conductor-ingress-container")

VARIANTS = [
    Variant("privileged", "no-privileged", "ci", role(W), put("privileged", True)),
    Variant(
        "capability-added",
        "capabilities-dropped",
        "ci",
        role(X),
        put("capabilities", {"drops": ["ALL"], "adds": ["SYS_ADMIN"]}),
    ),
    Variant("capabilities-kept", "capabilities-dropped", "gpu", role(M), put("capabilities", {})),
    Variant("writable-root", "read-only-root", "ci", role(X), put("readOnly", False)),
    Variant("read-only-unset", "read-only-root", "dev", role(E), drop("readOnly")),
    Variant(
        "nnp-removed",
        "no-new-privileges",
        "ci",
        role(W),
        security_opts(lambda opts: [o for o in opts if not o.startswith("no-new-privileges")]),
    ),
    Variant(
        "nnp-false",
        "no-new-privileges",
        "dev",
        role(X),
        security_opts(
            lambda opts: ["no-new-privileges:false" if o.startswith("no-new-privileges") else o for o in opts]
        ),
    ),
    Variant("seccomp-missing", "seccomp-confined", "ci", role(X), security_opts(without_seccomp)),
    Variant(
        "seccomp-unconfined",
        "seccomp-confined",
        "gpu",
        role(M),
        security_opts(lambda opts: [*without_seccomp(opts), "seccomp=unconfined"]),
    ),
    Variant(
        "executor-other-profile",
        "seccomp-confined",
        "ci",
        role(X),
        security_opts(lambda opts: [*without_seccomp(opts), OTHER_SECCOMP]),
    ),
    Variant(
        "gateway-builtin-profile",
        "seccomp-confined",
        "ci",
        role(I),
        security_opts(lambda opts: [*without_seccomp(opts), "seccomp=builtin"]),
    ),
    Variant(
        "seccomp-path",
        "seccomp-confined",
        "dev",
        role(W),
        security_opts(lambda opts: [*without_seccomp(opts), "seccomp=/etc/docker/seccomp.json"]),
    ),
    Variant(
        "apparmor-unconfined",
        "apparmor-not-unconfined",
        "gpu",
        role(M),
        security_opts(lambda opts: [*opts, "apparmor=unconfined"]),
    ),
    Variant("user-none", "non-root-user", "ci", role(W), drop("user")),
    Variant("user-0", "non-root-user", "ci", role(X), put("user", "0")),
    Variant("user-root", "non-root-user", "gpu", role(M), put("user", "root")),
    Variant("user-0-0", "non-root-user", "dev", role(E), put("user", "0:0")),
    Variant("group-0", "non-root-user", "dev", role(I), put("user", "1000:0")),
    Variant("host-network", "no-host-network", "ci", role(X), put("networkMode", "host")),
    Variant("host-pid", "no-host-pid", "ci", role(W), put("pidMode", "host")),
    Variant("container-pid", "no-host-pid", "gpu", role(X), put("pidMode", "container:opencode-sandbox-gpu-model")),
    Variant("host-ipc", "no-host-ipc", "gpu", role(M), put("ipcMode", "host")),
    # pulumi-docker 5 has no UTS input: the policy stands for the day it has (and the runtime check).
    Variant("host-uts", "no-host-uts", "ci", role(W), put("utsMode", "host")),
    Variant("host-userns", "no-host-userns", "dev", role(W), put("usernsMode", "host")),
    Variant("host-cgroupns", "no-host-cgroupns", "ci", role(X), put("cgroupnsMode", "host")),
    Variant(
        "cgroupns-unset",
        "no-host-cgroupns",
        "gpu",
        role(W),
        put("cgroupnsMode", "container:opencode-sandbox-gpu-model"),
    ),
    Variant("root-group-added", "non-root-user", "ci", role(W), put("groupAdds", ["0"])),
    Variant(
        "system-paths-unmasked",
        "system-paths-masked",
        "dev",
        role(X),
        security_opts(lambda opts: [*opts, "systempaths=unconfined"]),
    ),
    Variant(
        "default-bridge-joined", "no-default-bridge", "ci", role(W), append("networksAdvanced", {"name": "bridge"})
    ),
    Variant("default-bridge-only", "no-default-bridge", "dev", role(X), drop("networksAdvanced")),
    Variant(
        "port-on-all-interfaces",
        "loopback-ports-only",
        "ci",
        role(I),
        lambda props: props["ports"][0].__setitem__("ip", "0.0.0.0"),
    ),
    Variant("port-without-ip", "loopback-ports-only", "gpu", role(I), lambda props: props["ports"][0].pop("ip")),
    Variant("publish-all", "loopback-ports-only", "ci", role(W), put("publishAllPorts", True)),
    Variant("docker-socket", "no-docker-socket", "ci", role(W), bind("/var/run/docker.sock", "/var/run/docker.sock")),
    Variant(
        "docker-socket-volume",
        "no-docker-socket",
        "gpu",
        role(X),
        append("volumes", {"hostPath": "/run/docker.sock", "containerPath": "/docker.sock", "readOnly": True}),
    ),
    Variant("etc", "no-sensitive-host-mounts", "ci", role(W), bind("/etc")),
    Variant("ssh", "no-sensitive-host-mounts", "dev", role(W), bind("/home/alice/.ssh", "/home/opencode/.ssh")),
    Variant(
        "root-volume",
        "no-sensitive-host-mounts",
        "gpu",
        role(X),
        append("volumes", {"hostPath": "/root", "containerPath": "/r", "readOnly": True}),
    ),
    Variant(
        "volume-on-docker-data",
        "no-sensitive-host-mounts",
        "gpu",
        MODEL_CACHE,
        driver_device("/var/lib/docker"),
        exempt=(),
    ),
    Variant("shared-propagation", "no-shared-mount-propagation", "ci", role(W), project_mount_propagation("rshared")),
    Variant(
        "executor-project-writable",
        "executor-mounts-read-only",
        "ci",
        role(X),
        lambda props: props["mounts"][0].__setitem__("readOnly", False),
    ),
    Variant(
        "executor-writable-volume",
        "executor-mounts-read-only",
        "gpu",
        role(X),
        append("volumes", {"volumeName": "scratch", "containerPath": "/data"}),
    ),
    Variant(
        "workspace-device",
        "devices-only-for-model",
        "ci",
        role(W),
        put("devices", [{"hostPath": "/dev/fuse", "containerPath": "/dev/fuse", "permissions": "rwm"}]),
    ),
    Variant(
        "workspace-gpu",
        "gpus-only-for-model",
        "gpu",
        role(W),
        put("deviceRequests", [{"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}]),
    ),
    Variant("executor-gpus", "gpus-only-for-model", "ci", role(X), put("gpus", "all")),
    Variant("sysctls", "no-sysctls", "ci", role(X), put("sysctls", {"net.ipv4.ping_group_range": "0 2147483647"})),
    Variant("dns-of-the-host", "no-outside-dns", "ci", role(W), drop("dns")),
    Variant("dns-outside-resolver", "no-outside-dns", "gpu", role(X), put("dns", ["192.0.2.53"])),
    Variant("memory-removed", "memory-limited", "ci", role(W), drop("memory")),
    Variant("memory-zero", "memory-limited", "gpu", role(M), put("memory", 0)),
    Variant("cpus-removed", "cpu-limited", "ci", role(X), drop("cpus")),
    Variant("nproc-removed", "nproc-limited", "dev", role(X), ulimits_without_nproc),
    Variant("log-driver", "log-rotation", "ci", role(I), put("logDriver", "journald")),
    Variant("log-rotation-removed", "log-rotation", "gpu", role(E), put("logOpts", {})),
    Variant("healthcheck-removed", "healthcheck-defined", "gpu", role(E), drop("healthcheck")),
    Variant(
        "healthcheck-none",
        "healthcheck-defined",
        "ci",
        role(W),
        lambda props: props["healthcheck"].__setitem__("tests", ["NONE"]),
    ),
    Variant("restart-always", "restart-policy-bounded", "gpu", role(M), put("restart", "always")),
    Variant("restart-unbounded", "restart-policy-bounded", "ci", role(X), put("maxRetryCount", 0)),
    Variant(
        "stack-label-removed",
        "role-labelled",
        "ci",
        role(W),
        edit_labels(lambda labels: {k: v for k, v in labels.items() if k != LABEL_STACK}),
    ),
    Variant(
        "role-unknown-to-catalog",
        "role-labelled",
        "dev",
        role(W),
        edit_labels(lambda labels: {**labels, LABEL_ROLE: "admin"}),
        exempt=(),
        also=("network-peers-as-designed",),
    ),
    Variant(
        "labels-removed", "role-labelled", "ci", role(W), drop("labels"), exempt=(), also=("network-peers-as-designed",)
    ),
    Variant("container-latest", "image-pinned", "ci", role(W), put("image", "debian:latest")),
    Variant("container-untagged", "image-pinned", "dev", role(X), put("image", "docker.io/library/debian")),
    Variant("pulled-latest", "image-pinned", "gpu", MODEL_IMAGE, put("name", "vllm/vllm-openai:latest"), exempt=()),
    Variant("pulled-untagged", "image-pinned", "gpu", MODEL_IMAGE, put("name", "vllm/vllm-openai"), exempt=()),
    Variant(
        "workspace-on-edge", "non-gateways-on-internal-networks-only", "ci", role(W), joins("edge"), needs_stack=True
    ),
    Variant(
        "model-network-routed",
        "non-gateways-on-internal-networks-only",
        "gpu",
        resource(NETWORK_TYPE, "sandbox-networks-model"),
        put("internal", False),
        exempt=(W, G),
    ),
    Variant(
        "model-upstream-routed",
        "non-gateways-on-internal-networks-only",
        "gpu",
        resource(NETWORK_TYPE, "sandbox-networks-model-upstream"),
        put("internal", False),
        exempt=(G, M),
    ),
    Variant("model-gateway-writable-root", "read-only-root", "ci", role(G), put("readOnly", False)),
    Variant(
        "internal-network-addressed",
        "internal-networks-unaddressed",
        "ci",
        resource(NETWORK_TYPE, "sandbox-networks-executor"),
        put("options", {}),
        exempt=(W, X),
    ),
    # The model network has the model gateway on it, which would add the key to an executor's requests.
    Variant(
        "executor-on-model-network",
        "executor-isolated-from-model",
        "gpu",
        role(X),
        joins("model"),
        needs_stack=True,
        subject=network_of("model"),
        involved=(G,),
    ),
    Variant(
        "executor-on-model-upstream",
        "executor-isolated-from-model",
        "gpu",
        role(X),
        joins("model-upstream"),
        needs_stack=True,
        subject=network_of("model-upstream"),
        involved=(G, M),
    ),
    # The workspace reaches the model only through the model gateway: never next to the model server.
    Variant(
        "workspace-on-model-upstream",
        "network-peers-as-designed",
        "gpu",
        role(W),
        joins("model-upstream"),
        needs_stack=True,
        subject=network_of("model-upstream"),
        involved=(M,),
    ),
    Variant(
        "gateway-on-executor-network",
        "network-peers-as-designed",
        "gpu",
        role(I),
        joins("executor"),
        needs_stack=True,
        subject=network_of("executor"),
        involved=(X,),
    ),
    Variant(
        "egress-on-executor-network",
        "network-peers-as-designed",
        "dev",
        role(E),
        joins("executor"),
        needs_stack=True,
        subject=network_of("executor"),
        involved=(X,),
    ),
    # The conductor: its port only on 127.0.0.1 (through its ingress gateway), and only its networks.
    Variant(
        "conductor-port-on-all-interfaces",
        "loopback-ports-only",
        "ci",
        CONDUCTOR_INGRESS,
        lambda props: props["ports"][0].__setitem__("ip", "0.0.0.0"),
    ),
    Variant(
        "conductor-publishes-its-own-port",
        "loopback-ports-only",
        "ci",
        role(C),
        put("ports", [{"internal": 8080, "external": 14098, "ip": "0.0.0.0", "protocol": "tcp"}]),
    ),
    Variant(
        "conductor-on-executor-network",
        "network-peers-as-designed",
        "ci",
        role(C),
        joins("executor"),
        needs_stack=True,
        subject=network_of("executor"),
        involved=(X,),
    ),
    Variant(
        "conductor-on-model-network",
        "network-peers-as-designed",
        "ci",
        role(C),
        joins("model"),
        needs_stack=True,
        subject=network_of("model"),
        involved=(G,),
    ),
    Variant(
        "conductor-on-edge", "non-gateways-on-internal-networks-only", "ci", role(C), joins("edge"), needs_stack=True
    ),
    Variant("conductor-writable-root", "read-only-root", "ci", role(C), put("readOnly", False)),
]
EXEMPTABLE = [v for v in VARIANTS if v.exempt != ()]
IDS = [v.id for v in VARIANTS]


def config_exempting(rule: str, roles) -> dict:
    return {rule: {EXEMPT_ROLES: sorted(roles)}}


def test_every_policy_has_variants_and_every_kind_of_resource_is_covered():
    assert {v.rule for v in VARIANTS} == {rule.id for rule in pack_rules()}
    assert {v.rule for v in EXEMPTABLE} == {rule.id for rule in pack_rules()}
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_variant_is_a_mandatory_violation_of_exactly_its_policy(analyzer, declared_stacks, variant):
    declared = declared_stacks[variant.stack]
    rule = RULES_BY_ID[variant.rule]
    diagnostics = variant.build(declared).analyze(analyzer)
    assert {d.policy for d in diagnostics} == {variant.rule, *variant.also}, [d.message for d in diagnostics]
    for diagnostic in diagnostics:
        assert diagnostic.level == "MANDATORY"
        if diagnostic.policy != variant.rule:
            continue
        assert variant.subject_name(declared) in diagnostic.message
        assert f"Fix: {rule.fix}" in diagnostic.message
        if rule.cis:
            assert f"[CIS {rule.cis}]" in diagnostic.message


@pytest.mark.parametrize("variant", EXEMPTABLE, ids=[v.id for v in EXEMPTABLE])
def test_exempting_the_role_lifts_exactly_that_violation(analyzer, declared_stacks, variant):
    declared = declared_stacks[variant.stack]
    roles = variant.roles(declared)
    analyzer.configure(config_exempting(variant.rule, roles))
    assert variant.build(declared).analyze(analyzer) == []
    target = variant.target(declared)
    if target.type == CONTAINER_TYPE:
        # A second insecure setting on the same container is another policy's: it is still reported.
        witness, witness_rule = (
            (put("readOnly", False), "read-only-root")
            if variant.rule == "no-privileged"
            else (put("privileged", True), "no-privileged")
        )
        diagnostics = variant.build(declared, witness).analyze(analyzer)
        assert {(d.policy, d.level) for d in diagnostics} == {(witness_rule, "MANDATORY")}


@pytest.mark.parametrize("variant", EXEMPTABLE, ids=[v.id for v in EXEMPTABLE])
def test_exempting_another_role_lifts_nothing(analyzer, declared_stacks, variant):
    declared = declared_stacks[variant.stack]
    others = ALL_ROLES - variant.involved_roles(declared)
    analyzer.configure(config_exempting(variant.rule, others))
    assert {d.policy for d in variant.build(declared).analyze(analyzer)} == {variant.rule}


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_exemptions_from_other_policies_change_nothing(analyzer, declared_stacks, variant):
    declared = declared_stacks[variant.stack]
    expected = [d for d in variant.build(declared).analyze(analyzer) if d.policy == variant.rule]
    analyzer.configure({rule.id: {EXEMPT_ROLES: sorted(ALL_ROLES)} for rule in pack_rules() if rule.id != variant.rule})
    assert variant.build(declared).analyze(analyzer) == expected


@pytest.mark.parametrize(
    "variant", [v for v in VARIANTS if v.exempt == ()], ids=[v.id for v in VARIANTS if v.exempt == ()]
)
def test_a_resource_without_a_catalog_role_cannot_be_exempted(analyzer, declared_stacks, variant):
    declared = declared_stacks[variant.stack]
    analyzer.configure(config_exempting(variant.rule, ALL_ROLES))
    assert {d.policy for d in variant.build(declared).analyze(analyzer)} == {variant.rule, *variant.also}


def test_a_stack_violation_points_at_the_resource_it_names(analyzer, declared_stacks):
    declared = declared_stacks["gpu"]
    gateway_on_executor_network = next(v for v in VARIANTS if v.id == "gateway-on-executor-network")
    diagnostics = gateway_on_executor_network.build(declared).analyze(analyzer)
    assert [d.urn for d in diagnostics] == [named(declared, NETWORK_TYPE, "sandbox-networks-executor").urn]


def test_an_image_built_from_the_repository_is_not_judged_by_its_tag(analyzer, declared_stacks):
    declared = declared_stacks["ci"]
    built = named(declared, REMOTE_IMAGE_TYPE, "sandbox-images-workspace")
    assert "build" in built.inputs
    changed = ChangedStack(declared).change(built, put("name", "opencode-sandbox/workspace:latest"))
    assert changed.analyze(analyzer) == []


def test_the_committed_config_grants_no_exception():
    assert json.loads((POLICIES_DIR / "config.json").read_text()) == {}


def test_the_readme_example_exempts_what_it_says_and_nothing_more(analyzer, declared_stacks):
    [example] = re.findall(r"```json\n(.*?)```", (POLICIES_DIR / "README.md").read_text(), re.S)
    config = json.loads(example)
    assert config == {"no-sysctls": {EXEMPT_ROLES: [X]}}, "the README explains this example: keep them together"
    analyzer.configure(config)  # checked against each policy's schema, as the CLI does
    sysctls = next(v for v in VARIANTS if v.id == "sysctls")
    assert role_of(sysctls.target(declared_stacks[sysctls.stack])) == X
    assert sysctls.build(declared_stacks[sysctls.stack]).analyze(analyzer) == []
    on_workspace = Variant("sysctls-on-workspace", "no-sysctls", "ci", role(W), sysctls.change)
    assert {d.policy for d in on_workspace.build(declared_stacks["ci"]).analyze(analyzer)} == {"no-sysctls"}
