"""Fixtures for the runtime suites (marker ``docker``): a running stack, verified from outside and inside.

Contract (other suites, e.g. test_egress_boundary.py, rely on it; keep it stable):

``deployed_stack`` (session) -> :class:`tests.stack.target.StackUnderTest`
    ``.stack``       the stack name (``ci`` unless OPENCODE_SANDBOX_STACK says otherwise)
    ``.containers``  role -> tuple of container names, sorted; roles are the catalog's
                     (``model``, ``model-gateway``, ``workspace``, ``executor``, ``ingress-gateway``,
                     ``egress-gateway``)
    ``.one(role)``   the single container of a role, e.g. ``deployed_stack.one("workspace")``
    ``.networks``    purpose -> network name (``model``, ``model-upstream``, ``executor``, ``ingress``, ``edge``, ``egress``,
                     ``outside``: the networks' ``opencode-sandbox.network`` label)
    ``.web_url``/``.web_port``  the web UI on the host (http://127.0.0.1:<port>)
    ``.workspace``   the Pulumi workspace that deployed it (harness/pulumi_cli.py), or None
                     for an existing stack; ``.declared`` what the program declares for it
  By default the ``ci`` stack is deployed once per session with ``pulumi up`` (the real engine) and
  destroyed at the end with ``pulumi destroy`` (also when tests fail). ``OPENCODE_SANDBOX_TARGET=existing`` verifies a
  stack already running (a user's `pulumi up`; set ``OPENCODE_SANDBOX_STACK``) and deploys nothing.

``docker_api`` (session) -> a docker SDK client for that engine.

``container_host(name)`` (:mod:`tests.stack.runtime`, also a fixture returning the function)
    a testinfra host running commands inside the container with ``docker exec``, as the
    container's own user and under its seccomp profile and limits:
    ``container_host(deployed_stack.one("workspace")).run("id -u")``.
"""

from __future__ import annotations

import pytest

from tests.stack import runtime
from tests.stack.target import deployed_stack, docker_api  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def container_host():
    """``container_host(name)`` -> a testinfra host inside that container."""
    return runtime.container_host
