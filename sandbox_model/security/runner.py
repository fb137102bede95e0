"""Run the rules: one rule on one container or one stack, or every rule of a scope.

:func:`run_container_rule` / :func:`run_stack_rule` / :func:`run_resource_rule` run ONE
rule (the policy pack gives each policy its own); :func:`check_container` and
:func:`check_stack` run every rule of their scope (the unit and runtime tests). Exempt
roles (:class:`~sandbox_model.security.context.CheckContext`) are skipped here, so no
check needs to know about exemptions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sandbox_model.security.context import CheckContext
from sandbox_model.security.spec import ContainerSpec, NetworkSpec
from sandbox_model.security.table import CONTAINER_RULES, STACK_RULES, ContainerRule, ResourceRule, Rule, StackRule


@dataclass(frozen=True)
class Violation:
    rule: Rule
    subject: str
    problem: str

    @property
    def message(self) -> str:
        return self.rule.message(self.subject, self.problem)


def run_container_rule(rule: ContainerRule, spec: ContainerSpec, ctx: CheckContext) -> list[Violation]:
    """One container rule on one container (nothing when its role is exempt)."""
    if ctx.is_exempt(rule.id, spec.role):
        return []
    return [Violation(rule, spec.name, problem) for problem in rule.check(spec, ctx)]


def run_stack_rule(
    rule: StackRule, containers: Sequence[ContainerSpec], networks: Mapping[str, NetworkSpec], ctx: CheckContext
) -> list[Violation]:
    """One stack rule on a stack's containers and networks; a finding is silenced if any role involved is exempt."""
    return [
        Violation(rule, finding.subject, finding.problem)
        for finding in rule.check(containers, networks, ctx)
        if not any(ctx.is_exempt(rule.id, role) for role in finding.roles)
    ]


def run_resource_rule(
    rule: ResourceRule, subject: str, reference: str, role: str | None, ctx: CheckContext
) -> list[Violation]:
    """One resource rule on an image reference of ``subject`` (a container of ``role``, or a pulled image: None)."""
    if ctx.is_exempt(rule.id, role):
        return []
    problem = rule.check(reference)
    return [Violation(rule, subject, problem)] if problem else []


def check_container(spec: ContainerSpec, ctx: CheckContext) -> list[Violation]:
    """Every container rule against one container (exempt roles skipped)."""
    return [violation for rule in CONTAINER_RULES for violation in run_container_rule(rule, spec, ctx)]


def check_stack(
    containers: Sequence[ContainerSpec], networks: Mapping[str, NetworkSpec], ctx: CheckContext
) -> list[Violation]:
    """Every stack rule against a stack's containers and networks (by name)."""
    return [violation for rule in STACK_RULES for violation in run_stack_rule(rule, containers, networks, ctx)]
