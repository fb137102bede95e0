"""Entry point of the opencode-sandbox policy pack: `pulumi preview --policy-pack policies`.

Pulumi runs this file from the pack directory (``python -m pulumi.policy <engine> .``).
It only builds the pack: the policies live in :mod:`policies.sandbox_policies`,
and they read the rules from ``components/security`` in this repository, hence
the repository root on ``sys.path``. Constructing the PolicyPack starts the
analyzer's gRPC server and blocks until the engine stops it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pulumi_policy import PolicyPack  # noqa: E402

from policies.sandbox_policies import ENFORCEMENT_LEVEL, PACK_DESCRIPTION, PACK_NAME, policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    description=PACK_DESCRIPTION,
    enforcement_level=ENFORCEMENT_LEVEL,
    policies=policies(),
)
