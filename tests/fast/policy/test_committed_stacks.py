"""Every committed stack, as the engine would hand it to the pack, passes every policy."""

from __future__ import annotations

import pytest

from harness.declared import ChangedStack
from harness.program import CONTAINER, NETWORK, REMOTE_IMAGE, STACKS, VOLUME


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_and_the_stack_pass_with_no_diagnostic(pack_process, declared_stacks, stack):
    declared = declared_stacks[stack]
    assert ChangedStack(declared).analyze(pack_process, everything=True) == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_declares_what_the_policies_judge(declared_stacks, stack):
    """A pass means something only if the pack saw containers, networks and images to judge."""
    declared = declared_stacks[stack]
    for type_ in (CONTAINER, NETWORK, REMOTE_IMAGE):
        assert declared.of_type(type_), f"stack {stack} declares no {type_}"
    if stack == "gpu":
        assert declared.of_type(VOLUME), "the gpu stack's model cache volume is gone"
