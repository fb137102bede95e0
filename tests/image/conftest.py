"""Fixtures for container tests: the executor image, executor containers started exactly as the ci stack
declares them (the program's inputs under mocks, created by the real provider), private networks.

Everything created here carries the label ``opencode-sandbox.test=executor`` and is removed at the
end, on failure too; leftovers of an interrupted earlier run are removed before starting.
The host talks to the containers over a private bridge network this suite creates (nothing is
published on the host).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.images import build_image
from tests.image.support import remove_labelled, suite_label

TEST_LABEL = suite_label("executor")
WORKSPACE_TAG = "opencode-sandbox/workspace:test"
EXECUTOR_TAG = "opencode-sandbox/executor:test"
EXECUTOR_PORT = 8080
STARTUP_TIMEOUT_S = 30


@pytest.fixture(scope="session")
def docker_client():
    import docker

    client = docker.from_env(timeout=120)
    remove_labelled(client, "executor")
    try:
        yield client
    finally:
        remove_labelled(client, "executor")
        client.close()


@pytest.fixture(scope="module")
def client(docker_client):
    """The engine for the image suites, their objects (label ``images``) removed before and after."""
    remove_labelled(docker_client, "images")
    try:
        yield docker_client
    finally:
        remove_labelled(docker_client, "images")


@pytest.fixture(scope="module")
def workspace_image(client) -> str:
    build_image(client, "workspace", WORKSPACE_TAG)
    return WORKSPACE_TAG


@pytest.fixture(scope="session")
def executor_image(docker_client) -> str:
    build_image(docker_client, "executor", EXECUTOR_TAG)
    return EXECUTOR_TAG


@pytest.fixture(scope="session")
def make_network(docker_client):
    """Creates bridge networks (``internal`` by default: no way out) and removes them at the end."""
    created = []

    def make(internal: bool = True):
        network = docker_client.networks.create(
            f"executor-test-{uuid.uuid4().hex[:8]}", driver="bridge", internal=internal, labels=TEST_LABEL
        )
        created.append(network)
        return network

    try:
        yield make
    finally:
        for network in created:
            network.reload()
            for container in network.containers:
                container.remove(force=True)
            network.remove()


@dataclass
class ExecutorContainer:
    container: object
    ip: str
    token: str
    http: object = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{EXECUTOR_PORT}"

    def health(self):
        return self.http.get("/health", timeout=5)

    def run(self, language: str, source: str, **options) -> dict:
        """POST /v1/run; returns the JSON result (asserting a 200)."""
        response = self.http.post("/v1/run", json={"language": language, "source": source, **options}, timeout=120)
        assert response.status_code == 200, f"/v1/run answered {response.status_code}: {response.text}"
        return response.json()

    def logs(self) -> str:
        return self.container.logs().decode(errors="replace")

    def state(self) -> dict:
        self.container.reload()
        return self.container.attrs["State"]


@pytest.fixture(scope="session")
def declared_executor(developer_home):
    """The ci stack's first executor container as the program declares it: the stack's hardening."""
    from harness.program import developer_machine, run_program

    with developer_machine(developer_home):
        declared = run_program("ci")
    executors = sorted(declared.container("executor"), key=lambda c: c.inputs["name"])
    assert executors, "the ci stack declares no executor"
    return executors[0]  # registration order varies between runs; executor-0 is always there


def _executor_override(
    declared, *, name: str, image: str, network: str, token: str, environment: dict | None, healthcheck: dict | None
) -> dict:
    """What a test changes of the declared executor: identity, image, network, token; never the hardening."""
    from sandbox_model.bearer_gate import token_digest
    from sandbox_model.naming import LABEL_STACK

    envs = [env for env in declared.inputs["envs"] if not env.startswith("EXECUTOR_TOKEN_SHA256=")]
    envs += [
        f"EXECUTOR_TOKEN_SHA256={token_digest(token)}",
        *(f"{key}={value}" for key, value in (environment or {}).items()),
    ]
    labels = [label for label in declared.inputs["labels"] if label["label"] != LABEL_STACK]
    labels += [
        {"label": LABEL_STACK, "value": "container-tests"},
        *({"label": key, "value": value} for key, value in TEST_LABEL.items()),
    ]
    override = {
        "name": name,
        "image": image,
        "envs": envs,
        "labels": labels,
        "networksAdvanced": [{"name": network}],
        "wait": False,
    }
    if healthcheck is not None:
        override["healthcheck"] = healthcheck
    return override


@pytest.fixture(scope="session")
def start_executor(docker_client, executor_image, declared_executor, tmp_path_factory):
    """Starts an executor container exactly as the stack declares one (the program's inputs, created
    by the real provider through `pulumi up`), on a given network, and waits until /health answers."""
    import httpx2

    from harness.pulumi_cli import ONE_CONTAINER_PROGRAM, PulumiWorkspace
    from tests.support.requirements import require_toolchain

    require_toolchain("starts executors with the Pulumi CLI")
    root = tmp_path_factory.mktemp("executors")
    pulumi_cli = PulumiWorkspace(root / "pulumi", root / "home", program=ONE_CONTAINER_PROGRAM)
    clients, stacks = [], []

    # The declared bind sources (the project, read-only), as `pulumi up` of the stack makes them first.
    for mount in declared_executor.inputs.get("mounts") or []:
        if mount["type"] == "bind":
            Path(mount["source"]).mkdir(parents=True, exist_ok=True)
            Path(mount["source"]).chmod(0o755)  # executors enter it as others (components/host_dirs.py)

    def start(network, *, healthcheck: dict | None = None, environment: dict | None = None) -> ExecutorContainer:
        token = "test-" + secrets.token_hex(16)
        name = f"executor-test-{uuid.uuid4().hex[:8]}"
        override = _executor_override(
            declared_executor,
            name=name,
            image=executor_image,
            network=network.name,
            token=token,
            environment=environment,
            healthcheck=healthcheck,
        )
        pulumi_cli.init_stack(name)
        stacks.append(name)
        pulumi_cli.run("config", "set", "--stack", name, "inputs", json.dumps({**declared_executor.inputs, **override}))
        pulumi_cli.run("up", "--yes", "--stack", name, "--skip-preview")
        container = docker_client.containers.get(name)
        ip = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
        http = httpx2.Client(
            base_url=f"http://{ip}:{EXECUTOR_PORT}", headers={"Authorization": f"Bearer {token}"}, trust_env=False
        )
        clients.append(http)
        executor = ExecutorContainer(container=container, ip=ip, token=token, http=http)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                if executor.health().status_code == 200:
                    return executor
            except httpx2.TransportError:
                pass
            if executor.state()["Status"] != "running" or time.monotonic() > deadline:
                raise RuntimeError(f"the executor container did not come up:\n{executor.logs()[-3000:]}")
            time.sleep(0.2)

    try:
        yield start
    finally:
        for http in clients:
            http.close()
        for name in stacks:
            pulumi_cli.run("destroy", "--yes", "--stack", name, "--skip-preview", check=False)
