"""The engine's unknown sentinel over the wire to the pack's own process: no violation, and an exempt role waits.

The loops over every unknown position run in-process: tests/fast/policy/test_unknowns.py.
"""

from __future__ import annotations

from harness.analyzer_client import UNKNOWN
from harness.declared import ChangedStack
from tests.fast.policy.test_unknowns import JUDGED, unknown_at


def test_a_whole_unknown_resource_is_no_violation(pack_process, declared_stacks):
    """A resource whose every property is unknown (all computed from resources not yet created)."""
    declared = declared_stacks["gpu"]
    changed = ChangedStack(declared)
    for resource in declared.resources:
        if resource.type in JUDGED:
            changed.change(resource, lambda props: props.update({key: UNKNOWN for key in props}))
    assert changed.analyze(pack_process) == []


def test_an_unknown_role_may_be_an_exempt_one(pack_process, declared_stacks):
    """With the labels unknown, a violation that an exemption could lift waits until they are known."""
    declared = declared_stacks["ci"]
    workspace = declared.container("workspace")[0]
    changed = ChangedStack(declared).change(
        workspace, unknown_at(("labels",)), lambda props: props.__setitem__("privileged", True)
    )
    assert {d.policy for d in changed.analyze(pack_process)} == {"no-privileged"}
    pack_process.configure({"no-privileged": {"exemptRoles": ["model"]}})
    assert changed.analyze(pack_process) == []
