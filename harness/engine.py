"""Finding the Docker engine for tests that need one.

Tests marked ``docker`` skip with a clear reason when no engine answers; with
``CI=true`` a missing engine is a failure instead, because `.ci/run` always
provides one and a silent skip there would hide a broken pipeline.
"""

from __future__ import annotations

import functools
import os


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@functools.lru_cache(maxsize=1)
def engine_problem() -> str | None:
    """None when a Docker engine answers, otherwise why not."""
    try:
        import docker  # the docker SDK (test dependency)
    except ImportError:  # pragma: no cover - requirements-dev.txt installs it
        return "the 'docker' Python package is not installed"
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the daemon
        return f"no Docker engine answers ({exc.__class__.__name__}: {exc})"
    return None
