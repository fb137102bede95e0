"""The opencode-sandbox CrossGuard policies: one per rule of :mod:`sandbox_model.security.table`.

Every container, stack and resource rule of the table becomes a policy of the
same name (the rule id says what it forbids), and each policy runs ITS OWN rule,
once per resource (:func:`sandbox_model.security.runner.run_container_rule` and
its siblings). Nothing here restates a rule: the engine's props are converted
with :mod:`sandbox_model.security.adapters.pulumi_props` and judged by the rule's
check, and a violation's message is the kernel's ``Violation.message`` (the
resource, the problem, the fix, the CIS id).

The stack policies judge the same view of a stack (its containers, with their
volumes resolved, its networks and the URN of each name), built once per
``AnalyzeStack`` request; likewise the container and resource policies share the
spec of the container one ``Analyze`` request is about. The SDK hands every
policy its own freshly deserialized copy of the props (``args.resources`` is a new
list each time), so the one thing a request's policies share is the response
their report function writes to: :class:`_PerRequest` keys on that.

Every policy is mandatory. The only exception a stack may take is per role and
per policy, through the pack's config (``exemptRoles``), so that it shows in the
config file a reviewer reads. Volumes and pulled images carry no role, so no
exemption applies to them.

Values unknown during a preview arrive as the engine's unknown sentinel; the
converter turns them into ``UNKNOWN`` (reading one raises the SDK's
``UnknownValueError``), and no check reports a violation on those.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from sandbox_model.naming import CONTAINER_TYPE, NETWORK_TYPE, REMOTE_IMAGE_TYPE, VOLUME_TYPE
from sandbox_model.roles import ALL_ROLES
from sandbox_model.security.adapters.pulumi_props import container_spec, network_spec, volume_host_path
from sandbox_model.security.context import CheckContext
from sandbox_model.security.profiles import all_seccomp_profiles
from sandbox_model.security.rules_container import sensitive_volume_problem
from sandbox_model.security.runner import Violation, run_container_rule, run_resource_rule, run_stack_rule
from sandbox_model.security.spec import UNKNOWN, ContainerSpec, NetworkSpec, is_unknown
from sandbox_model.security.table import (
    RULES,
    RULES_BY_ID,
    ContainerRule,
    ResourceRule,
    Rule,
    StackRule,
)

PACK_NAME = "opencode-sandbox"
PACK_DESCRIPTION = (
    "The opencode-sandbox security model (sandbox_model/security/table.py): every container, "
    "network, volume and image of the stack, checked before Pulumi creates it."
)
ENFORCEMENT_LEVEL = EnforcementLevel.MANDATORY
#: The one config property of every policy: the roles this policy does not apply to.
EXEMPT_ROLES = "exemptRoles"
UNKNOWN_ERRORS = (UnknownValueError,)

#: The rule kinds the pack enforces; rules of scope image are checked on the built images instead.
PackRule = ContainerRule | StackRule | ResourceRule


def pack_rules() -> tuple[PackRule, ...]:
    return tuple(rule for rule in RULES if isinstance(rule, PackRule))


def config_schema(rule: Rule) -> PolicyConfigSchema:
    return PolicyConfigSchema(
        properties={
            EXEMPT_ROLES: {
                "type": "array",
                "items": {"type": "string", "enum": sorted(ALL_ROLES)},
                "uniqueItems": True,
                "description": f"Roles that {rule.id} does not apply to. Every entry is an exception to the "
                "security model: say why next to it in review.",
            }
        }
    )


@functools.lru_cache(maxsize=1)
def _seccomp_profiles() -> Mapping[str, str]:
    return all_seccomp_profiles()


def _context(rule: Rule, config: Mapping[str, Any] | None) -> CheckContext:
    roles = frozenset(str(role) for role in (config or {}).get(EXEMPT_ROLES) or ())
    return CheckContext(seccomp_profiles=_seccomp_profiles(), exempt_roles={rule.id: roles})


def _container(name: str, props: Mapping[str, Any], volume_paths: Mapping[str, str] | None = None) -> ContainerSpec:
    return container_spec(name, props, volume_paths=volume_paths, unknown_errors=UNKNOWN_ERRORS)


def _read(props: Mapping[str, Any], key: str) -> Any:
    """A top-level prop, or UNKNOWN when the engine does not know it yet."""
    try:
        return props.get(key)
    except UnknownValueError:
        return UNKNOWN


# --- what each kind of resource yields for its rule -------------------------------------------

Validation = Callable[[Any, ResourceValidationArgs, ReportViolation, CheckContext], list[Violation]]


def _container_rule_violations(
    rule: ContainerRule, args: ResourceValidationArgs, report: ReportViolation, ctx: CheckContext
) -> list[Violation]:
    if args.resource_type != CONTAINER_TYPE:
        return []
    return run_container_rule(rule, _CONTAINERS.get(report, args), ctx)


def _volume_violations(
    rule: ContainerRule, args: ResourceValidationArgs, report: ReportViolation, ctx: CheckContext
) -> list[Violation]:
    """A `local` volume bound to a host directory exposes that directory to whoever mounts it.

    A volume carries no role, so no exemption applies to it (``ctx`` is not consulted).
    """
    if args.resource_type != VOLUME_TYPE:
        return []
    path = volume_host_path(args.props, unknown_errors=UNKNOWN_ERRORS)
    if path is None or is_unknown(path):
        return []
    problem = sensitive_volume_problem(path)
    if problem is None:
        return []
    name = _read(args.props, "name")
    subject = args.name if is_unknown(name) or not name else str(name)
    return [Violation(rule, subject, problem)]


def _image_violations(
    rule: ResourceRule, args: ResourceValidationArgs, report: ReportViolation, ctx: CheckContext
) -> list[Violation]:
    """A resource rule judges an image reference: a pulled image's, or a container's plain one."""
    if args.resource_type == REMOTE_IMAGE_TYPE:
        build = _read(args.props, "build")
        if build is not None:  # built from images/ (or not known yet): its tag is ours, not a registry's
            return []
        reference, subject, role = _read(args.props, "name"), args.name, None
    elif args.resource_type == CONTAINER_TYPE:
        spec = _CONTAINERS.get(report, args)
        reference, subject, role = spec.image, spec.name, spec.role
    else:
        return []
    if is_unknown(reference) or not isinstance(reference, str):
        return []
    return run_resource_rule(rule, subject, reference, role, ctx)


#: The rule that also judges `local` volumes bound to host paths (a bind mount in disguise).
_MOUNT_RULE = RULES_BY_ID["no-sensitive-host-mounts"]


def _validations(rule: ContainerRule | ResourceRule) -> tuple[Validation, ...]:
    if isinstance(rule, ResourceRule):
        return (_image_violations,)
    if rule is _MOUNT_RULE:
        return (_container_rule_violations, _volume_violations)
    return (_container_rule_violations,)


def _resource_policy(rule: ContainerRule | ResourceRule) -> ResourceValidationPolicy:
    validations = _validations(rule)

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        ctx = _context(rule, args.get_config())
        for validation in validations:
            for violation in validation(rule, args, report_violation, ctx):
                report_violation(violation.message, None)

    return ResourceValidationPolicy(
        name=rule.id,
        description=_description(rule),
        validate=validate,
        config_schema=config_schema(rule),
        **_metadata(rule),
    )


# --- the stack view, built once for all stack policies -----------------------------------------

StackView = tuple[list[ContainerSpec], dict[str, NetworkSpec], dict[str, str]]


def _request_of(report_violation: ReportViolation) -> object | None:
    """The SDK's response object of the request a policy is validating, or None if it cannot be told.

    pulumi_policy's servicer answers one ``Analyze``/``AnalyzeStack`` request with one
    response and gives each policy a report function bound to it; every policy gets its own
    freshly deserialized copy of the props, so that response is the one thing all
    policies of one request share.
    """
    for cell in getattr(report_violation, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if type(value).__name__ == "AnalyzeResponse":
            return value
    return None


class _PerRequest:
    """A value built once per request and shared by every policy that validates it.

    Keyed on the request's response object (:func:`_request_of`), held, so its identity
    cannot be reused by a later request. When the request cannot be told, every policy
    builds its own value (correct, just not shared).
    """

    def __init__(self, build: Callable[[Any], Any]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._entry: tuple[object, Any] | None = None
        self.builds = 0  # how many values were built (the tests count them)

    def get(self, report_violation: ReportViolation, source: Any) -> Any:
        request = _request_of(report_violation)
        with self._lock:
            if request is not None and self._entry is not None and self._entry[0] is request:
                return self._entry[1]
            value = self._build(source)
            self.builds += 1
            if request is not None:
                self._entry = (request, value)
            return value


def _stack_policy(rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        ctx = _context(rule, args.get_config())
        containers, networks, urns = _STACK_VIEWS.get(report_violation, args.resources)
        for violation in run_stack_rule(rule, containers, networks, ctx):
            report_violation(violation.message, urns.get(violation.subject))

    return StackValidationPolicy(
        name=rule.id,
        description=_description(rule),
        validate=validate,
        config_schema=config_schema(rule),
        **_metadata(rule),
    )


def _stack_view(resources: Sequence[Any]) -> StackView:
    """The stack's containers (their volumes resolved) and networks, and the URN of each unique name."""
    volume_paths = {}
    for resource in resources:
        if resource.resource_type == VOLUME_TYPE:
            name, path = _read(resource.props, "name"), volume_host_path(resource.props, UNKNOWN_ERRORS)
            if isinstance(name, str) and isinstance(path, str):
                volume_paths[name] = path
    containers: list[ContainerSpec] = []
    networks: dict[str, NetworkSpec] = {}
    owners: dict[str, list[str]] = {}
    for resource in resources:
        if resource.resource_type == CONTAINER_TYPE:
            container = _container(resource.name, resource.props, volume_paths)
            containers.append(container)
            name = container.name
        elif resource.resource_type == NETWORK_TYPE:
            network = network_spec(resource.name, resource.props, unknown_errors=UNKNOWN_ERRORS)
            networks[network.name] = network
            name = network.name
        else:
            continue
        owners.setdefault(name, []).append(resource.urn)
    # A container may carry its network's name (the model server does): such a subject names no one resource.
    urns = {name: found[0] for name, found in owners.items() if len(found) == 1}
    return containers, networks, urns


#: The spec of the container being analyzed, shared by every container and resource policy.
_CONTAINERS = _PerRequest(lambda args: _container(args.name, args.props))
#: The view of the stack being analyzed, shared by every stack policy.
_STACK_VIEWS = _PerRequest(_stack_view)


def _description(rule: Rule) -> str:
    return f"Forbids {rule.forbids}: {rule.reason}."


def _metadata(rule: Rule) -> dict[str, Any]:
    metadata: dict[str, Any] = {"remediation_steps": rule.fix, "tags": ["opencode-sandbox", rule.scope.value]}
    if rule.cis:
        metadata["framework"] = PolicyComplianceFramework(name="CIS Docker Benchmark", reference=rule.cis)
    return metadata


def policies() -> list:
    """The pack's policies, in the table's order."""
    return [_stack_policy(rule) if isinstance(rule, StackRule) else _resource_policy(rule) for rule in pack_rules()]
