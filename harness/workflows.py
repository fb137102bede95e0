"""The Pulumi commands the GitHub workflows run, as CLI arguments, so the tests run exactly those.

Each workflow has one ``pulumi/actions`` step; its ``with:`` settings are the action's spelling of a
`pulumi` command line. The engine tests build their command from here, so a workflow and the tests
cannot drift apart.
"""

from __future__ import annotations

import yaml

from sandbox_model.paths import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
PULUMI_ACTION = "pulumi/actions@v6"
#: pulumi/actions inputs -> the CLI flags they become (flags the action adds for any command left out).
_FLAGS = {"refresh": "--refresh", "expect-no-changes": "--expect-no-changes", "diff": "--diff"}
_VALUED = {"policyPacks": "--policy-pack", "policyPackConfigs": "--policy-pack-config"}
#: Inputs that are the action's business, not the command's.
_ACTION_ONLY = {"command", "stack-name", "cloud-url", "comment-on-pr", "github-token", "work-dir"}


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as true
    return workflow


def pulumi_step(job: dict) -> dict:
    [step] = [step for step in job["steps"] if step.get("uses", "").startswith("pulumi/actions@")]
    return step


def pulumi_args(name: str) -> list[str]:
    """``pulumi <command> <flags>`` of the workflow's one Pulumi step (the stack is the caller's)."""
    [job] = load(name)["jobs"].values()
    settings = dict(pulumi_step(job)["with"])
    args = [settings.pop("command")]
    for key, value in settings.items():
        if key in _FLAGS:
            if value is True:
                args.append(_FLAGS[key])
        elif key in _VALUED:
            args += [_VALUED[key], str(value)]
        elif key not in _ACTION_ONLY:
            raise ValueError(
                f"{name}: pulumi/actions input {key!r} has no CLI equivalent here; add it to harness/workflows.py"
            )
    return args
