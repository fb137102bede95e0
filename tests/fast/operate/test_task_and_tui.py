"""The task and TUI commands' decisions that need no running stack: settings, paths, command lines."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pytest

from components.opencode_config import OpenCodeConfigArgs, opencode_config_json
from operate.stack import OperateError, StackContainer, executor_approval
from operate.task import DEFAULT_TASK, OwnedFiles, container_task_path, limits_for, log_names, task_settings
from operate.tui import attach_command
from stacks.loader import validate_settings
from stacks.settings import TaskSettings


def _stack_file(tmp_path: Path, task: dict | None) -> Path:
    config = {"opencode-sandbox:model": {"backend": "test-double"}}
    if task is not None:
        config["opencode-sandbox:task"] = task
    path = tmp_path / "Pulumi.ci.yaml"
    path.write_text(json.dumps({"config": config}))  # JSON is YAML
    return path


def test_task_limits_come_from_the_stack_file(tmp_path):
    limits, source = task_settings("ci", _stack_file(tmp_path, {"timeout_s": 120, "max_steps": "7"}))
    assert limits == TaskSettings(timeout_s=120, max_steps=7)
    assert source == "opencode-sandbox:task in Pulumi.ci.yaml"


def test_without_task_settings_the_defaults_apply(tmp_path):
    assert task_settings("ci", _stack_file(tmp_path, None))[0] == TaskSettings()
    assert task_settings("ci", tmp_path / "Pulumi.absent.yaml")[0] == TaskSettings()


def test_a_bad_task_setting_names_the_key_and_the_fix(tmp_path):
    with pytest.raises(OperateError, match=r"opencode-sandbox:task\.max_steps = 0: .*Fix: pulumi config set"):
        task_settings("ci", _stack_file(tmp_path, {"max_steps": 0}))
    with pytest.raises(OperateError, match=r"opencode-sandbox:task\.steps"):
        task_settings("ci", _stack_file(tmp_path, {"steps": 3}))


def test_the_program_accepts_and_checks_the_task_settings_too(tmp_path):
    raw = {
        "images": json.dumps({"base_image": "opencode-sandbox/base:bookworm"}),
        "workspace": json.dumps({"user": {"uid": 1000, "gid": 1000}, "project_dir": str(tmp_path)}),
        "model": json.dumps({"backend": "test-double"}),
        "task": json.dumps({"timeout_s": 30, "max_steps": 3}),
    }
    assert validate_settings("ci", raw).task == TaskSettings(timeout_s=30, max_steps=3)
    raw["task"] = json.dumps({"timeout_s": -1})
    with pytest.raises(Exception, match=r"opencode-sandbox:task\.timeout_s = -1"):
        validate_settings("ci", raw)


def test_command_line_limits_override_the_stack_file(tmp_path, monkeypatch):
    monkeypatch.setattr("operate.task.REPO_ROOT", tmp_path)
    _stack_file(tmp_path, {"timeout_s": 120, "max_steps": 7})
    args = argparse.Namespace(stack="ci", timeout_s=None, max_steps=2)
    limits, source = limits_for(args)
    assert limits == TaskSettings(timeout_s=120, max_steps=2) and source.endswith("overridden on the command line")
    with pytest.raises(OperateError, match="--max-steps"):
        limits_for(argparse.Namespace(stack="ci", timeout_s=None, max_steps=0))


def test_the_task_file_is_found_in_the_project_and_named_as_the_workspace_sees_it(tmp_path):
    (tmp_path / DEFAULT_TASK).write_text("Do it.")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "two.md").write_text("Again.")
    assert container_task_path(DEFAULT_TASK, tmp_path) == PurePosixPath("/workspace/TASK.md")
    assert container_task_path(str(tmp_path / "tasks" / "two.md"), tmp_path) == PurePosixPath("/workspace/tasks/two.md")
    assert container_task_path("tasks/../TASK.md", tmp_path) == PurePosixPath("/workspace/TASK.md")


@pytest.mark.parametrize(
    "name, problem",
    [
        ("missing.md", "no task file"),
        ("../outside.md", "is not in the stack's project"),
        ("/etc/hostname", "is not in the stack's project"),
        ("empty.md", "is empty"),
    ],
)
def test_a_task_file_that_cannot_run_is_refused_with_the_fix(tmp_path, name, problem):
    (tmp_path / "empty.md").write_text("")
    with pytest.raises(OperateError, match=problem):
        container_task_path(name, tmp_path)


def test_log_names_carry_the_time_and_the_task():
    started = datetime(2026, 12, 1, 15, 7, 50, tzinfo=UTC)
    assert log_names(PurePosixPath("/workspace/TASK.md"), started) == (
        "logs/task-20261201T150750Z-TASK.jsonl",
        "logs/task-20261201T150750Z-TASK.summary.json",
    )
    odd_name = PurePosixPath("/workspace/a b/fix it!.md")
    assert log_names(odd_name, started)[0] == "logs/task-20261201T150750Z-fix-it.jsonl"


def _workspace(approval: str, password: str = "pw-not-on-any-command-line") -> StackContainer:
    config = opencode_config_json(
        OpenCodeConfigArgs(
            model_base_url="http://model-gateway:8000/v1",
            model_id="m",
            executor_mcp_url="http://executor:8080/mcp",
            executor_approval=approval,
        )
    )
    return StackContainer(
        {
            "Name": "/opencode-sandbox-ci-workspace",
            "Id": "abc",
            "State": {"Running": True},
            "Config": {
                "Labels": {},
                "User": "1000:1000",
                "Env": [f"OPENCODE_CONFIG_CONTENT={config}", f"OPENCODE_SERVER_PASSWORD={password}"],
            },
        }
    )


@pytest.mark.parametrize("approval", ["allow", "ask"])
def test_the_approval_mode_is_read_from_the_workspaces_generated_config(approval):
    assert executor_approval(_workspace(approval)) == approval


def test_the_tui_command_line_holds_no_secret_and_attaches_to_the_server_in_the_workspace():
    workspace = _workspace("allow")
    command = attach_command(workspace.name, "/tmp/opencode-sandbox-tui-x.pid", session="ses_1")
    assert command[:4] == ["docker", "exec", "--interactive", "--tty"]
    assert "--env" in command and "TERM" in command and not any("=" in arg for arg in command[:8])
    assert command[command.index("attach") + 1] == "http://workspace-web:4096"
    assert command[-2:] == ["--session", "ses_1"]
    assert not any(workspace.env("OPENCODE_SERVER_PASSWORD") in arg for arg in command)
    assert "--password" not in command and "-p" not in command


def test_two_tasks_in_one_second_get_logs_of_their_own(tmp_path):
    files = OwnedFiles(tmp_path, owner=None)
    started = datetime(2026, 12, 1, 15, 7, 50, tzinfo=UTC)
    task = PurePosixPath("/workspace/TASK.md")
    first, first_name, first_summary = files.open_new_logs(task, started)
    second, second_name, second_summary = files.open_new_logs(task, started)
    first.close()
    second.close()
    assert first_name == "logs/task-20261201T150750Z-TASK.jsonl"
    assert (second_name, second_summary) == (
        "logs/task-20261201T150750Z-TASK-2.jsonl",
        "logs/task-20261201T150750Z-TASK-2.summary.json",
    )
    assert {p.name for p in (tmp_path / "logs").iterdir()} == {Path(first_name).name, Path(second_name).name}


def test_links_in_the_project_are_never_followed_into_the_host(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "logs").symlink_to(elsewhere)
    started = datetime(2026, 12, 1, 15, 7, 50, tzinfo=UTC)
    with pytest.raises(OperateError, match="logs is not a directory"):
        OwnedFiles(project, owner=None).open_new_logs(PurePosixPath("/workspace/TASK.md"), started)
    (project / "logs").unlink()
    (project / "logs").mkdir()
    planted = project / "logs" / "task-20261201T150750Z-TASK.jsonl"
    planted.symlink_to(elsewhere / "target")
    transcript, name, _ = OwnedFiles(project, owner=None).open_new_logs(PurePosixPath("/workspace/TASK.md"), started)
    transcript.close()
    assert name == "logs/task-20261201T150750Z-TASK-2.jsonl" and list(elsewhere.iterdir()) == []
