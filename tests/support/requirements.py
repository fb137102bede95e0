"""Skips (or, with CI=true, failures) for tests whose prerequisites are missing."""

from __future__ import annotations

import pytest

from harness.engine import in_ci
from harness.pulumi_cli import toolchain_problem


def require_toolchain(why: str) -> None:
    """Skip the calling test (saying ``why`` it needs Pulumi) when there is no CLI; with CI=true, fail."""
    problem = toolchain_problem()
    if problem is None:
        return
    if in_ci():
        pytest.fail(f"CI=true but the Pulumi toolchain is missing: {problem}")
    pytest.skip(f"{why}: {problem}")
