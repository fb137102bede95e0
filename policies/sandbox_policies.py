"""The opencode-sandbox CrossGuard policies: one per rule of ``sandbox_model.security.catalog``.

Every container, stack and resource rule of the catalog becomes a policy of the
same name (the rule id says what it forbids). Nothing here restates a rule: the
engine's props are converted with :mod:`sandbox_model.security.props` and judged
by the catalog's checks, and a violation's message is the catalog's
``Violation.message`` (the resource, the problem, the fix, the CIS id).

Every policy is mandatory. The only exception a stack may take is per role and
per policy, through the pack's config (``exemptRoles``), so that it shows in the
config file a reviewer reads. Volumes and pulled images carry no role, so no
exemption applies to them.

Values unknown during a preview arrive as the engine's unknown sentinel; the
converter turns them into ``UNKNOWN`` (reading one raises the SDK's
``UnknownValueError``), and the catalog never reports a violation on those.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

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

from sandbox_model.security import catalog
from sandbox_model.roles import ALL_ROLES
from sandbox_model.security.profiles import all_seccomp_profiles
from sandbox_model.naming import CONTAINER_TYPE, NETWORK_TYPE, REMOTE_IMAGE_TYPE, VOLUME_TYPE
from sandbox_model.security.props import container_spec, network_spec, volume_host_path
from sandbox_model.security.spec import ContainerSpec, is_unknown

PACK_NAME = "opencode-sandbox"
PACK_DESCRIPTION = ("The opencode-sandbox security model (components/security/catalog.py): every container, "
                    "network, volume and image of the stack, checked before Pulumi creates it.")
ENFORCEMENT_LEVEL = EnforcementLevel.MANDATORY
#: The one config property of every policy: the roles this policy does not apply to.
EXEMPT_ROLES = "exemptRoles"
#: The scopes the pack enforces; rules of scope image are checked on the built images instead.
PACK_SCOPES = (catalog.Scope.CONTAINER, catalog.Scope.STACK, catalog.Scope.RESOURCE)
UNKNOWN_ERRORS = (UnknownValueError,)


def pack_rules() -> tuple[catalog.Rule, ...]:
    return tuple(rule for rule in catalog.RULES if rule.scope in PACK_SCOPES)


def config_schema(rule: catalog.Rule) -> PolicyConfigSchema:
    return PolicyConfigSchema(properties={EXEMPT_ROLES: {
        "type": "array",
        "items": {"type": "string", "enum": sorted(ALL_ROLES)},
        "uniqueItems": True,
        "description": f"Roles that {rule.id} does not apply to. Every entry is an exception to the "
                       "security model: say why next to it in review.",
    }})


@functools.lru_cache(maxsize=1)
def _seccomp_profiles() -> Mapping[str, str]:
    return all_seccomp_profiles()


def _context(rule: catalog.Rule, config: Mapping[str, Any]) -> catalog.CheckContext:
    roles = frozenset(str(role) for role in (config or {}).get(EXEMPT_ROLES) or ())
    return catalog.CheckContext(seccomp_profiles=_seccomp_profiles(), exempt_roles={rule.id: roles})


def _container(name: str, props: Mapping[str, Any], volume_paths: Mapping[str, str] | None = None) -> ContainerSpec:
    return container_spec(name, props, volume_paths=volume_paths, unknown_errors=UNKNOWN_ERRORS)


def _read(props: Mapping[str, Any], key: str) -> Any:
    """A top-level prop, or UNKNOWN when the engine does not know it yet."""
    try:
        return props.get(key)
    except UnknownValueError:
        return catalog.UNKNOWN


# --- what each kind of resource yields for a rule --------------------------------------------

def _container_rule_violations(rule, args: ResourceValidationArgs, ctx) -> list[catalog.Violation]:
    if args.resource_type != CONTAINER_TYPE:
        return []
    return [v for v in catalog.check_container(_container(args.name, args.props), ctx) if v.rule is rule]


def _volume_violations(rule, args: ResourceValidationArgs, ctx) -> list[catalog.Violation]:
    """A `local` volume bound to a host directory exposes that directory to whoever mounts it.

    A volume carries no role, so no exemption applies to it (``ctx`` is not consulted).
    """
    if args.resource_type != VOLUME_TYPE:
        return []
    path = volume_host_path(args.props, unknown_errors=UNKNOWN_ERRORS)
    if path is None or is_unknown(path):
        return []
    problem = catalog.sensitive_volume_problem(path)
    if problem is None:
        return []
    name = _read(args.props, "name")
    subject = args.name if is_unknown(name) or not name else str(name)
    return [catalog.Violation(rule, subject, problem)]


def _image_violations(rule, args: ResourceValidationArgs, ctx) -> list[catalog.Violation]:
    """A resource rule judges an image reference: a pulled image's, or a container's plain one."""
    if args.resource_type == REMOTE_IMAGE_TYPE:
        build = _read(args.props, "build")
        if build is not None:  # built from images/ (or not known yet): its tag is ours, not a registry's
            return []
        reference, subject, role = _read(args.props, "name"), args.name, None
    elif args.resource_type == CONTAINER_TYPE:
        spec = _container(args.name, args.props)
        reference, subject, role = spec.image, spec.name, spec.role
    else:
        return []
    if is_unknown(reference) or not isinstance(reference, str) or ctx.is_exempt(rule.id, role):
        return []
    problem = rule.check(reference)
    return [catalog.Violation(rule, subject, problem)] if problem else []


#: The rule that also judges `local` volumes bound to host paths (a bind mount in disguise).
_MOUNT_RULE = catalog.RULES_BY_ID["no-sensitive-host-mounts"]


def _validations(rule: catalog.Rule) -> tuple[Callable, ...]:
    if rule.scope is catalog.Scope.RESOURCE:
        return (_image_violations,)
    if rule is _MOUNT_RULE:
        return (_container_rule_violations, _volume_violations)
    return (_container_rule_violations,)


def _resource_policy(rule: catalog.Rule) -> ResourceValidationPolicy:
    validations = _validations(rule)

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        ctx = _context(rule, args.get_config())
        for validation in validations:
            for violation in validation(rule, args, ctx):
                report_violation(violation.message, None)

    return ResourceValidationPolicy(name=rule.id, description=_description(rule), validate=validate,
                                    config_schema=config_schema(rule), **_metadata(rule))


def _stack_policy(rule: catalog.Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        ctx = _context(rule, args.get_config())
        containers, networks, urns = _stack_view(args.resources)
        for violation in catalog.check_stack(containers, networks, ctx):
            if violation.rule is rule:
                report_violation(violation.message, urns.get(violation.subject))

    return StackValidationPolicy(name=rule.id, description=_description(rule), validate=validate,
                                 config_schema=config_schema(rule), **_metadata(rule))


def _stack_view(resources) -> tuple[list[ContainerSpec], dict, dict[str, str]]:
    """The stack's containers (their volumes resolved) and networks, and the URN of each unique name."""
    volume_paths = {}
    for resource in resources:
        if resource.resource_type == VOLUME_TYPE:
            name, path = _read(resource.props, "name"), volume_host_path(resource.props, UNKNOWN_ERRORS)
            if isinstance(name, str) and isinstance(path, str):
                volume_paths[name] = path
    containers, networks, owners = [], {}, {}
    for resource in resources:
        if resource.resource_type == CONTAINER_TYPE:
            spec = _container(resource.name, resource.props, volume_paths)
            containers.append(spec)
        elif resource.resource_type == NETWORK_TYPE:
            spec = network_spec(resource.name, resource.props, unknown_errors=UNKNOWN_ERRORS)
            networks[spec.name] = spec
        else:
            continue
        owners.setdefault(spec.name, []).append(resource.urn)
    # A container may carry its network's name (the model server does): such a subject names no one resource.
    urns = {name: found[0] for name, found in owners.items() if len(found) == 1}
    return containers, networks, urns


def _description(rule: catalog.Rule) -> str:
    return f"Forbids {rule.forbids}: {rule.reason}."


def _metadata(rule: catalog.Rule) -> dict[str, Any]:
    metadata: dict[str, Any] = {"remediation_steps": rule.fix, "tags": ["opencode-sandbox", rule.scope.value]}
    if rule.cis:
        metadata["framework"] = PolicyComplianceFramework(name="CIS Docker Benchmark", reference=rule.cis)
    return metadata


def policies() -> list:
    """The pack's policies, in catalog order."""
    return [_stack_policy(rule) if rule.scope is catalog.Scope.STACK else _resource_policy(rule)
            for rule in pack_rules()]
