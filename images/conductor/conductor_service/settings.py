"""The conductor's configuration: environment variables only, checked once at start.

CONDUCTOR_TOKEN_SHA256        hex SHA-256 of the bearer token clients present (the token itself never
                              reaches the conductor)
CONDUCTOR_OPENCODE_URL        the workspace's OpenCode server, e.g. http://workspace-web:4096
CONDUCTOR_OPENCODE_PASSWORD   its web password (HTTP Basic, user ``opencode``)
CONDUCTOR_PROJECT_DIR         the project, mounted read-only (default /project)
CONDUCTOR_HOST                the address to bind (default 0.0.0.0; the stack gives its network alias)
CONDUCTOR_PORT                the port (default 8080)
CONDUCTOR_TASK_TIMEOUT_S      how long delegate_task waits for the agent's answer (default 1800)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    token_sha256: str
    opencode_url: str
    opencode_password: str
    project_dir: Path
    host: str = "0.0.0.0"
    port: int = 8080
    task_timeout_s: float = 1800.0


def load_settings(environ: Mapping[str, str]) -> Settings:
    digest = environ.get("CONDUCTOR_TOKEN_SHA256", "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ConfigError("CONDUCTOR_TOKEN_SHA256 is not a hex SHA-256. Fix: set it to sha256(token).hexdigest()")
    url = environ.get("CONDUCTOR_OPENCODE_URL", "").rstrip("/")
    if not re.fullmatch(r"http://[A-Za-z0-9.-]+(:\d+)?", url):
        raise ConfigError(
            f"CONDUCTOR_OPENCODE_URL={url!r} is not http://host[:port]. Fix: e.g. http://workspace-web:4096"
        )
    password = environ.get("CONDUCTOR_OPENCODE_PASSWORD", "")
    if not password:
        raise ConfigError("CONDUCTOR_OPENCODE_PASSWORD is empty. Fix: set it to the workspace's web password")
    try:
        port = int(environ.get("CONDUCTOR_PORT", "8080"))
        timeout = float(environ.get("CONDUCTOR_TASK_TIMEOUT_S", "1800"))
    except ValueError as exc:
        raise ConfigError(f"CONDUCTOR_PORT / CONDUCTOR_TASK_TIMEOUT_S: {exc}") from None
    if not 0 <= port <= 65535 or timeout <= 0:
        raise ConfigError("CONDUCTOR_PORT must be 0-65535 and CONDUCTOR_TASK_TIMEOUT_S positive")
    return Settings(
        token_sha256=digest,
        opencode_url=url,
        opencode_password=password,
        project_dir=Path(environ.get("CONDUCTOR_PROJECT_DIR", "/project")),
        host=environ.get("CONDUCTOR_HOST", "0.0.0.0"),
        port=port,
        task_timeout_s=timeout,
    )
