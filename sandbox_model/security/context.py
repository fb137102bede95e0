"""What a check needs besides the container or stack it judges: the seccomp profiles and the exemptions.

Its own module because both sides need it: the checks (``rules_*``) read it and the
runner (:mod:`sandbox_model.security.runner`) applies its exemptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sandbox_model.security.spec import is_unknown


@dataclass(frozen=True)
class CheckContext:
    """The project's seccomp profiles (name -> JSON text) and, per rule id, the roles exempt from it."""

    seccomp_profiles: Mapping[str, str] = field(default_factory=dict)  # name -> JSON text
    exempt_roles: Mapping[str, frozenset[str]] = field(default_factory=dict)  # rule id -> roles

    def is_exempt(self, rule_id: str, role: str | None) -> bool:
        roles = self.exempt_roles.get(rule_id, frozenset())
        if is_unknown(role):
            return bool(roles)  # it may be an exempt role: judged again once the labels are known
        return role is not None and role in roles
