"""The conductor's healthcheck: GET /health on the address it binds (its network alias)."""

import os
import sys
import urllib.request

host = os.environ.get("CONDUCTOR_HOST", "127.0.0.1")
host = "127.0.0.1" if host in ("0.0.0.0", "") else host
port = os.environ.get("CONDUCTOR_PORT", "8080")
try:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{host}:{port}/health", timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # noqa: BLE001
    print(f"conductor unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
