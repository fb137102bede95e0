"""What the pack tells the engine about itself (GetAnalyzerInfo) and how its config is checked."""

from __future__ import annotations

import jsonschema
import pytest
from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2

from policies.sandbox_policies import EXEMPT_ROLES, PACK_NAME, pack_rules
from sandbox_model.roles import ALL_ROLES
from sandbox_model.security.table import RULES, Scope


def test_every_catalog_rule_the_pack_can_judge_is_a_policy_of_the_same_name(pack_process):
    info = pack_process.info()
    assert info.name == PACK_NAME
    assert info.supportsConfig
    assert [p.name for p in info.policies] == [r.id for r in RULES if r.scope is not Scope.IMAGE]
    assert {r.id for r in pack_rules()} == {p.name for p in info.policies}


def test_every_policy_is_mandatory_and_says_what_it_forbids_why_and_how_to_fix_it(pack_process):
    rules = {rule.id: rule for rule in RULES}
    for policy in pack_process.info().policies:
        rule = rules[policy.name]
        assert policy.enforcementLevel == analyzer_pb2.MANDATORY, policy.name
        assert rule.forbids in policy.description and rule.reason in policy.description
        assert policy.remediation_steps == rule.fix
        assert policy.framework.reference == (rule.cis or "")
        expected_type = (
            analyzer_pb2.POLICY_TYPE_STACK if rule.scope is Scope.STACK else analyzer_pb2.POLICY_TYPE_RESOURCE
        )
        assert policy.policy_type == expected_type, policy.name


def test_every_policy_takes_exempt_roles_from_the_catalog_and_nothing_else(pack_process):
    for policy in pack_process.info().policies:
        schema = json_format.MessageToDict(policy.configSchema.properties)
        assert set(schema) == {EXEMPT_ROLES}, policy.name
        assert schema[EXEMPT_ROLES]["type"] == "array"
        assert set(schema[EXEMPT_ROLES]["items"]["enum"]) == ALL_ROLES
        assert not policy.configSchema.required


@pytest.mark.parametrize(
    "entry",
    [
        {EXEMPT_ROLES: ["root"]},
        {EXEMPT_ROLES: "workspace"},
        {EXEMPT_ROLES: ["model", "model"]},
    ],
)
def test_a_config_the_schema_refuses_never_reaches_the_pack(pack_process, entry):
    with pytest.raises(jsonschema.ValidationError):
        pack_process.configure({"no-privileged": entry})
