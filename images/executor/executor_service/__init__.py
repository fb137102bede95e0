"""The executor service: runs the agent's generated code, one job at a time, inside a hardened container.

The Docker healthcheck is not part of this package: it is launcher/healthcheck.c, a static execute-only
binary, so that no job can read or take over the process Docker execs into the container for it.
"""
