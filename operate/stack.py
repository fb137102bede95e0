"""A running stack as the operator commands see it: its containers on the Docker engine, by label."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox_model.destinations import EXECUTOR_MCP_NAME, PROJECT_MOUNT
from sandbox_model.naming import LABEL_ROLE, LABEL_STACK
from sandbox_model.roles import Role

#: The exit status of every command that could not start (no engine, no such stack, bad arguments).
EXIT_CANNOT_START = 2


class OperateError(Exception):
    """Something the user can fix before a command can start; the message says what and how."""


def docker_client(timeout: float | None = 60):
    """A docker SDK client for the engine in the environment (DOCKER_HOST, or the local socket)."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise OperateError(
            f"no Docker engine answers ({exc}). Fix: start Docker, or point DOCKER_HOST at the engine the stack runs on"
        ) from None
    return client


@dataclass(frozen=True)
class StackContainer:
    """One container of the stack: its ``docker inspect`` document, and what the commands read from it."""

    attrs: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.attrs["Name"].lstrip("/")

    @property
    def id(self) -> str:
        return self.attrs["Id"]

    @property
    def role(self) -> str:
        return self.attrs["Config"]["Labels"].get(LABEL_ROLE, "")

    @property
    def running(self) -> bool:
        return bool(self.attrs["State"].get("Running"))

    @property
    def state(self) -> str:
        """running, exited (with its code), restarting, created, paused or dead."""
        state = self.attrs["State"]
        status = state.get("Status", "unknown")
        return f"exited ({state.get('ExitCode')})" if status == "exited" else status

    @property
    def health(self) -> str:
        """healthy, unhealthy, starting, or ``-`` (no healthcheck, or not running)."""
        health = self.attrs["State"].get("Health")
        return health.get("Status", "-") if health and self.running else "-"

    @property
    def restarts(self) -> int:
        return int(self.attrs.get("RestartCount") or 0)

    def env(self, name: str) -> str | None:
        """One variable of the container's environment (never the whole of it: secrets are there)."""
        for entry in self.attrs["Config"].get("Env") or ():
            key, _, value = entry.partition("=")
            if key == name:
                return value
        return None

    def mount_source(self, target: str) -> Path | None:
        for mount in self.attrs.get("Mounts") or ():
            if mount.get("Destination") == target:
                return Path(mount["Source"])
        return None

    @property
    def user_ids(self) -> tuple[int, int] | None:
        """The numeric ``uid:gid`` the container runs as (every role of the stack has one)."""
        user = self.attrs["Config"].get("User") or ""
        uid, _, gid = user.partition(":")
        return (int(uid), int(gid)) if uid.isdigit() and gid.isdigit() else None


def running_stacks(client) -> list[str]:
    """The names of the stacks with at least one running container on this engine."""
    names = {info["Labels"].get(LABEL_STACK) for info in client.api.containers(filters={"label": LABEL_STACK})}
    return sorted(name for name in names if name)


def deploy_hint(stack: str) -> str:
    return f"bash scripts/up {stack}"


@dataclass(frozen=True)
class RunningStack:
    stack: str
    containers: tuple[StackContainer, ...]

    def of(self, role: Role) -> list[StackContainer]:
        return sorted((c for c in self.containers if c.role == role.value), key=lambda c: c.name)

    def workspace(self) -> StackContainer:
        """The stack's workspace container, running; otherwise an error that says how to bring it up."""
        found = self.of(Role.WORKSPACE)
        if len(found) != 1:
            raise OperateError(
                f"stack {self.stack!r} has {len(found)} workspace containers, not one. Fix: {deploy_hint(self.stack)}"
            )
        workspace = found[0]
        if not workspace.running:
            raise OperateError(
                f"the workspace of stack {self.stack!r} ({workspace.name}) is {workspace.state}. "
                f"Fix: {deploy_hint(self.stack)} (it starts every container again)"
            )
        return workspace


def find_stack(client, stack: str) -> RunningStack:
    """The stack's containers, running or not; an error naming the running stacks when it has none running."""
    infos = client.api.containers(all=True, filters={"label": f"{LABEL_STACK}={stack}"})
    containers = tuple(StackContainer(client.api.inspect_container(info["Id"])) for info in infos)
    if not any(c.running for c in containers):
        others = running_stacks(client)
        running = f"running stacks here: {', '.join(others)}" if others else "no stack is running here"
        raise OperateError(
            f"no running stack {stack!r} on this Docker engine ({running}). Fix: deploy it: {deploy_hint(stack)}"
        )
    return RunningStack(stack=stack, containers=tuple(sorted(containers, key=lambda c: c.name)))


def project_dir(workspace: StackContainer) -> Path:
    """The project directory on this host: the source of the workspace's ``/workspace`` mount."""
    source = workspace.mount_source(PROJECT_MOUNT)
    if source is None:
        raise OperateError(f"{workspace.name} has no {PROJECT_MOUNT} mount: it is not a workspace of this project")
    return source


def executor_approval(workspace: StackContainer) -> str | None:
    """``allow`` or ``ask``: the rule for the executor tools in the workspace's generated OpenCode config."""
    try:
        config = json.loads(workspace.env("OPENCODE_CONFIG_CONTENT") or "{}")
    except ValueError:
        return None
    return (config.get("permission") or {}).get(f"{EXECUTOR_MCP_NAME}_*")


def run_command(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a command's ``main``, turning an :class:`OperateError` into its message and exit status 2."""
    try:
        return main(argv)
    except OperateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
