"""Every in-stack address, stated once: the services' names, ports and paths, and what a URL names.

The components declare the containers with these (components/workspace.py, model_server.py,
conductor.py, executors.py, gateways.py, egress_proxy.py), the settings validate against them
(stacks/settings.py: the reserved MCP server name, the ``{secret:<name>}`` references, the
endpoints the egress gateway must admit), and the host-side commands (operate/), the bench and the
tests find the services by them. Standard library only, like the rest of the kernel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

# ---- the workspace --------------------------------------------------------------------------------
#: OpenCode's web UI/API port in the workspace.
WEB_PORT = 4096
#: The workspace's name on the ingress network only. OpenCode listens on the address it resolves
#: to, so the web UI/API is reachable from the ingress gateway and not from the executor or model
#: networks (code running in an executor must not even reach the login).
WEB_ALIAS = "workspace-web"
#: Where the project is mounted in the workspace and in the executors (the path the agent sees).
PROJECT_MOUNT = "/workspace"

# ---- the model ------------------------------------------------------------------------------------
#: The in-stack model server's OpenAI API port (vLLM, the test double).
MODEL_PORT = 8000
#: The model gateway's OpenAI API port (what the workspace calls).
MODEL_GATEWAY_PORT = 8000

# ---- the executors --------------------------------------------------------------------------------
#: The name every executor answers to on the executor network (Docker's DNS round-robins it).
SHARED_ALIAS = "executor"
#: The executors' MCP server in OpenCode's configuration: its tools are ``executor_*``.
EXECUTOR_MCP_NAME = "executor"

# ---- the conductor --------------------------------------------------------------------------------
CONDUCTOR_PORT = 8080
#: The conductor's MCP endpoint path (the executors' is the executor contract's MCP_PATH).
MCP_PATH = "/mcp"
#: The conductor's name on the conductor network, and the address it binds: not reachable from ingress.
CONDUCTOR_ALIAS = "conductor-mcp"
#: Where the project is mounted (read-only) in the conductor.
CONDUCTOR_PROJECT_MOUNT = "/project"

# ---- the gateways ---------------------------------------------------------------------------------
#: The egress gateway's proxy port (squid's http_port).
PROXY_PORT = 3128
#: Where an ingress gateway listens inside its container (the port it publishes on 127.0.0.1).
INGRESS_LISTEN_PORT = 8080

# ---- the user's MCP servers -----------------------------------------------------------------------
#: ``{secret:<name>}`` in a header value: the entry <name> of the secret stack key ``mcp_secrets``.
MCP_SECRET_REFERENCE = re.compile(r"\{secret:([a-z][a-z0-9_]{0,62})\}")

#: A host name (one label or more, e.g. host.docker.internal) or an IPv4 address: what squid's
#: dstdomain can match as written, and nothing that could break out of a squid.conf line.
_HOST = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")


@dataclass(frozen=True)
class Destination:
    """One host:port the egress proxy admits besides the allowlist (e.g. the external model endpoint)."""

    host: str
    port: int
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> Destination:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme not in {"http", "https"} or not _HOST.match(host):
            raise ValueError(
                f"{url!r}: the egress gateway admits http(s) URLs whose host is a name or an "
                "IPv4 address. Fix: give e.g. http://host.docker.internal:1234/v1"
            )
        tls = parts.scheme == "https"
        return cls(host=host, port=parts.port or (443 if tls else 80), tls=tls)
