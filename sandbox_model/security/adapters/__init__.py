"""Adapters: what one place sees of a container or network, converted to the spec view the rules read.

- :mod:`.pulumi_props`: pulumi-docker resource properties, as the engine serializes them
  (the policy pack, the declared stacks under mocks);
- :mod:`.docker_inspect`: what a running engine reports (``docker inspect``);
- :mod:`.docker_semantics`: what Docker means by a setting, whoever reports it (a bind volume,
  a CPU quota), stated once for both.
"""
