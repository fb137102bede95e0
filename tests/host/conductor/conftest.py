"""The conductor service (images/conductor) in-process: a real uvicorn, a fake OpenCode server API."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TOKEN = "conductor-unit-token-0123456789abcdef"
PASSWORD = "web-password-unit-0123456789"


@dataclass
class FakeOpenCode:
    """OpenCode's /session API, as much of it as the conductor uses; records every request."""

    requests: list[tuple[str, str, dict | None, str]] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    answer_delay_s: float = 0.0
    aborted: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def handle(self, method: str, path: str, body: dict | None, auth: str):
        self.requests.append((method, path, body, auth))
        import base64

        if auth != "Basic " + base64.b64encode(f"opencode:{PASSWORD}".encode()).decode():
            return 401, {"error": "unauthorized"}
        if (method, path) == ("GET", "/session"):
            return 200, self.sessions
        if (method, path) == ("POST", "/session"):
            session = {"id": f"ses_{len(self.sessions) + 1}", "title": body.get("title", ""), "time": {"updated": 1}}
            self.sessions.append(session)
            return 200, session
        if method == "POST" and path.endswith("/message"):
            deadline = time.monotonic() + self.answer_delay_s
            while time.monotonic() < deadline and not self.aborted.is_set():
                time.sleep(0.05)
            prompt = body["parts"][0]["text"]
            if self.aborted.is_set():
                return 200, {"info": {"error": {"name": "MessageAbortedError"}}, "parts": []}
            user = f"msg_user_{len(self.requests)}"
            # Two steps, as OpenCode records them: the tool call, then the answer (which the POST returns).
            self.messages.extend(
                [
                    {"info": {"role": "user", "id": user}, "parts": [{"type": "text", "text": prompt}]},
                    {
                        "info": {"role": "assistant", "parentID": user},
                        "parts": [{"type": "step-start"}, {"type": "tool", "tool": "executor_run_code"}],
                    },
                    {
                        "info": {"role": "assistant", "parentID": user, "finish": "stop"},
                        "parts": [{"type": "text", "text": f"Executor said: {prompt}"}],
                    },
                ]
            )
            return 200, self.messages[-1]
        if method == "GET" and path.endswith("/message"):
            return 200, self.messages
        if method == "POST" and path.endswith("/abort"):
            self.aborted.set()
            return 200, True
        return 404, {"error": "no route"}


@pytest.fixture
def fake_opencode():
    fake = FakeOpenCode()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = fake.handle(self.command, self.path, body, self.headers.get("Authorization", ""))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hello')\n")
    (root / "README.md").write_text("# demo\n")
    (tmp_path / "outside.txt").write_text("secret outside\n")
    (root / "link-out").symlink_to(tmp_path / "outside.txt")
    (root / "dir-out").symlink_to(tmp_path)
    (root / "link-in").symlink_to(root / "README.md")
    return root


@dataclass
class LiveConductor:
    url: str


@pytest.fixture
def live_conductor(fake_opencode, project):
    import uvicorn

    from conductor_service.app import create_app
    from conductor_service.settings import load_settings

    settings = load_settings(
        {
            "CONDUCTOR_TOKEN_SHA256": hashlib.sha256(TOKEN.encode()).hexdigest(),
            "CONDUCTOR_OPENCODE_URL": fake_opencode.url,
            "CONDUCTOR_OPENCODE_PASSWORD": PASSWORD,
            "CONDUCTOR_PROJECT_DIR": str(project),
            "CONDUCTOR_TASK_TIMEOUT_S": "30",
        }
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield LiveConductor(url=f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
