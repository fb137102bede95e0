"""The stack the runtime suites verify: deployed for the session, or one already running.

By default the session deploys the ``ci`` stack with the real Pulumi engine (``pulumi up`` on a
copy of the project, :mod:`harness.pulumi_cli`) and destroys it at the end (``pulumi
destroy``), also when tests fail. With
``OPENCODE_SANDBOX_TARGET=existing`` (and ``OPENCODE_SANDBOX_STACK=<name>``, default ``ci``)
it verifies a stack that is already running, e.g. a user's `pulumi up`, and deploys nothing.

Either way the stack is found on the engine by the labels every container and network carries
(``opencode-sandbox.stack``, ``opencode-sandbox.role``, ``opencode-sandbox.network``), so the same
tests verify both. Several test directories may ask for the stack in one session (the
integration suites and the end-to-end test): it is deployed once and torn down after the last.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.program import DeclaredStack, developer_machine, run_program
from harness.pulumi_cli import PulumiWorkspace
from harness.stack_cleanup import docker_client, remove_stack
from sandbox_model.destinations import INGRESS_LISTEN_PORT
from sandbox_model.naming import LABEL_NETWORK, LABEL_ROLE, LABEL_STACK, docker_name
from tests.support.requirements import require_toolchain

TARGET_ENV = "OPENCODE_SANDBOX_TARGET"
STACK_ENV = "OPENCODE_SANDBOX_STACK"
TARGETS = ("deploy", "existing")
#: The ingress gateway's port inside its container, as docker inspect keys its bindings.
INGRESS_PORT_KEY = f"{INGRESS_LISTEN_PORT}/tcp"


@dataclass(frozen=True)
class StackUnderTest:
    """A running stack as the tests see it (all names are Docker container/network names)."""

    stack: str
    #: role (sandbox_model.roles.Role value) -> the names of its containers, sorted.
    containers: Mapping[str, tuple[str, ...]]
    #: purpose (the network's opencode-sandbox.network label: model, executor, ...) -> network name.
    networks: Mapping[str, str]
    #: The web UI/API as the host reaches it: http://127.0.0.1:<web_port>.
    web_url: str
    web_port: int
    #: The Pulumi workspace that deployed it; None when the target is a stack that was already running.
    workspace: PulumiWorkspace | None = field(default=None, compare=False)
    #: What the program declares for it (under mocks, with the deployed stack's secrets and HOME).
    declared: DeclaredStack | None = field(default=None, compare=False)

    def one(self, role: str) -> str:
        """The single container of ``role`` (e.g. the workspace); fails when there is not exactly one."""
        names = self.containers.get(role, ())
        if len(names) != 1:
            raise LookupError(f"stack {self.stack!r} has {len(names)} {role} containers ({', '.join(names)}), not one")
        return names[0]

    @property
    def all_containers(self) -> tuple[str, ...]:
        return tuple(sorted(name for names in self.containers.values() for name in names))


def discover(
    client, stack: str, workspace: PulumiWorkspace | None = None, declared: DeclaredStack | None = None
) -> StackUnderTest:
    """Find a running stack by its labels."""
    label = f"{LABEL_STACK}={stack}"
    containers: dict[str, list[str]] = {}
    for info in client.api.containers(filters={"label": label}):
        role = info["Labels"].get(LABEL_ROLE)
        if role:
            containers.setdefault(role, []).append(info["Names"][0].lstrip("/"))
    if "workspace" not in containers:
        raise LookupError(
            f"no running workspace container is labelled {label}. Fix: deploy the stack "
            f"(`pulumi up --stack {stack}`), or unset {TARGET_ENV}"
        )
    networks = {
        info["Labels"][LABEL_NETWORK]: info["Name"]
        for info in client.api.networks(filters={"label": label})
        if LABEL_NETWORK in info["Labels"]
    }
    web = docker_name(stack, "ingress", "web")
    bindings = client.api.inspect_container(web)["HostConfig"]["PortBindings"].get(INGRESS_PORT_KEY) or []
    if len(bindings) != 1:
        raise LookupError(f"{web} publishes {INGRESS_PORT_KEY} {len(bindings)} times: {bindings}")
    host_ip, port = bindings[0]["HostIp"] or "0.0.0.0", int(bindings[0]["HostPort"])
    return StackUnderTest(
        stack=stack,
        containers={role: tuple(sorted(names)) for role, names in containers.items()},
        networks=networks,
        web_url=f"http://{host_ip}:{port}",
        web_port=port,
        workspace=workspace,
        declared=declared,
    )


def target_settings() -> tuple[str, str]:
    target = os.environ.get(TARGET_ENV, "deploy")
    if target not in TARGETS:
        raise ValueError(f"{TARGET_ENV}={target!r}: use one of {', '.join(TARGETS)}")
    return target, os.environ.get(STACK_ENV, "ci")


class _SharedStack:
    """One stack per session, whatever number of fixtures ask for it; torn down after the last."""

    def __init__(self):
        self.lock = threading.Lock()
        self.users = 0
        self.stack: StackUnderTest | None = None
        self.error: BaseException | None = None
        self.client = None

    @contextmanager
    def use(self, root: Path) -> Iterator[StackUnderTest]:
        with self.lock:
            if self.users == 0 and self.stack is None and self.error is None:
                self._start(root)
            self.users += 1
        try:
            if self.error is not None:
                raise self.error
            yield self.stack
        finally:
            with self.lock:
                self.users -= 1
                if self.users == 0:
                    self._stop()

    def _start(self, root: Path) -> None:
        target, stack = target_settings()
        self.client = docker_client()
        workspace = None
        try:
            if target == "deploy":
                remove_stack(self.client, stack)  # what an interrupted earlier session left behind
                workspace = PulumiWorkspace(root / "pulumi", root / "home")
                workspace.init_stack(stack)
                workspace.run("up", "--yes", "--stack", stack, "--skip-preview")
                self.stack = discover(self.client, stack, workspace, declared_like(workspace, stack))
            else:
                self.stack = discover(self.client, stack)
        except BaseException as exc:  # noqa: BLE001 - re-raised; every later user sees the same failure; nothing is left running
            if workspace is not None:
                _destroy(workspace, stack, self.client)
            self.error = exc

    def _stop(self) -> None:
        stack, self.stack = self.stack, None
        if stack is not None and stack.workspace is not None:
            _destroy(stack.workspace, stack.stack, self.client)


def _destroy(workspace: PulumiWorkspace, stack: str, client) -> None:
    try:
        workspace.run("destroy", "--yes", "--stack", stack, "--skip-preview")
    finally:
        remove_stack(client, stack)  # nothing may outlive the session, even when destroy failed


def declared_like(workspace: PulumiWorkspace, stack: str) -> DeclaredStack:
    """The program's declaration of a deployed stack: its settings, HOME and (generated) secrets."""
    outputs = workspace.outputs(stack)
    secrets = {
        key: outputs[key]
        for key in ("web_password", "executor_token", "model_api_key", "conductor_token")
        if outputs.get(key)
    }
    with developer_machine(workspace.home, uid=os.getuid(), gid=os.getgid()):
        return run_program(stack, secrets=secrets)


_SHARED = _SharedStack()


@pytest.fixture(scope="session")
def deployed_stack(tmp_path_factory) -> Iterator[StackUnderTest]:
    """The stack under test (see the module docstring); deployed once per session."""
    if target_settings()[0] == "deploy":
        require_toolchain("deploys the stack with the Pulumi CLI")
    with _SHARED.use(tmp_path_factory.mktemp("deploy")) as stack:
        yield stack


@pytest.fixture(scope="session")
def docker_api():
    """A docker SDK client for the engine the stack runs on."""
    client = docker_client(timeout=120)
    yield client
    client.close()


def requires_deployed(stack: StackUnderTest, why: str) -> PulumiWorkspace:
    """The workspace that deployed the stack; tests that need it skip (saying ``why``) on an existing stack."""
    if stack.workspace is None:
        pytest.skip(f"{why}: only on a stack this session deployed ({TARGET_ENV}=deploy)")
    return stack.workspace
