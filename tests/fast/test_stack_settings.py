"""A bad stack setting is refused, saying key, value and fix; and it stops the program before any resource exists.

The settings' errors are tested through the validator the program uses (stacks.loader.validate_settings,
via harness.settings.stack_settings); only the tests marked "the program" run __main__.py, to prove that
it stops before registering anything and to check what only the program's loader sees (secrets).
"""

from __future__ import annotations

import re

import pytest

from harness.program import DYNAMIC, developer_machine, run_program
from harness.settings import stack_settings
from stacks.loader import SettingsError


def rejected(stack: str, **kwargs) -> str:
    """The validator's message for `stack`'s committed settings with these edits (see harness.settings)."""
    with pytest.raises(SettingsError) as caught:
        stack_settings(stack, **kwargs)
    return str(caught.value)


def rejected_by_the_program(stack: str, **kwargs) -> str:
    registered: list = []
    with pytest.raises(SettingsError) as caught:
        run_program(stack, registered=registered, **kwargs)
    assert registered == [], "a resource was registered before the settings were validated"
    return str(caught.value)


@pytest.mark.usefixtures("on_developer_machine")
def test_the_program_stops_on_a_bad_setting_before_any_resource():
    """The program: the validator's very message, and nothing registered."""
    edits = {"set_config": {"executors": {"count": 0}}}
    assert rejected_by_the_program("ci", **edits) == rejected("ci", **edits)


def assert_names(message: str, key: str, value: str | None, *fix_words: str):
    assert f"opencode-sandbox:{key}" in message, message
    if value is not None:
        assert value in message, message
    assert "Fix:" in message, message
    line = next(line for line in message.splitlines() if f"opencode-sandbox:{key}" in line)
    for word in fix_words:
        assert word in line.split("Fix:", 1)[1], line


WORKSPACE = {"user": {"uid": 1000, "gid": 1000}, "project_dir": "/tmp/opencode-sandbox-test/project"}


@pytest.mark.parametrize(
    "key, value, shown, fix",
    [
        ("workspace", {**WORKSPACE, "user": {"uid": 0, "gid": 1000}}, "= 0", "non-root"),
        ("workspace", {**WORKSPACE, "user": {"uid": 1000, "gid": 0}}, "= 0", "non-root"),
        ("workspace", {**WORKSPACE, "web": {"host_ip": "0.0.0.0"}}, "0.0.0.0", "127.0.0.1"),
        ("workspace", {**WORKSPACE, "web": {"host_ip": "192.168.1.5"}}, "192.168.1.5", "127.0.0.1"),
        ("workspace", {**WORKSPACE, "project_dir": "relative/dir"}, "relative/dir", "absolute"),
        ("workspace", {**WORKSPACE, "shared_dir": "/nonexistent/shared"}, "/nonexistent/shared", "create it"),
        ("workspace", {**WORKSPACE, "limits": {"memory_mb": 0, "cpus": 1, "nproc": 10}}, "= 0", "valid value"),
        ("workspace", {**WORKSPACE, "limits": {"memory_mb": 512, "cpus": -1, "nproc": 10}}, "= -1", "valid value"),
        ("workspace", {**WORKSPACE, "colour": "blue"}, None, "remove it"),
    ],
)
@pytest.mark.usefixtures("on_developer_machine")
def test_bad_workspace_settings(key, value, shown, fix):
    message = rejected("ci", set_config={key: value})
    bad_key = {
        "0.0.0.0": "workspace.web.host_ip",
        "192.168.1.5": "workspace.web.host_ip",
        "relative/dir": "workspace.project_dir",
        "/nonexistent/shared": "workspace.shared_dir",
    }.get(shown)
    if bad_key is None and "user" in value and 0 in value["user"].values():
        bad_key = "workspace.user." + ("uid" if value["user"]["uid"] == 0 else "gid")
    elif bad_key is None and "limits" in value:
        bad_key = "workspace.limits." + ("memory_mb" if value["limits"]["memory_mb"] == 0 else "cpus")
    elif bad_key is None:
        bad_key = "workspace.colour"
    assert_names(message, bad_key, shown, fix)


@pytest.mark.usefixtures("on_developer_machine")
def test_unknown_top_level_key():
    message = rejected("ci", plain_config={"webpasword": "x"})
    assert_names(message, "webpasword", None, "remove it")


@pytest.mark.usefixtures("on_developer_machine")
def test_plain_text_secrets_are_refused():
    """The program: only the loader knows whether a config value is stored as a secret."""
    for key in ("web_password", "model_api_key", "executor_token", "conductor_token"):
        message = rejected_by_the_program("ci", plain_config={key: "hunter2-hunter2-hunter2-hunter2"})
        assert_names(message, key, None, "--secret")
        assert "hunter2" not in message, "the secret value must not be echoed"


@pytest.mark.usefixtures("on_developer_machine")
def test_secrets_set_as_secrets_are_accepted():
    declared = run_program("ci", secrets={"web_password": "correct-horse-battery-staple-1", "executor_token": "t" * 40})
    workspace = declared.container("workspace")[0]
    assert "OPENCODE_SERVER_PASSWORD=correct-horse-battery-staple-1" in workspace.inputs["envs"]
    assert "envs" in workspace.secret_inputs
    # The user's secrets replace generated ones: no password resource for them.
    generated = [r.name for r in declared.of_type(DYNAMIC)]
    assert not any("web-password" in name or "executor-token" in name for name in generated)


@pytest.mark.usefixtures("on_developer_machine")
def test_mutable_model_image_is_refused():
    model = {"backend": "vllm", "image": "vllm/vllm-openai:latest", "cache_dir": "/tmp/opencode-sandbox-test/hf"}
    assert_names(rejected("gpu", set_config={"model": model}), "model.image", "latest", "pin")
    model["image"] = "vllm/vllm-openai"
    assert_names(rejected("gpu", set_config={"model": model}), "model.image", "vllm/vllm-openai", "pin")


@pytest.mark.usefixtures("on_developer_machine")
def test_model_settings_are_validated_per_backend():
    bad = {
        "backend": "vllm",
        "image": "vllm/vllm-openai:v0.11.0",
        "cache_dir": "/tmp/x",
        "gpu_memory_utilization": 1.5,
        "max_model_len": 0,
    }
    message = rejected("gpu", set_config={"model": bad})
    assert_names(message, "model.gpu_memory_utilization", "1.5", "valid value")
    assert_names(message, "model.max_model_len", "0", "valid value")
    message = rejected("dev", set_config={"model": {"backend": "external", "base_url": "ftp://x", "model": "m"}})
    assert_names(message, "model.base_url", "ftp://x", "http")
    message = rejected("dev", set_config={"model": {"backend": "banana"}})
    assert "opencode-sandbox:model" in message and "banana" in message


@pytest.mark.usefixtures("on_developer_machine")
def test_egress_allowlist_takes_domain_names_only():
    for bad in ("https://pypi.org", "10.0.0.1", "*", "pypi.org:443", "*.*.org"):
        message = rejected("ci", set_config={"egress": {"allow": [bad]}})
        assert_names(message, "egress.allow.0", bad, "domain")


@pytest.mark.usefixtures("on_developer_machine")
def test_missing_required_setting():
    assert_names(rejected("ci", remove_config=("workspace",)), "workspace", None, "pulumi config set")
    assert_names(rejected("ci", set_config={"images": {}}), "images.base_image", None, "pulumi config set")


def test_workspace_user_defaults_to_the_invoking_user_but_never_root(developer_home):
    with developer_machine(developer_home, uid=1234, gid=1234):
        user = stack_settings("dev").workspace.user
    assert (user.uid, user.gid) == (1234, 1234)
    with developer_machine(developer_home, uid=0, gid=0):
        message = rejected("dev")
    assert_names(message, "workspace.user", None, "uid")


@pytest.mark.usefixtures("on_developer_machine")
def test_roles_never_share_an_executor_uid():
    message = rejected("ci", set_config={"executors": {"uid_base": 999, "count": 2}})
    assert_names(message, "executors.uid_base", "999", "uid_base")
    assert re.search(r"workspace\.user\.uid = 1000", message), message


@pytest.mark.usefixtures("on_developer_machine")
def test_the_model_gateway_has_a_uid_of_its_own():
    """gateways.uid_base + 3 is the model gateway's: it must not be the workspace's (Pulumi.ci.yaml: 1000)."""
    message = rejected("ci", set_config={"gateways": {"uid_base": 997}})
    assert_names(message, "gateways.uid_base", "997", "gateways.uid_base")
    assert re.search(r"\(997-1002\) include workspace\.user\.uid = 1000", message), message
    declared = run_program("ci", set_config={"gateways": {"uid_base": 994}})
    assert declared.container("model-gateway")[0].inputs["user"] == "997:10001"


@pytest.mark.usefixtures("on_developer_machine")
def test_the_conductor_and_its_gateway_have_uids_of_their_own():
    """gateways.uid_base + 4 is the conductor's, + 5 its ingress gateway's (the ci stack enables it)."""
    message = rejected("ci", set_config={"gateways": {"uid_base": 995}})
    assert re.search(r"\(995-1000\) include workspace\.user\.uid = 1000", message), message
    declared = run_program("ci")
    assert declared.container("conductor")[0].inputs["user"] == "10005:10001"
    gateway = next(c for c in declared.containers if c.inputs["name"].endswith("-ingress-conductor"))
    assert gateway.inputs["user"] == "10006:10001"


@pytest.mark.usefixtures("on_developer_machine")
def test_the_conductor_is_off_by_default_and_its_port_must_be_free():
    """(What a stack without the conductor declares: tests/fast/test_declared_stacks.py's plan tests.)"""
    assert not stack_settings("dev").conductor.enabled
    message = rejected("ci", set_config={"conductor": {"enabled": True, "host_port": 14096}})
    assert_names(message, "conductor.host_port", None, "another conductor.host_port")


@pytest.mark.usefixtures("on_developer_machine")
def test_every_problem_is_reported_at_once():
    message = rejected(
        "ci", set_config={"workspace": {**WORKSPACE, "user": {"uid": 0, "gid": 0}}, "executors": {"count": 0}}
    )
    assert message.count("Fix:") >= 3, message
