"""The model gateway's healthcheck: its own health endpoint answers 200 (the upstream is not asked).

Run by Docker inside the container (``python3 -I -B healthcheck.py``); exit 0 when healthy.
"""

import os
import sys
import urllib.request

port = os.environ.get("MODEL_GATEWAY_PORT", "8000")
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(f"http://127.0.0.1:{port}/model-gateway/health", timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", said on stderr
    print(f"model-gateway unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
