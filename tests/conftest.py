"""Suite-wide rules: the ``docker`` marker and what happens without an engine."""

from __future__ import annotations

import pytest

from tests.support.engine import engine_problem, in_ci


def pytest_collection_modifyitems(config, items):
    needs_engine = [item for item in items if item.get_closest_marker("docker")]
    if not needs_engine:
        return
    problem = engine_problem()
    if problem is None:
        return
    if in_ci():
        # .ci/run always provides an engine: its absence is a broken pipeline.
        marker = pytest.mark.usefixtures("_engine_required_in_ci")
    else:
        marker = pytest.mark.skip(reason=f"needs the Docker engine: {problem}")
    for item in needs_engine:
        item.add_marker(marker)


@pytest.fixture
def _engine_required_in_ci():
    pytest.fail(f"CI=true but the Docker engine is missing: {engine_problem()}")
