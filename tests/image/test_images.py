"""The workspace, ingress, egress and model-gateway images: what they contain, and their runtime contract under
the stack's hardening."""

from __future__ import annotations

import json
import secrets
import time
import uuid

import pytest

from harness.images import ImageBuildError, build_image
from stacks.settings import OPENCODE_VERSION
from tests.image.support import (
    IMAGES_TEST_LABEL,
    hardened_options,
    run_to_completion,
)

pytestmark = pytest.mark.docker

INGRESS_TAG = "opencode-sandbox/ingress:test"
EGRESS_TAG = "opencode-sandbox/egress:test"
MODEL_GATEWAY_TAG = "opencode-sandbox/model-gateway:test"
WORKSPACE_USER = "1234:1234"
SERVICE_USER = "20001:20001"
HEALTHY_TIMEOUT_S = 90
FAST_HEALTHCHECK = {"interval": 1_000_000_000, "timeout": 5_000_000_000, "retries": 3, "start_period": 1_000_000_000}

#: The workspace's writable paths under a read-only root, as the stack mounts them. /tmp
#: must allow exec: OpenCode (Bun) extracts native libraries there and dlopens them.
WORKSPACE_TMPFS = {
    "/home/opencode": "rw,nosuid,nodev,noexec,size=128m,uid=1234,gid=1234,mode=0700",
    "/home/opencode/.cache": "rw,nosuid,nodev,noexec,size=128m,uid=1234,gid=1234,mode=0700",
    "/tmp": "rw,nosuid,nodev,exec,size=128m",
    "/workspace": "rw,nosuid,nodev,size=16m,uid=1234,gid=1234",
}
OPENCODE_CONFIG = {
    "$schema": "https://opencode.ai/config.json",
    "model": "sandbox/test-model",
    "provider": {
        "sandbox": {
            "npm": "@ai-sdk/openai-compatible",
            "options": {"baseURL": "http://model-server:8000/v1"},
            "models": {"test-model": {}},
        }
    },
}


@pytest.fixture(scope="module")
def ingress_image(client) -> str:
    build_image(client, "ingress", INGRESS_TAG)
    return INGRESS_TAG


@pytest.fixture(scope="module")
def egress_image(client) -> str:
    build_image(client, "egress", EGRESS_TAG)
    return EGRESS_TAG


@pytest.fixture(scope="module")
def model_gateway_image(client) -> str:
    build_image(client, "model-gateway", MODEL_GATEWAY_TAG)
    return MODEL_GATEWAY_TAG


@pytest.fixture(params=["workspace", "ingress", "egress", "model_gateway"])
def image(request) -> str:
    return request.getfixturevalue(f"{request.param}_image")


def workspace_options() -> dict:
    return hardened_options("workspace", user=WORKSPACE_USER, tmpfs=WORKSPACE_TMPFS)


def workspace_environment(**extra: str) -> dict:
    return {
        "HOME": "/home/opencode",
        "OPENCODE_CONFIG_CONTENT": json.dumps(OPENCODE_CONFIG),
        "OPENCODE_SERVER_PASSWORD": "test-" + secrets.token_hex(8),
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        **extra,
    }


def wait_healthy(container) -> None:
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    while True:
        container.reload()
        state = container.attrs["State"]
        health = state.get("Health", {}).get("Status")
        if health == "healthy":
            return
        if state["Status"] != "running" or time.monotonic() > deadline:
            log = state.get("Health", {}).get("Log", [])[-2:]
            raise AssertionError(
                f"{container.name} is {state['Status']}/{health}; health log {log}\n"
                f"{container.logs().decode(errors='replace')[-3000:]}"
            )
        time.sleep(0.5)


# --- the images themselves ----------------------------------------------------------------


def test_no_setuid_or_setgid_file(client, image):
    code, output = run_to_completion(
        client,
        image,
        ["/", "-xdev", "-perm", "/6000"],
        {"user": "0", "entrypoint": ["find"], "labels": IMAGES_TEST_LABEL},
    )
    assert code == 0, output
    assert output.strip() == "", f"setuid/setgid bits in {image}:\n{output}"


def test_default_user_is_not_root(client, image):
    user = client.images.get(image).attrs["Config"]["User"]
    assert user, f"{image} runs as root by default"
    uid = user.split(":")[0]
    assert uid not in ("0", "root"), f"{image} runs as {user}"


def test_healthcheck_and_oci_labels_are_declared(client, image):
    config = client.images.get(image).attrs["Config"]
    assert config["Healthcheck"]["Test"][0] in ("CMD", "CMD-SHELL"), config["Healthcheck"]
    labels = config["Labels"] or {}
    for key in ("org.opencontainers.image.title", "org.opencontainers.image.description"):
        assert labels.get(key), f"{image} lacks the label {key}"


def test_workspace_has_no_sudo_and_is_versioned(client, workspace_image):
    code, output = run_to_completion(
        client, workspace_image, ["bash", "-c", "command -v sudo"], {"labels": IMAGES_TEST_LABEL}
    )
    assert code == 1 and output.strip() == "", f"sudo is installed: {output}"
    labels = client.images.get(workspace_image).attrs["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == OPENCODE_VERSION


@pytest.mark.parametrize(
    ("integrity", "message"),
    [
        ("sha512-" + "A" * 86 + "==", "checksum mismatch"),  # well-formed, but not this tarball's digest
        ("sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "OPENCODE_INTEGRITY must be an npm sha512 integrity"),
    ],
)
def test_workspace_build_fails_unless_the_download_matches_its_integrity(client, integrity, message):
    with pytest.raises(ImageBuildError, match=message):
        build_image(client, "workspace", "opencode-sandbox/workspace:integrity-test", {"OPENCODE_INTEGRITY": integrity})


# --- the workspace's runtime contract: read-only, UID 1234 without a passwd entry ---------


def test_opencode_runs_read_only_as_an_unnamed_uid(client, workspace_image):
    code, output = run_to_completion(
        client, workspace_image, ["opencode", "--version"], workspace_options(), environment=workspace_environment()
    )
    assert code == 0, output
    assert output.strip() == OPENCODE_VERSION


def test_opencode_accepts_the_config_from_the_environment(client, workspace_image):
    code, output = run_to_completion(
        client,
        workspace_image,
        ["opencode", "debug", "config"],
        workspace_options(),
        environment=workspace_environment(),
    )
    assert code == 0, output
    resolved = json.loads(output[output.index("{") :])
    assert resolved["model"] == "sandbox/test-model"
    assert resolved["provider"]["sandbox"]["options"]["baseURL"] == "http://model-server:8000/v1"


def test_opencode_rejects_an_invalid_config(client, workspace_image):
    environment = workspace_environment(OPENCODE_CONFIG_CONTENT=json.dumps({"model": 5}))
    code, output = run_to_completion(
        client, workspace_image, ["opencode", "debug", "config"], workspace_options(), environment=environment
    )
    assert code != 0
    assert "OPENCODE_CONFIG_CONTENT" in output


def test_agent_tools_run_read_only_as_an_unnamed_uid(client, workspace_image):
    script = "git --version && rg --version && python3 --version && id -un 2>&1; echo HOME=$HOME"
    code, output = run_to_completion(
        client, workspace_image, ["bash", "-c", script], workspace_options(), environment=workspace_environment()
    )
    assert code == 0, output
    assert "git version" in output and "ripgrep" in output and "Python 3" in output
    assert "no name for user ID 1234" in output or "cannot find name for user ID 1234" in output
    assert "HOME=/home/opencode" in output


def test_opencode_serves_healthy_with_terminal_and_shell(client, workspace_image):
    environment = workspace_environment()
    password = environment["OPENCODE_SERVER_PASSWORD"]
    container = client.containers.run(
        workspace_image,
        detach=True,
        name=f"images-test-workspace-{uuid.uuid4().hex[:8]}",
        environment=environment,
        network_mode="none",
        healthcheck=FAST_HEALTHCHECK,
        **workspace_options(),
    )
    try:
        wait_healthy(container)  # the image's own HEALTHCHECK, with the password from the environment

        def api(method: str, path: str, body: dict | None = None, user: str = f"opencode:{password}"):
            command = ["curl", "-s", "-w", "\n%{http_code}", "-u", user, "-X", method, f"http://127.0.0.1:4096{path}"]
            if body is not None:
                command += ["-H", "content-type: application/json", "-d", json.dumps(body)]
            result = container.exec_run(command)
            text, _, status = result.output.decode().rpartition("\n")
            return int(status), text

        assert api("GET", "/global/health", user="opencode:wrong")[0] == 401
        wrong = container.exec_run(["opencode-healthcheck"], environment={"OPENCODE_SERVER_PASSWORD": "wrong"})
        assert wrong.exit_code == 1

        status, text = api("POST", "/pty", {"command": "/bin/bash"})
        assert status == 200 and json.loads(text)["status"] == "running", text

        status, text = api("POST", "/session", {})
        assert status == 200, text
        session = json.loads(text)["id"]
        status, text = api(
            "POST", f"/session/{session}/shell", {"agent": "build", "command": "echo shell-ok; python3 -c 'print(6*7)'"}
        )
        assert status == 200, text
        assert json.loads(text)["parts"][0]["state"]["output"] == "shell-ok\n42\n"

        logs = container.logs().decode(errors="replace")
        assert "ERR_DLOPEN_FAILED" not in logs and "EACCES" not in logs, logs[-3000:]
    finally:
        container.remove(force=True)


# --- the ingress gateway --------------------------------------------------------------------


@pytest.fixture
def private_network(client):
    network = client.networks.create(
        f"images-test-{uuid.uuid4().hex[:8]}", driver="bridge", internal=True, labels=IMAGES_TEST_LABEL
    )
    try:
        yield network
    finally:
        network.reload()
        for container in network.containers:
            container.remove(force=True)
        network.remove()


def start_on(
    client, network, image: str, alias: str, *, command=None, entrypoint=None, environment=None, healthcheck=None
):
    options = hardened_options("service", user=SERVICE_USER, tmpfs={})
    return client.containers.run(
        image,
        command,
        detach=True,
        entrypoint=entrypoint,
        environment=environment or {},
        healthcheck=healthcheck,
        name=f"images-test-{alias}-{uuid.uuid4().hex[:8]}",
        network=network.name,
        networking_config={network.name: client.api.create_endpoint_config(aliases=[alias])},
        **options,
    )


def test_socat_forwards_between_containers(client, ingress_image, private_network):
    start_on(
        client,
        private_network,
        ingress_image,
        "backend",
        entrypoint=["socat"],
        command=["TCP-LISTEN:9000,fork,reuseaddr", "EXEC:cat"],
    )
    ingress = start_on(
        client,
        private_network,
        ingress_image,
        "ingress",
        healthcheck=FAST_HEALTHCHECK,
        environment={"INGRESS_TARGET_HOST": "backend", "INGRESS_TARGET_PORT": "9000"},
    )
    wait_healthy(ingress)

    token = secrets.token_hex(8)
    client_script = f'exec 3<>/dev/tcp/ingress/8080 && echo {token} >&3 && read -r -t 10 answer <&3 && echo "$answer"'
    probe = start_on(
        client, private_network, ingress_image, "client", entrypoint=["bash", "-c"], command=[client_script]
    )
    status = probe.wait(timeout=60)
    output = probe.logs().decode(errors="replace")
    assert status["StatusCode"] == 0, output
    assert output.strip() == token
    assert "accepting connection" in ingress.logs().decode(errors="replace")

    # The healthcheck looks for the listener on the configured port, not for any socket.
    elsewhere = ingress.exec_run(["ingress-healthcheck"], environment={"INGRESS_LISTEN_PORT": "9"})
    assert elsewhere.exit_code == 1, elsewhere.output


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"INGRESS_TARGET_PORT": "80"}, "INGRESS_TARGET_HOST is not set"),
        ({"INGRESS_TARGET_HOST": "backend,fork", "INGRESS_TARGET_PORT": "80"}, "INGRESS_TARGET_HOST must be"),
        ({"INGRESS_TARGET_HOST": "backend", "INGRESS_TARGET_PORT": "80:exec"}, "INGRESS_TARGET_PORT must be"),
        (
            {"INGRESS_TARGET_HOST": "backend", "INGRESS_TARGET_PORT": "80", "INGRESS_LISTEN_PORT": "70000"},
            "INGRESS_LISTEN_PORT must be",
        ),
        (
            {"INGRESS_TARGET_HOST": "backend", "INGRESS_TARGET_PORT": "80", "INGRESS_MAX_CHILDREN": "0"},
            "INGRESS_MAX_CHILDREN must be",
        ),
    ],
)
def test_ingress_refuses_bad_configuration(client, ingress_image, environment, message):
    options = hardened_options("service", user=SERVICE_USER, tmpfs={})
    code, output = run_to_completion(client, ingress_image, [], options, environment=environment)
    assert code == 64, output
    assert message in output
