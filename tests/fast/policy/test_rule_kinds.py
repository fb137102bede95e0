"""Every rule has exactly one check of its scope's signature, and each policy runs its own rule once.

In-process and without the engine: the rule table's types, and the policies of
:func:`policies.sandbox_policies.policies` driven by :class:`InProcessAnalyzer` with the
rules' checks wrapped to count their calls.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections import Counter

import pytest

from harness.analyzer_client import InProcessAnalyzer
from harness.declared import ChangedStack
from policies import sandbox_policies
from sandbox_model.paths import REPO_ROOT
from sandbox_model.security import runner
from sandbox_model.security.rules_container import ContainerCheck
from sandbox_model.security.rules_resource import ResourceCheck
from sandbox_model.security.rules_stack import StackCheck
from sandbox_model.security.table import (
    RULES,
    ContainerRule,
    ImageRule,
    ResourceRule,
    Rule,
    Scope,
    StackRule,
)

KINDS = {
    ContainerRule: (Scope.CONTAINER, ContainerCheck, 2),
    StackRule: (Scope.STACK, StackCheck, 3),
    ResourceRule: (Scope.RESOURCE, ResourceCheck, 1),
}


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_every_rule_has_exactly_one_check_of_its_scopes_signature(rule: Rule):
    assert type(rule) in (*KINDS, ImageRule), rule.id
    fields = {f.name: f for f in dataclasses.fields(rule)}
    if isinstance(rule, ImageRule):
        assert "check" not in fields and rule.scope is Scope.IMAGE
        assert (REPO_ROOT / rule.checked_in).is_file(), rule.checked_in
        return
    scope, check_type, arity = KINDS[type(rule)]
    assert rule.scope is scope
    assert [name for name in fields if callable(getattr(rule, name))] == ["check"]
    assert typing.get_type_hints(type(rule))["check"] == check_type, rule.id
    assert len(inspect.signature(rule.check).parameters) == arity, rule.id


def test_the_rules_are_unique_and_every_check_belongs_to_one_rule():
    assert len({r.id for r in RULES}) == len(RULES)
    checks = [r.check for r in RULES if not isinstance(r, ImageRule)]
    assert len(set(map(id, checks))) == len(checks)


@pytest.fixture
def counted(monkeypatch):
    """Every container and stack rule's check wrapped to count its calls (by rule id)."""
    calls: Counter = Counter()
    patched = {}
    for rule in sandbox_policies.pack_rules():
        if isinstance(rule, (ContainerRule, StackRule)):

            def counting(*args, _check=rule.check, _id=rule.id):
                calls[_id] += 1
                return _check(*args)

            patched[rule.id] = dataclasses.replace(rule, check=counting)

    original_container, original_stack = runner.run_container_rule, runner.run_stack_rule

    def run_container_rule(rule, spec, ctx):
        return original_container(patched.get(rule.id, rule), spec, ctx)

    def run_stack_rule(rule, containers, networks, ctx):
        return original_stack(patched.get(rule.id, rule), containers, networks, ctx)

    monkeypatch.setattr(sandbox_policies, "run_container_rule", run_container_rule)
    monkeypatch.setattr(sandbox_policies, "run_stack_rule", run_stack_rule)
    return calls


def test_each_policy_runs_its_own_rule_once_per_resource_and_the_stack_view_is_built_once(counted, declared_stacks):
    declared = declared_stacks["gpu"]
    analyzer = InProcessAnalyzer()
    analyzer.configure({})
    stack = ChangedStack(declared)
    containers = declared.containers
    for resource in containers:
        before = Counter(counted)
        builds = sandbox_policies._CONTAINERS.builds
        analyzer.analyze(stack.engine_inputs(resource))
        calls = counted - before
        container_rules = [r.id for r in sandbox_policies.pack_rules() if isinstance(r, ContainerRule)]
        assert calls == Counter({rule_id: 1 for rule_id in container_rules}), resource.name
        assert sandbox_policies._CONTAINERS.builds == builds + 1, "one spec per Analyze, shared by its policies"
    before, views = Counter(counted), sandbox_policies._STACK_VIEWS.builds
    analyzer.analyze_stack(stack.engine_outputs(r) for r in declared.resources)
    stack_rules = [r.id for r in sandbox_policies.pack_rules() if isinstance(r, StackRule)]
    assert counted - before == Counter({rule_id: 1 for rule_id in stack_rules})
    assert sandbox_policies._STACK_VIEWS.builds == views + 1, "one stack view per AnalyzeStack"
