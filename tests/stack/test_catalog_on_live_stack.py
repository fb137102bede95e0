"""The catalog's own checks on the running stack, and the running stack against its declaration.

``container_violations``/``stack_violations`` (tests/stack/runtime.py) run the same
``check_container``/``check_stack`` the policy pack and the unit tests run, on what the engine
reports. When this session deployed the stack, every container is also compared with what the
program declared: `pulumi up` must have created exactly that (the provider's semantics).
"""

from __future__ import annotations

import pytest

from sandbox_model.naming import LABEL_ROLE, LABEL_STACK
from sandbox_model.provider_forms import parse_go_duration
from sandbox_model.roles import ALL_ROLES
from sandbox_model.security.adapters import pulumi_props as declared_props
from tests.stack.runtime import container_violations, runtime_spec, stack_violations
from tests.stack.target import requires_deployed

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

# ContainerSpec fields the catalog reads, compared as the declaration states them.
COMPARED = (
    "user",
    "privileged",
    "read_only_root",
    "publish_all_ports",
    "devices",
    "gpu_requested",
    "sysctls",
    "memory_bytes",
    "nano_cpus",
    "nproc_limit",
    "log_driver",
    "log_opts",
    "healthcheck",
    "restart",
    "restart_max_retries",
)
AS_SETS = ("cap_add", "cap_drop", "security_opts", "networks", "ports", "group_add")
# Namespace modes: undeclared means the engine's default, so they are compared where declared.
MODES = ("network_mode", "pid_mode", "ipc_mode", "uts_mode", "userns_mode", "cgroupns_mode")


@pytest.mark.parametrize("role", sorted(ALL_ROLES))
def test_container_rules_hold(deployed_stack, docker_api, role):
    names = deployed_stack.containers.get(role, ())
    if not names:
        pytest.skip(f"stack {deployed_stack.stack!r} has no {role} container")
    violations = container_violations(docker_api, names)
    assert not violations, "\n".join(f"[{v.rule.id}] {v.message}" for v in violations)


def test_stack_rules_hold(deployed_stack, docker_api):
    violations = stack_violations(docker_api, deployed_stack.stack)
    assert not violations, "\n".join(f"[{v.rule.id}] {v.message}" for v in violations)


def test_every_container_of_the_stack_is_labelled_with_a_role(deployed_stack, docker_api):
    unlabelled = [
        info["Names"][0]
        for info in docker_api.api.containers(filters={"label": f"{LABEL_STACK}={deployed_stack.stack}"})
        if info["Labels"].get(LABEL_ROLE) is None
    ]
    assert not unlabelled, f"containers of the stack without {LABEL_ROLE}: {unlabelled}"


def _comparable(spec, modes=MODES):
    values = {name: getattr(spec, name) for name in COMPARED + tuple(modes)}
    values.update({name: frozenset(getattr(spec, name)) for name in AS_SETS})
    values["mounts"] = frozenset((m.kind, m.target, m.source, m.read_only) for m in spec.mounts)
    values["labels"] = {key: spec.labels.get(key) for key in (LABEL_STACK, LABEL_ROLE)}
    return values


def test_running_containers_are_what_the_program_declared(deployed_stack, docker_api):
    """Field by field, the catalog's view of each declaration equals its view of the running container."""
    requires_deployed(deployed_stack, "compares with the program's declaration")
    differences = []
    for resource in deployed_stack.declared.containers:
        name = resource.inputs["name"]
        declared_spec = declared_props.container_spec(resource.name, resource.inputs)
        modes = [mode for mode in MODES if getattr(declared_spec, mode) is not None]
        declared = _comparable(declared_spec, modes)
        running = _comparable(runtime_spec(docker_api, name), modes)
        differences += [
            f"{name}.{key}: declared {declared[key]!r}, running {running[key]!r}"
            for key in declared
            if declared[key] != running[key]
        ]
    assert not differences, "\n".join(differences)


def test_engine_settings_outside_the_catalog_match_the_declaration(deployed_stack, docker_api):
    """What no rule reads but the provider must still map: command, env, tmpfs options, healthcheck times..."""
    requires_deployed(deployed_stack, "compares with the program's declaration")
    differences = []
    for resource in deployed_stack.declared.containers:
        inputs, name = resource.inputs, resource.inputs["name"]
        info = docker_api.api.inspect_container(name)
        config, host = info["Config"], info["HostConfig"]
        health = inputs["healthcheck"]
        expected = {
            "Cmd": inputs.get("command") or config["Cmd"],  # unset: the image's
            "Entrypoint": inputs.get("entrypoints") or config["Entrypoint"],
            "WorkingDir": inputs.get("workingDir") or config["WorkingDir"],
            "Env ⊇ envs": True,
            "Tmpfs": inputs.get("tmpfs"),
            "Healthcheck": {
                "Test": health["tests"],
                "Interval": parse_go_duration(health["interval"]),
                "Timeout": parse_go_duration(health["timeout"]),
                "Retries": int(health["retries"]),
                "StartPeriod": parse_go_duration(health["startPeriod"]),
            },
            "Init": bool(inputs.get("init")),
            "MemorySwap": int(inputs["memorySwap"]) * 1024 * 1024,
            "ExtraHosts": [f"{h['host']}:{h['ip']}" for h in inputs.get("hosts") or []] or None,
            "Aliases": {net["name"]: set(net.get("aliases") or []) for net in inputs["networksAdvanced"]},
        }
        networks = info["NetworkSettings"]["Networks"]
        actual = {
            "Cmd": config["Cmd"],
            "Entrypoint": config["Entrypoint"],
            "WorkingDir": config["WorkingDir"],
            "Env ⊇ envs": set(inputs.get("envs") or []) <= set(config["Env"] or []),
            "Tmpfs": host.get("Tmpfs"),
            "Healthcheck": config["Healthcheck"],
            "Init": bool(host.get("Init")),
            "MemorySwap": host["MemorySwap"],
            "ExtraHosts": host.get("ExtraHosts"),
            # Docker adds the container's short id as an alias on every user-defined network.
            "Aliases": {net: set(networks[net]["Aliases"] or []) - {info["Id"][:12], name} for net in networks},
        }
        differences += [
            f"{name}.{key}: declared {expected[key]!r}, running {actual[key]!r}"
            for key in expected
            if expected[key] != actual[key]
        ]
    assert not differences, "\n".join(differences)
