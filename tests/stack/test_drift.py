"""Changes made to the running stack behind Pulumi's back: what reports them, and what repairs them.

Two detectors, as the README says: ``pulumi preview --refresh --expect-no-changes`` (the drift
workflow) sees what the provider reads back from the engine (limits, a stopped or a removed
container), and ``pulumi up`` repairs it; the testinfra suite's ``container_violations`` /
``stack_violations`` see what a refresh cannot (labels, networks, the hardening itself). Each test
changes one thing the way someone could by hand, shows who reports it, and restores the stack.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid

import pytest

from harness.images import BASE_IMAGE
from harness.workflows import pulumi_args
from sandbox_model.naming import LABEL_ROLE, LABEL_STACK
from sandbox_model.roles import Role
from sandbox_model.security import baseline
from tests.stack.runtime import container_violations, stack_violations
from tests.stack.target import requires_deployed

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]


def _found(client, name: str) -> list[tuple[str, str]]:
    return [(violation.rule.id, violation.subject) for violation in container_violations(client, [name])]


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def _drift(workspace, stack: str) -> subprocess.CompletedProcess:
    """The drift workflow's command (.github/workflows/drift.yml): non-zero when the stack differs from the code."""
    return workspace.run(*pulumi_args("drift.yml"), "--stack", stack, check=False)


def _repair(workspace, stack: str) -> str:
    return workspace.run("up", "--yes", "--stack", stack, "--refresh", "--skip-preview").stdout


def _healthy(client, name: str, within_s: float = 60) -> bool:
    """Healthy now, or within ``within_s`` (a container `pulumi up` restarted is probed afresh)."""
    deadline = time.monotonic() + within_s
    while True:
        status = client.api.inspect_container(name)["State"].get("Health", {}).get("Status")
        if status == "healthy" or time.monotonic() > deadline:
            return status == "healthy"
        time.sleep(1)


def test_right_after_up_the_drift_check_passes_and_a_second_up_changes_nothing(deployed_stack):
    workspace = requires_deployed(deployed_stack, "runs pulumi against the stack this session deployed")
    drift = _drift(workspace, deployed_stack.stack)
    assert drift.returncode == 0, drift.stdout[-4000:] + drift.stderr[-2000:]
    summary = workspace.run("up", "--yes", "--stack", deployed_stack.stack, "--skip-preview").stdout
    assert re.search(r"Resources:\s+\d+ unchanged\s", summary), summary[-2000:]
    assert not re.search(r"\d+ (created|updated|replaced|deleted)", summary), summary[-2000:]


@pytest.mark.parametrize("change", ["limit", "stopped", "removed"])
def test_a_change_behind_pulumis_back_fails_the_drift_check_and_pulumi_up_repairs_it(
    deployed_stack, docker_api, change
):
    workspace = requires_deployed(deployed_stack, "changes a container of the stack this session deployed")
    stack, executor = deployed_stack.stack, deployed_stack.containers["executor"][-1]
    declared = next(c for c in deployed_stack.declared.containers if c.inputs["name"] == executor)
    if change == "limit":
        _docker("update", "--cpus", "0.25", executor)
    elif change == "stopped":
        _docker("stop", "--time", "2", executor)
    else:
        _docker("rm", "--force", executor)
    drift = _drift(workspace, stack)
    assert drift.returncode != 0
    # The resource is named: its URN ends in its Pulumi name.
    assert f"::{declared.name}]" in drift.stdout or f"::{declared.name}\n" in drift.stdout, drift.stdout[-4000:]
    _repair(workspace, stack)
    assert _healthy(docker_api, executor)
    assert docker_api.api.inspect_container(executor)["HostConfig"]["NanoCpus"] == round(
        float(declared.inputs["cpus"]) * 1e9
    )
    assert _drift(workspace, stack).returncode == 0


def _networks(client, name: str) -> set[str]:
    return set(client.api.inspect_container(name)["NetworkSettings"]["Networks"])


def test_a_disconnected_network_is_invisible_to_refresh_and_seen_by_the_live_suite(deployed_stack, docker_api):
    """The provider never reads networks_advanced back (README: what a refresh cannot see); the live
    suite compares each container's networks with the declaration (test_catalog_on_live_stack)."""
    workspace = requires_deployed(deployed_stack, "changes a container of the stack this session deployed")
    stack, executor = deployed_stack.stack, deployed_stack.containers["executor"][-1]
    declared = next(c for c in deployed_stack.declared.containers if c.inputs["name"] == executor)
    declared_networks = {attachment["name"] for attachment in declared.inputs["networksAdvanced"]}
    network = deployed_stack.networks["executor"]
    inspected = docker_api.api.inspect_container(executor)
    short_id = inspected["Id"][:12]  # Docker's own alias, added again on connect
    aliases = [
        alias for alias in inspected["NetworkSettings"]["Networks"][network]["Aliases"] or [] if alias != short_id
    ]
    assert _networks(docker_api, executor) == declared_networks
    _docker("network", "disconnect", network, executor)
    try:
        assert _drift(workspace, stack).returncode == 0  # Pulumi cannot tell
        assert _networks(docker_api, executor) != declared_networks  # the live suite can
    finally:
        _docker("network", "connect", *[arg for alias in aliases for arg in ("--alias", alias)], network, executor)
    assert _networks(docker_api, executor) == declared_networks
    assert stack_violations(docker_api, stack) == []


def test_a_restart_policy_changed_with_docker_update_is_reported(deployed_stack, docker_api):
    requires_deployed(deployed_stack, "changes a running container")
    executor = deployed_stack.containers["executor"][-1]
    assert _found(docker_api, executor) == []
    _docker("update", "--restart", "always", executor)
    try:
        assert _found(docker_api, executor) == [("restart-policy-bounded", executor)]
    finally:
        _docker("update", "--restart", f"{baseline.RESTART_POLICY}:{baseline.RESTART_MAX_RETRIES}", executor)
    assert _found(docker_api, executor) == []


def test_a_look_alike_executor_started_by_hand_is_reported(deployed_stack, docker_api):
    """A container someone starts with the stack's labels but without its hardening is caught."""
    requires_deployed(deployed_stack, "adds a container to the stack this session deployed")
    name = f"{deployed_stack.stack}-look-alike-{uuid.uuid4().hex[:8]}"
    _docker(
        "run",
        "--detach",
        "--name",
        name,
        "--label",
        f"{LABEL_STACK}={deployed_stack.stack}",
        "--label",
        f"{LABEL_ROLE}={Role.EXECUTOR.value}",
        "--network",
        "none",
        BASE_IMAGE,
        "sleep",
        "300",
    )
    try:
        found = {rule for rule, subject in _found(docker_api, name) if subject == name}
        assert {"read-only-root", "capabilities-dropped", "seccomp-confined", "non-root-user"} <= found
    finally:
        _docker("rm", "--force", name)
