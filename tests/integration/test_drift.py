"""Changes made to the running stack outside Pulumi are caught by the suite's check function.

Each test weakens one executor the way someone could by hand, shows that
``container_violations`` reports exactly that rule on exactly that container, and restores it so
later tests see a clean stack (the stack check is repeated after the restore).
"""

from __future__ import annotations

import subprocess

import pytest

from components.security import catalog
from tests.integration.runtime import container_violations
from tests.integration.target import requires_deployer
from tests.support.deployer import recreate_container

pytestmark = pytest.mark.docker


def _found(client, name: str) -> list[tuple[str, str]]:
    return [(violation.rule.id, violation.subject) for violation in container_violations(client, [name])]


def _docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, text=True)


def test_a_restart_policy_changed_with_docker_update_is_reported(deployed_stack, docker_api):
    requires_deployer(deployed_stack, "changes a running container")
    executor = deployed_stack.containers["executor"][-1]
    assert _found(docker_api, executor) == []
    _docker("update", "--restart", "always", executor)
    try:
        assert _found(docker_api, executor) == [("restart-policy-bounded", executor)]
    finally:
        _docker("update", "--restart", f"{catalog.RESTART_POLICY}:{catalog.RESTART_MAX_RETRIES}", executor)
    assert _found(docker_api, executor) == []


def test_a_container_recreated_without_read_only_is_reported(deployed_stack, docker_api):
    deployment = requires_deployer(deployed_stack, "replaces a running container")
    executor = deployed_stack.containers["executor"][-1]
    assert _found(docker_api, executor) == []
    try:
        recreate_container(docker_api, deployment, executor, override={"readOnly": False})
        assert _found(docker_api, executor) == [("read-only-root", executor)]
    finally:
        recreate_container(docker_api, deployment, executor)  # as declared again, healthy before it returns
    assert _found(docker_api, executor) == []
