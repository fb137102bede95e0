"""The kernel of opencode-sandbox: every fact of the design, stated once.

- :mod:`.naming`: the project, Docker names, labels, resource type tokens;
- :mod:`.roles`: the roles a container plays; :mod:`.topology`: the networks as data
  (internal or not, who joins them, why); :mod:`.destinations`: every in-stack address
  (aliases, ports, paths) and what a URL names;
- :mod:`.executor_contract` and :mod:`.bearer_gate`: what the stack and the executor (and
  the conductor) agree on across the image boundary; the images carry byte-for-byte copies
  (:mod:`.image_copies`, ``scripts/sync-contract``);
- :mod:`.engine_api` and :mod:`.provider_forms`: what each Docker Engine API version takes,
  and the forms pulumi-docker gives values in;
- :mod:`.security`: the normalized spec view, the rules by scope with their table and
  runner, the adapters from Pulumi props and ``docker inspect``, the seccomp profiles;
- :mod:`.paths`: where the repository keeps what is read at run time.

It imports nothing but the standard library and itself: the settings (``stacks``), the
Pulumi components (``components``), the policy pack (``policies``, which needs nothing
else), the operator commands (``operate``), the harness and the tests build on it.
"""
