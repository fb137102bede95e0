"""The model double and the model gateway run on the host as their images run them, for tests.

Both programs live in image contexts (``images/model-double``, ``images/model-gateway``), not in
a package, and both log one JSON object per line on stdout: a startup record first (with the port
they got for ``*_PORT=0``), then one record per request. ``DoubleProcess`` is the scripted model
demanding a key; ``GatewayProcess`` stands in front of it as the stack's model gateway does, so a
client on the host (OpenCode) reaches the model the way the workspace does: with no key of its own.
``load_gateway_module`` imports the gateway's program for in-process servers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Mapping
from types import ModuleType

from sandbox_model.paths import IMAGES_DIR

DOUBLE_SCRIPT = IMAGES_DIR / "model-double" / "model_double.py"
GATEWAY_SCRIPT = IMAGES_DIR / "model-gateway" / "model_gateway.py"
DOUBLE_MODEL = "qwen3-4b-instruct-2507"
STARTUP_TIMEOUT_S = 20


def load_gateway_module(name: str = "model_gateway_under_test") -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, GATEWAY_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class JsonLogProcess:
    """``python3 -I -B <script>`` with ``env``; ``.startup`` is its first log record."""

    def __init__(self, script, env: Mapping[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-B", str(script)],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        first: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(first,), daemon=True)
        self._reader.start()
        try:
            self.startup = json.loads(first.get(timeout=STARTUP_TIMEOUT_S))
        except (queue.Empty, json.JSONDecodeError):
            self.stop()
            raise RuntimeError(f"{script.name} did not start:\n{''.join(self.lines)}") from None

    def _read(self, first: queue.Queue) -> None:
        for line in self.process.stdout:
            if not self.lines:
                first.put(line)
            self.lines.append(line)

    def stop(self) -> None:
        """Stop the program and wait until all its log lines are read."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)

    def requests(self) -> list[dict]:
        """The per-request log records (the startup line excluded)."""
        records = [json.loads(line) for line in self.lines[1:] if line.startswith("{")]
        return [record for record in records if "path" in record]


class DoubleProcess(JsonLogProcess):
    """The model double on 127.0.0.1 and a free port, demanding ``api_key``."""

    def __init__(self, api_key: str, model: str = DOUBLE_MODEL):
        self.api_key = api_key
        super().__init__(
            DOUBLE_SCRIPT,
            {
                "MODEL_DOUBLE_HOST": "127.0.0.1",
                "MODEL_DOUBLE_PORT": "0",
                "MODEL_DOUBLE_MODEL": model,
                "MODEL_DOUBLE_API_KEY": api_key,
            },
        )
        self.port = self.startup["port"]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"


class GatewayProcess(JsonLogProcess):
    """The model gateway on 127.0.0.1 and a free port: ``.base_url`` is where a client sends its requests."""

    def __init__(self, upstream_base_url: str, api_key: str | None, proxy_url: str | None = None):
        env = {
            "MODEL_GATEWAY_HOST": "127.0.0.1",
            "MODEL_GATEWAY_PORT": "0",
            "MODEL_GATEWAY_UPSTREAM": upstream_base_url,
        }
        if api_key is not None:
            env["MODEL_GATEWAY_API_KEY"] = api_key
        if proxy_url is not None:
            env["MODEL_GATEWAY_PROXY"] = proxy_url
        super().__init__(GATEWAY_SCRIPT, env)
        self.port = self.startup["port"]
        base_path = "/" + upstream_base_url.split("://", 1)[1].partition("/")[2].strip("/")
        self.base_url = f"http://127.0.0.1:{self.port}{base_path.rstrip('/')}"
