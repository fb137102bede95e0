"""Suite-wide fixtures and rules: the cost markers, the ``docker``/``pulumi`` markers, the committed stacks under mocks."""

from __future__ import annotations

import os

# gRPC (the policy pack's analyzer client; pulumi) installs fork handlers that restart its poller in
# a forked child; a test that then starts a subprocess (the executor's job launcher) can see that
# child abort before exec. The suite never forks a process that uses gRPC, so switch them off,
# before anything imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import glob
import re
from pathlib import Path

import pytest

from harness.engine import engine_problem, in_ci
from harness.program import STACKS, developer_machine, run_program
from harness.pulumi_cli import toolchain_problem

PEM = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def _require(items, marker_name: str, problem: str | None, what: str, fixture: str) -> None:
    needing = [item for item in items if item.get_closest_marker(marker_name)]
    if not needing or problem is None:
        return
    if in_ci():
        # .ci/run always provides it: its absence is a broken pipeline.
        marker = pytest.mark.usefixtures(fixture)
    else:
        marker = pytest.mark.skip(reason=f"needs {what}: {problem}")
    for item in needing:
        item.add_marker(marker)


#: The top directory of tests/ a test lives in is its cost class, and its marker (pyproject.toml).
COST_CLASSES = ("fast", "host", "image", "stack", "docs")
TESTS_DIR = Path(__file__).resolve().parent


def _cost_class(item) -> str:
    parts = Path(item.path).resolve().relative_to(TESTS_DIR).parts
    if len(parts) < 2 or parts[0] not in COST_CLASSES:
        raise pytest.UsageError(f"{item.nodeid}: every test lives under one of tests/{{{','.join(COST_CLASSES)}}}/")
    return parts[0]


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(getattr(pytest.mark, _cost_class(item)))
    _require(
        items,
        "docker",
        engine_problem() if any(i.get_closest_marker("docker") for i in items) else None,
        "the Docker engine",
        "_engine_required_in_ci",
    )
    _require(items, "pulumi", toolchain_problem(), "the Pulumi CLI", "_toolchain_required_in_ci")


@pytest.fixture
def _engine_required_in_ci():
    pytest.fail(f"CI=true but the Docker engine is missing: {engine_problem()}")


@pytest.fixture
def _toolchain_required_in_ci():
    pytest.fail(f"CI=true but the Pulumi toolchain is missing: {toolchain_problem()}")


def _any_certificate() -> str:
    """A real PEM certificate standing in for a proxy CA (the stack only checks it is one)."""
    for path in sorted(glob.glob("/etc/ssl/certs/*.pem")):
        match = PEM.search(Path(path).read_text(errors="replace"))
        if match:
            return match.group(0) + "\n"
    raise RuntimeError("no PEM certificate on this machine to stand in for an extra CA")


@pytest.fixture(scope="session")
def developer_home(tmp_path_factory) -> Path:
    """A home directory holding what the committed stacks expect on a developer's machine."""
    home = tmp_path_factory.mktemp("home")
    ca = home / ".cache" / "opencode-sandbox" / "extra-ca.pem"
    ca.parent.mkdir(parents=True)
    ca.write_text(_any_certificate())
    return home


@pytest.fixture
def on_developer_machine(developer_home):
    with developer_machine(developer_home):
        yield developer_home


@pytest.fixture(scope="session")
def declared_stacks(developer_home):
    """Every committed stack's declared resources (run once per session)."""
    with developer_machine(developer_home):
        return {stack: run_program(stack) for stack in STACKS}
