"""The stack rules' checks: each judges every container and network of a stack together.

Every check has the signature :data:`StackCheck`, ``(containers, networks, ctx) ->
[StackFinding, ...]``; a finding names its subject (a container or a network), the
problem and the roles involved, and an exemption of any involved role silences it
(:func:`sandbox_model.security.runner.run_stack_rule`). Unknown values are never a problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from sandbox_model.roles import Role
from sandbox_model.security.context import CheckContext
from sandbox_model.security.spec import ContainerSpec, NetworkSpec, is_unknown
from sandbox_model.topology import GATEWAY_ROLES, INTENDED_NETWORK_PEERS, INTERNAL_NETWORK_OPTIONS, MODEL_ROLES


class StackFinding(NamedTuple):
    subject: str  # the container or network the problem is about
    problem: str
    roles: set  # the roles involved: exempting any of them silences the finding


#: A stack rule's check: every container and network (by name) of one stack -> its findings.
StackCheck = Callable[[Sequence[ContainerSpec], Mapping[str, NetworkSpec], CheckContext], list[StackFinding]]


def _shared_networks(containers: Sequence[ContainerSpec]) -> dict[str, list[ContainerSpec]]:
    members: dict[str, list[ContainerSpec]] = {}
    for spec in containers:
        if is_unknown(spec.networks):
            continue
        for name in spec.networks:
            if not is_unknown(name):
                members.setdefault(name, []).append(spec)
    return members


def check_internal_only(
    containers: Sequence[ContainerSpec], networks: Mapping[str, NetworkSpec], ctx: CheckContext
) -> list[StackFinding]:
    problems: list[StackFinding] = []
    for name, members in _shared_networks(containers).items():
        net = networks.get(name)
        if net is None or is_unknown(net.internal) or net.internal is True:
            continue
        for spec in members:
            if not is_unknown(spec.role) and spec.role not in GATEWAY_ROLES:
                problems.append(
                    StackFinding(
                        spec.name,
                        f"role {spec.role!r} joins the non-internal network {name!r}, which routes to the outside",
                        {spec.role},
                    )
                )
    return problems


#: What an executor must never share a network with: the model server, and the model gateway,
#: which would add the model API key to whatever code in an executor sent it.
def check_executor_model(
    containers: Sequence[ContainerSpec], networks: Mapping[str, NetworkSpec], ctx: CheckContext
) -> list[StackFinding]:
    problems: list[StackFinding] = []
    for name, members in _shared_networks(containers).items():
        roles = {spec.role for spec in members}
        model_roles = {role for role in roles if role is not None and role in MODEL_ROLES}
        if Role.EXECUTOR.value in roles and model_roles:
            what = " and ".join(sorted(model_roles))
            problem = (
                f"an executor and the {what} share this network, so code the agent runs could call the model directly"
            )
            problems.append(StackFinding(name, problem, {Role.EXECUTOR.value, *model_roles}))
    return problems


def check_internal_unaddressed(
    containers: Sequence[ContainerSpec], networks: Mapping[str, NetworkSpec], ctx: CheckContext
) -> list[StackFinding]:
    problems: list[StackFinding] = []
    members = _shared_networks(containers)
    for name, net in networks.items():
        if is_unknown(net.internal) or net.internal is not True or is_unknown(net.options):
            continue
        values = {key: net.options.get(key) for key in INTERNAL_NETWORK_OPTIONS}
        if any(is_unknown(value) for value in values.values()):
            continue
        missing = {key: value for key, value in INTERNAL_NETWORK_OPTIONS.items() if values[key] != value}
        if missing:
            roles = {spec.role for spec in members.get(name, [])}
            problem = (
                f"the internal network's bridge has a host address (options lack {missing}), "
                "so its containers reach the host's services"
            )
            problems.append(StackFinding(name, problem, roles))
    return problems


def check_network_peers(
    containers: Sequence[ContainerSpec], networks: Mapping[str, NetworkSpec], ctx: CheckContext
) -> list[StackFinding]:
    problems: list[StackFinding] = []
    # Reported by executor-isolated-from-model.
    executor_model = {frozenset({Role.EXECUTOR.value, role}) for role in MODEL_ROLES}
    for name, members in _shared_networks(containers).items():
        roles = sorted({spec.role or "unlabelled" for spec in members if not is_unknown(spec.role)})
        for i, first in enumerate(roles):
            for second in roles[i + 1 :]:
                pair = frozenset({first, second})
                if pair not in INTENDED_NETWORK_PEERS and pair not in executor_model:
                    problems.append(StackFinding(name, f"roles {first!r} and {second!r} share this network", set(pair)))
    return problems
