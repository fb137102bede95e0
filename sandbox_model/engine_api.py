"""What the Docker engine must support for a container declaration, by Engine API version.

pulumi-docker talks to the engine through Docker's Go client, which refuses, before sending
anything, a request field the engine's API version predates (moby ``client/container_create.go``):
a declaration that uses such a field cannot be created at all on an older engine. The stack says
which API its engine speaks (setting ``engine.api_version``); the program uses a feature only where
that version has it, and settings validation refuses what the engine could not run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ApiVersion = tuple[int, int]

#: Docker 20.10, the oldest engine the stack supports (and the one our CI runs).
OLDEST_SUPPORTED_API: ApiVersion = (1, 41)


@dataclass(frozen=True)
class EngineFeature:
    what: str
    min_api: ApiVersion
    docker_release: str

    def supported_by(self, api: ApiVersion) -> bool:
        return api >= self.min_api


#: ``healthcheck.start_interval``: the Go client refuses a non-zero value below API 1.44.
HEALTHCHECK_START_INTERVAL = EngineFeature("healthcheck start_interval", (1, 44), "25.0")
#: ``seccomp=builtin`` (Docker's own default profile by name).
SECCOMP_BUILTIN = EngineFeature("security option seccomp=builtin", (1, 42), "23.0")


def parse_api_version(text: str) -> ApiVersion:
    match = re.fullmatch(r"(\d+)\.(\d+)", text.strip())
    if not match:
        raise ValueError(f"not an Engine API version (major.minor, e.g. 1.41): {text!r}")
    return int(match[1]), int(match[2])


def format_api_version(api: ApiVersion) -> str:
    return f"{api[0]}.{api[1]}"
