"""The Docker HEALTHCHECK: ``python3 -m executor_service.healthcheck`` exits 0 when /health says ok.

Plain http.client (no proxy variables honoured, few imports): it runs every few seconds.
"""

from __future__ import annotations

import http.client
import os
import sys


def main() -> int:
    port = int(os.environ.get("EXECUTOR_PORT") or 8080)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        body = response.read(200)
    except OSError as exc:
        print(f"executor health: no answer on port {port}: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if response.status != 200:
        print(f"executor health: HTTP {response.status}: {body.decode(errors='replace')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
