"""opencode-sandbox: a locked-down home for an AI coding agent, on one Docker host.

`pulumi up` validates the stack settings (stacks/), then declares the sandbox
(components/). A bad setting stops here, before any resource is registered.
"""

import pulumi

from components.sandbox import Sandbox, SandboxArgs
from stacks.loader import load_stack_inputs

inputs = load_stack_inputs()
sandbox = Sandbox("sandbox", SandboxArgs(settings=inputs.settings, secrets=inputs.secrets))

pulumi.export("web_url", sandbox.web.url)
pulumi.export("web_user", "opencode")
pulumi.export("web_password", sandbox.web_password)
pulumi.export("model_endpoint", sandbox.model_endpoint)
pulumi.export("executor_endpoints", sandbox.executor_endpoints)
pulumi.export("executor_token", sandbox.executor_token)
pulumi.export("model_api_key", sandbox.model_api_key)
pulumi.export("networks", {purpose: net.name for purpose, net in sandbox.networks.all().items()})
containers = {
    "workspace": sandbox.workspace.container_name,
    "executors": sandbox.executors.container_names,
    "ingress_web": sandbox.web.container_name,
    "model_gateway": sandbox.model_gateway.container_name,
}
if sandbox.model_server is not None:
    containers["model"] = sandbox.model_server.container_name
if sandbox.egress is not None:
    containers["egress"] = sandbox.egress.container_name
if sandbox.model_api is not None:
    containers["ingress_model_api"] = sandbox.model_api.container_name
    pulumi.export("model_api_url", sandbox.model_api.url)
if sandbox.conductor is not None:
    containers["conductor"] = sandbox.conductor.container_name
    containers["ingress_conductor"] = sandbox.conductor_ingress.container_name
    pulumi.export("conductor_url", sandbox.conductor_url)
    pulumi.export("conductor_token", sandbox.conductor_token)
pulumi.export("containers", containers)
