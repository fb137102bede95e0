"""Names of the stack's Docker objects: `opencode-sandbox-<stack>-<part>...`.

Fixed names make containers easy to find (`docker ps`), and they are the DNS
names the containers use to reach each other on the stack's networks.
"""

from stacks.settings import PROJECT


def docker_name(stack: str, *parts: str) -> str:
    return "-".join((PROJECT, stack, *parts))
