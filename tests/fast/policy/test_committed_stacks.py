"""Every committed stack declares what the policies judge (the pack's verdict on them: tests/host/policy)."""

from __future__ import annotations

import pytest

from harness.program import STACKS
from sandbox_model.naming import CONTAINER_TYPE, NETWORK_TYPE, REMOTE_IMAGE_TYPE, VOLUME_TYPE


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_declares_what_the_policies_judge(declared_stacks, stack):
    """A pass means something only if the pack saw containers, networks and images to judge."""
    declared = declared_stacks[stack]
    for type_ in (CONTAINER_TYPE, NETWORK_TYPE, REMOTE_IMAGE_TYPE):
        assert declared.of_type(type_), f"stack {stack} declares no {type_}"
    if stack == "gpu":
        assert declared.of_type(VOLUME_TYPE), "the gpu stack's model cache volume is gone"
