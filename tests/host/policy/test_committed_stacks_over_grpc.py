"""Every committed stack, as the engine would hand it to the pack's own process, passes every policy.

(That the stacks declare something for the pack to judge: tests/fast/policy/test_committed_stacks.py.)
"""

from __future__ import annotations

import pytest

from harness.declared import ChangedStack
from harness.program import STACKS


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_and_the_stack_pass_with_no_diagnostic(pack_process, declared_stacks, stack):
    declared = declared_stacks[stack]
    assert ChangedStack(declared).analyze(pack_process, everything=True) == []
