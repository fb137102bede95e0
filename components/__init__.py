"""ComponentResources of the sandbox stack.

Kept free of imports on purpose: the policy pack and the runtime checks import
``sandbox_model.security`` without pulling in the Pulumi Docker provider.
"""
