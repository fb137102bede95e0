"""The project's main jobs on the real engine: the pull-request policy preview, `pulumi up`, destroy.

Each runs the command its GitHub workflow runs (harness/workflows.py) with the Pulumi CLI,
on a copy of the project with a local file backend (harness/pulumi_cli.py).
"""

from __future__ import annotations

import os

import pytest

from harness.program import STACKS
from harness.pulumi_cli import PulumiWorkspace
from harness.stack_cleanup import remove_stack
from harness.workflows import pulumi_args
from sandbox_model.naming import LABEL_STACK
from tests.support.requirements import require_toolchain

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

#: A second stack beside the session's `ci` one: its own host ports, UIDs and project directory.
SECOND_STACK = "ci-second"
SECOND_STACK_CONFIG = {
    "workspace.web.port": "14196",
    "model.host_port": "18100",
    "conductor.host_port": "14197",
    "executors.uid_base": "21000",
    "workspace.project_dir": f"~/.cache/opencode-sandbox/{SECOND_STACK}/project",
}
#: The program as a violating pull request would change it: every executor privileged.
PRIVILEGED_EXECUTORS = """
import runpy

import pulumi


def privileged_executors(args: pulumi.ResourceTransformArgs):
    if args.type_ == "docker:index/container:Container" and "-executor-" in str(args.props.get("name")):
        return pulumi.ResourceTransformResult({**args.props, "privileged": True}, args.opts)
    return None


pulumi.runtime.register_resource_transform(privileged_executors)
runpy.run_path("program.py", run_name="__main__")
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> PulumiWorkspace:
    require_toolchain("runs the Pulumi CLI")
    root = tmp_path_factory.mktemp("pulumi-workflows")
    return PulumiWorkspace(root / "pulumi", root / "home")


def _as_a_user(stack: str) -> dict[str, str]:
    """Stacks whose workspace user defaults to the invoking one need it said when Pulumi runs as root."""
    if os.getuid() == 0 and stack != "ci":
        return {"workspace.user.uid": "1000", "workspace.user.gid": "1000"}
    return {}


def _labelled(docker_api, stack: str) -> list[str]:
    label = {"label": f"{LABEL_STACK}={stack}"}
    return (
        [c["Names"][0] for c in docker_api.api.containers(all=True, filters=label)]
        + [n["Name"] for n in docker_api.api.networks(filters=label)]
        + [v["Name"] for v in docker_api.api.volumes(filters=label).get("Volumes") or []]
    )


@pytest.mark.parametrize("stack", STACKS)
def test_the_pull_request_preview_passes_the_policy_pack(workspace, stack):
    """dev and gpu preview here as far as a preview goes: every resource is checked, nothing is built or pulled."""
    workspace.init_stack(stack, set_config=_as_a_user(stack))
    result = workspace.run(*pulumi_args("policy-preview.yml"), "--stack", stack)
    assert "Policies:" in result.stdout and "✅ opencode-sandbox@" in result.stdout, result.stdout[-3000:]


def test_a_privileged_executor_fails_the_policy_check_and_nothing_is_created(tmp_path_factory, docker_api):
    require_toolchain("runs the Pulumi CLI")
    root = tmp_path_factory.mktemp("violation")
    violating = PulumiWorkspace(root / "pulumi", root / "home")
    (violating.project / "__main__.py").rename(violating.project / "program.py")
    (violating.project / "__main__.py").write_text(PRIVILEGED_EXECUTORS)
    violating.init_stack("violation", settings_from="ci")
    policy = pulumi_args("policy-preview.yml")[1:]  # the pack and its config, here on `pulumi up`
    try:
        result = violating.run("up", "--yes", "--stack", "violation", *policy, check=False)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "[mandatory]  no-privileged" in output, output[-3000:]
        assert "remove privileged=True" in output  # the policy's message says the fix
        assert _labelled(docker_api, "violation") == []
    finally:
        remove_stack(docker_api, "violation")


def test_a_second_stack_from_the_ci_settings_comes_up_healthy_and_destroy_leaves_nothing(workspace, docker_api):
    """What a user does by hand: a copy of the ci stack under another name, up, drift check, destroy."""
    remove_stack(docker_api, SECOND_STACK)
    workspace.init_stack(SECOND_STACK, settings_from="ci", set_config=SECOND_STACK_CONFIG)
    try:
        workspace.run("up", "--yes", "--stack", SECOND_STACK)
        containers = docker_api.api.containers(filters={"label": f"{LABEL_STACK}={SECOND_STACK}"})
        declared = workspace.outputs(SECOND_STACK)["containers"].values()
        assert len(containers) == sum(len(names) if isinstance(names, list) else 1 for names in declared)
        for info in containers:
            health = docker_api.api.inspect_container(info["Id"])["State"]["Health"]["Status"]
            assert health == "healthy", info["Names"]
        drift = workspace.run(*pulumi_args("drift.yml"), "--stack", SECOND_STACK, check=False)
        assert drift.returncode == 0, drift.stdout[-3000:]
        workspace.run("destroy", "--yes", "--stack", SECOND_STACK)
        assert _labelled(docker_api, SECOND_STACK) == []
    finally:
        remove_stack(docker_api, SECOND_STACK)
