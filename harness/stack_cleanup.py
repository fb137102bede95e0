"""Finding and removing what a stack left on the engine, by its label ``opencode-sandbox.stack``."""

from __future__ import annotations

import sys
from collections.abc import Callable

from sandbox_model.naming import LABEL_STACK

#: docker SDK client timeout: image builds and health waits are long calls.
CLIENT_TIMEOUT_S = 900


def docker_client(timeout: int = CLIENT_TIMEOUT_S):
    import docker

    return docker.from_env(timeout=timeout)


def _stderr(message: str) -> None:
    print(f"[cleanup] {message}", file=sys.stderr, flush=True)


def remove_stack(client, stack: str, log: Callable[[str], None] = _stderr) -> list[str]:
    """Remove every container, network and volume labelled ``opencode-sandbox.stack=<stack>``."""
    label = f"{LABEL_STACK}={stack}"
    removed = []
    for info in client.api.containers(all=True, filters={"label": label}):
        client.api.remove_container(info["Id"], force=True, v=True)
        removed.append(f"container {info['Names'][0].lstrip('/')}")
    for info in client.api.networks(filters={"label": label}):
        client.api.remove_network(info["Id"])
        removed.append(f"network {info['Name']}")
    for info in client.api.volumes(filters={"label": label}).get("Volumes") or []:
        client.api.remove_volume(info["Name"])
        removed.append(f"volume {info['Name']}")
    if removed:
        log(f"removed {len(removed)} object(s) of stack {stack!r}: {', '.join(removed)}")
    return removed
