"""Values unknown during a preview: never a violation, never a crash, and the known rest still judged.

The engine sends a value it cannot know yet (an output of a resource not yet
created) as its unknown sentinel, in place of any property or of any nested
part of one. Each declared container, network, volume and image is sent with
one such part unknown at a time: the pack must answer (no crash), report
nothing about the unknown part, and still report a real violation elsewhere in
the same container.

The loops over every position run in-process (the same servicer, the same marshalled
requests: :class:`harness.analyzer_client.InProcessAnalyzer`); the sentinel's trip over
the wire to the pack's own process is checked by tests/host/policy/test_unknowns_over_grpc.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.analyzer_client import UNKNOWN, PackCrash
from harness.declared import ChangedStack
from harness.program import STACKS
from sandbox_model.naming import CONTAINER_TYPE, NETWORK_TYPE, REMOTE_IMAGE_TYPE, VOLUME_TYPE

JUDGED = (CONTAINER_TYPE, NETWORK_TYPE, VOLUME_TYPE, REMOTE_IMAGE_TYPE)


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every position in a property tree: each property, each element, each nested field."""
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def unknown_at(path: tuple):
    def change(props):
        *parents, last = path
        for key in parents:
            props = props[key]
        props[last] = UNKNOWN

    return change


def witness_for(path: tuple):
    """A real violation in a part of the container that stays known."""
    if path[0] == "privileged":
        return (lambda props: props.__setitem__("readOnly", False)), "read-only-root"
    return (lambda props: props.__setitem__("privileged", True)), "no-privileged"


def outcome(changed: ChangedStack, analyzer) -> set[tuple[str, str]]:
    """(policy, level) of every diagnostic, or the pack's crash (a failed RPC) as one entry."""
    try:
        return {(d.policy, d.level) for d in changed.analyze(analyzer)}
    except PackCrash as crash:
        return {("crash", crash.details)}


@pytest.mark.parametrize("stack", STACKS)
def test_an_unknown_part_of_a_container_hides_nothing_else_and_reports_nothing_itself(analyzer, declared_stacks, stack):
    declared = declared_stacks[stack]
    failures = []
    for container in declared.containers:
        for path in paths(container.inputs):
            witness, witness_rule = witness_for(path)
            changed = ChangedStack(declared).change(container, unknown_at(path), witness)
            found = outcome(changed, analyzer)
            if found != {(witness_rule, "MANDATORY")}:
                failures.append(f"{container.name} {'.'.join(map(str, path))} unknown: {sorted(found)}")
    assert failures == []


@pytest.mark.parametrize("stack", STACKS)
def test_an_unknown_part_of_a_network_volume_or_image_is_no_violation(analyzer, declared_stacks, stack):
    declared = declared_stacks[stack]
    failures = []
    for resource in declared.resources:
        if resource.type not in JUDGED or resource.type == CONTAINER_TYPE:
            continue
        for path in paths(resource.inputs):
            found = outcome(ChangedStack(declared).change(resource, unknown_at(path)), analyzer)
            if found:
                failures.append(f"{resource.name} {'.'.join(map(str, path))} unknown: {sorted(found)}")
    assert failures == []


def test_an_unknown_network_membership_hides_no_known_stack_violation(analyzer, declared_stacks):
    declared = declared_stacks["gpu"]
    model_network = next(n for n in declared.networks if n.name == "sandbox-networks-model").inputs["name"]
    executor = declared.container("executor")[0]
    workspace = declared.container("workspace")[0]
    changed = (
        ChangedStack(declared)
        .change(executor, lambda props: props["networksAdvanced"].append({"name": model_network}))
        .change(workspace, unknown_at(("networksAdvanced",)), unknown_at(("labels",)))
    )
    assert {d.policy for d in changed.analyze(analyzer)} == {"executor-isolated-from-model"}
