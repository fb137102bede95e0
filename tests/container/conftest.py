"""Fixtures for container tests: the executor image, hardened executor containers, private networks.

Everything created here carries the label ``opencode-sandbox.test=executor`` and is removed at the
end, on failure too; leftovers of an interrupted earlier run are removed before starting.
The host talks to the containers over a private bridge network this suite creates (nothing is
published on the host).
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field

import pytest

from tests.support.images import REPO_ROOT, build_image

TEST_LABEL = {"opencode-sandbox.test": "executor"}
EXECUTOR_TAG = "opencode-sandbox/executor:test"
EXECUTOR_PORT = 8080
EXECUTOR_USER = "20000:20000"
SECCOMP_PROFILE = REPO_ROOT / "images" / "seccomp" / "executor.json"
STARTUP_TIMEOUT_S = 30


def _remove_labelled(client) -> None:
    for container in client.containers.list(all=True, filters={"label": "opencode-sandbox.test=executor"}):
        container.remove(force=True)
    for network in client.networks.list(filters={"label": "opencode-sandbox.test=executor"}):
        network.remove()


@pytest.fixture(scope="session")
def docker_client():
    import docker

    client = docker.from_env(timeout=120)
    _remove_labelled(client)
    try:
        yield client
    finally:
        _remove_labelled(client)
        client.close()


@pytest.fixture(scope="session")
def executor_image(docker_client) -> str:
    build_image(docker_client, "executor", EXECUTOR_TAG)
    return EXECUTOR_TAG


@pytest.fixture(scope="session")
def executor_seccomp() -> str:
    """The executor's seccomp profile as JSON text (passed inline, as the stack passes it)."""
    if not SECCOMP_PROFILE.is_file():
        pytest.fail(f"the executor seccomp profile is missing: {SECCOMP_PROFILE} (images/seccomp/generate.py)")
    return SECCOMP_PROFILE.read_text()


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


def hardened_run_options(seccomp_json: str, token: str) -> dict:
    """The stack's runtime hardening for an executor container, as docker SDK arguments."""
    import docker.types

    return {
        "user": EXECUTOR_USER,
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true", "seccomp=" + seccomp_json],
        "mem_limit": "512m",
        "memswap_limit": "512m",  # no swap: a memory bomb meets the OOM killer, not the disk
        "nano_cpus": 1_000_000_000,
        "ulimits": [docker.types.Ulimit(name="nproc", soft=256, hard=256)],
        "tmpfs": {"/tmp": "size=64m"},
        "log_config": docker.types.LogConfig(type="json-file", config={"max-size": "1m", "max-file": "2"}),
        "init": False,
        "environment": {"EXECUTOR_TOKEN": token},
    }


@pytest.fixture(scope="session")
def start_executor(docker_client, executor_image, executor_seccomp):
    """Starts a hardened executor container on a given network and waits until /health answers."""
    import httpx2

    clients = []

    def start(network, *, healthcheck: dict | None = None, environment: dict | None = None) -> ExecutorContainer:
        token = "test-" + secrets.token_hex(16)
        options = hardened_run_options(executor_seccomp, token)
        options["environment"].update(environment or {})
        if healthcheck is not None:
            options["healthcheck"] = healthcheck
        container = docker_client.containers.run(
            executor_image,
            detach=True,
            name=f"executor-test-{uuid.uuid4().hex[:8]}",
            network=network.name,
            labels=TEST_LABEL,
            **options,
        )
        container.reload()
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
