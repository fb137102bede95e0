"""Entry point of the opencode-sandbox policy pack: `pulumi preview --policy-pack policies`.

Pulumi runs this file from the pack directory (``python -m pulumi.policy <engine> .``).
It only builds the pack: the policies live in :mod:`policies.sandbox_policies`,
and they read the rules from the kernel, :mod:`sandbox_model.security` (both
installed into the project's .venv by scripts/venv). Constructing the PolicyPack
starts the analyzer's gRPC server and blocks until the engine stops it.
"""

from pulumi_policy import PolicyPack

from policies.sandbox_policies import ENFORCEMENT_LEVEL, PACK_DESCRIPTION, PACK_NAME, policies

PolicyPack(
    name=PACK_NAME,
    description=PACK_DESCRIPTION,
    enforcement_level=ENFORCEMENT_LEVEL,
    policies=policies(),
)
