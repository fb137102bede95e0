"""``python3 -m conductor_service``: serve the conductor (configuration: conductor_service.settings)."""

import os
import sys

import uvicorn

from conductor_service.app import create_app
from conductor_service.settings import ConfigError, load_settings


def main() -> int:
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(f"conductor: {exc}", file=sys.stderr)
        return 78
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
