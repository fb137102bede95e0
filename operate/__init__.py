"""Host-side operator commands for a running stack: the modes of the sandbox.

- :mod:`operate.tui`: OpenCode's terminal UI on the stack's agent (``scripts/tui <stack>``);
- :mod:`operate.task`: a task file run to the end, unattended (``scripts/task <stack> [TASK.md]``);
- :mod:`operate.status`: what the stack is doing (``scripts/status <stack> [--html FILE]``).

They run on the Docker host, with the project's virtualenv, and find the stack's containers by the
labels every container carries (:mod:`sandbox_model.security.spec`). Nothing here changes the stack:
everything the agent runs still runs in the workspace under the generated lockdown, and everything
the model writes still runs in the executors.
"""
