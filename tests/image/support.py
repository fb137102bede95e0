"""Helpers of the container suites: probes in the project's images, and cleaning up after a suite.

Everything a suite creates carries the label ``opencode-sandbox.test=<suite>``; ``remove_labelled``
removes a suite's containers and networks (before it starts: leftovers of an interrupted run; and
after it, failures included).
"""

from __future__ import annotations

import uuid

from sandbox_model.paths import REPO_ROOT
from sandbox_model.security import baseline

TEST_LABEL_KEY = "opencode-sandbox.test"


def suite_label(suite: str) -> dict[str, str]:
    return {TEST_LABEL_KEY: suite}


def remove_labelled(client, suite: str) -> None:
    """A suite's containers, then its networks (unused once the containers are gone)."""
    selector = {"label": f"{TEST_LABEL_KEY}={suite}"}
    for container in client.containers.list(all=True, filters=selector):
        container.remove(force=True)
    for network in client.networks.list(filters=selector):
        network.remove()


IMAGES_TEST_LABEL = suite_label("images")
PROBE_USER = "1234:1234"
SECCOMP_DIR = REPO_ROOT / "images" / "seccomp"


def seccomp_json(profile: str) -> str:
    return (SECCOMP_DIR / f"{profile}.json").read_text()


def hardened_options(profile: str | None, *, user: str = PROBE_USER, tmpfs: dict[str, str] | None = None) -> dict:
    """docker SDK arguments like the stack's hardening (its constants from the catalog) for probing a
    profile in any image; ``profile=None`` keeps Docker's default seccomp, the probes' control."""
    import docker.types

    security_opt = [baseline.NO_NEW_PRIVILEGES]
    if profile is not None:
        security_opt.append("seccomp=" + seccomp_json(profile))
    return {
        "user": user,
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": security_opt,
        "mem_limit": "512m",
        "nano_cpus": 1_000_000_000,
        "ulimits": [docker.types.Ulimit(name="nproc", soft=512, hard=512)],
        "tmpfs": tmpfs if tmpfs is not None else {"/tmp": "rw,nosuid,nodev,noexec,size=64m"},
        "log_config": docker.types.LogConfig(type=baseline.LOG_DRIVER, config=dict(baseline.LOG_OPTS)),
        "init": False,
        "labels": IMAGES_TEST_LABEL,
    }


def run_to_completion(
    client, image: str, command: list[str], options: dict, environment: dict | None = None, timeout: int = 120
) -> tuple[int, str]:
    """Runs a container to its end; returns (exit code, combined output) and always removes it."""
    container = client.containers.run(
        image,
        command,
        detach=True,
        name=f"images-test-{uuid.uuid4().hex[:8]}",
        environment=environment or {},
        network_mode="none",
        **options,
    )
    try:
        status = container.wait(timeout=timeout)
        return status["StatusCode"], container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
