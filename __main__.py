"""opencode-sandbox: a locked-down home for an AI coding agent, on one Docker host.

`pulumi up` validates the stack settings (stacks/), then declares the sandbox
(components/) as its plan (stacks/plan.py) says. A bad setting stops here, before any
resource is registered.
"""

import pulumi

from components.sandbox import Sandbox, SandboxArgs
from stacks.loader import load_stack_inputs

inputs = load_stack_inputs()
sandbox = Sandbox("sandbox", SandboxArgs(settings=inputs.settings, secrets=inputs.secrets))

for output_name, value in sandbox.exports().items():
    pulumi.export(output_name, value)
