"""The workflows users get: valid GitHub workflows that run the pack, and the drift check."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.program import STACKS
from harness.workflows import PULUMI_ACTION, WORKFLOWS, load, pulumi_args, pulumi_step
from sandbox_model.paths import REPO_ROOT


def preview_per_stack(job: dict) -> dict:
    """The settings of the job's one Pulumi step, checked to be a preview of the matrix's stack."""
    step = pulumi_step(job)
    assert step["uses"] == PULUMI_ACTION
    settings = step["with"]
    assert settings["command"] == "preview"
    assert settings["stack-name"] == "${{ matrix.stack }}"
    return settings


def runs(job: dict, command: str) -> bool:
    return any(command in step.get("run", "") for step in job["steps"])


@pytest.mark.parametrize("name", ["policy-preview.yml", "drift.yml"])
def test_workflow_is_valid_for_github(name):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOWS / name),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pull_requests_preview_each_runner_previewable_stack_with_the_pack_and_its_config():
    workflow = load("policy-preview.yml")
    assert "pull_request" in workflow["on"]
    [job] = workflow["jobs"].values()
    stacks = job["strategy"]["matrix"]["stack"]
    assert {"dev", "gpu"} <= set(stacks) <= set(STACKS)
    # Untrusted pull-request code never runs on the Docker host's self-hosted runner.
    assert "self-hosted" not in str(job["runs-on"])
    settings = preview_per_stack(job)
    assert settings["comment-on-pr"] is True
    pack = REPO_ROOT / settings["policyPacks"]
    assert (pack / "PulumiPolicy.yaml").is_file() and (pack / "__main__.py").is_file()
    assert (REPO_ROOT / settings["policyPackConfigs"]).is_file()
    assert any(step.get("uses", "").startswith("actions/setup-python@") for step in job["steps"])
    # The program's and the pack's packages, in the one .venv both Pulumi.yaml files name.
    assert runs(job, ".venv/bin/pip install -r requirements.txt -r policies/requirements.txt")
    assert runs(job, ".venv/bin/pip install --no-deps -e ."), "the pack imports the kernel: install the project"
    assert {"PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"} <= set(job["env"])


def test_drift_refreshes_each_deployed_stack_on_the_docker_host_and_fails_on_any_change():
    workflow = load("drift.yml")
    assert {"schedule", "workflow_dispatch"} <= set(workflow["on"])
    [job] = workflow["jobs"].values()
    assert "self-hosted" in job["runs-on"]
    assert "matrix.stack" in " ".join(job["runs-on"])  # the runner on the host that runs that stack
    settings = preview_per_stack(job)
    assert settings["refresh"] is True
    assert settings["expect-no-changes"] is True
    assert runs(job, "pip install -r requirements.txt")


def test_the_commands_the_tests_run_are_the_workflows_commands():
    """tests/stack runs pulumi_args(...) of each workflow against the real engine."""
    assert pulumi_args("policy-preview.yml") == [
        "preview",
        "--policy-pack",
        "policies",
        "--policy-pack-config",
        "policies/config.json",
    ]
    assert pulumi_args("drift.yml") == ["preview", "--refresh", "--expect-no-changes", "--diff"]
