"""The kernel of opencode-sandbox: every fact of the design, stated once.

Names and labels (:mod:`.naming`), roles (:mod:`.roles`), the network topology
(:mod:`.topology`), the repository's own paths (:mod:`.paths`) and the security
model (:mod:`.security`: the spec view, the rules by scope, their table and
runner, the adapters from Pulumi props and ``docker inspect``).

It imports nothing but the standard library and itself: the stack's settings
(``stacks``), the Pulumi components (``components``), the policy pack
(``policies``), the operator commands (``operate``) and the tests all build on
it, and the policy pack needs nothing else.
"""
