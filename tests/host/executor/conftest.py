"""Fixtures for the executor service's unit tests: the real app with real job processes on this host.

Here the service is not PID 1, so it runs in development mode (leftovers found by the job's session).
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from executor_service.__main__ import UnsignalledServer
from executor_service.http_app import create_app
from executor_service.isolation import IsolationMode
from executor_service.runner import JobRunner
from executor_service.settings import Settings, load_settings
from sandbox_model.paths import IMAGES_DIR

TOKEN = "unit-test-token-0123456789abcdef"
#: What the service is given instead of the token (EXECUTOR_TOKEN_SHA256).
TOKEN_SHA256 = hashlib.sha256(TOKEN.encode()).hexdigest()
EXECUTOR_SOURCE = IMAGES_DIR / "executor"
LAUNCHER_SOURCE = EXECUTOR_SOURCE / "launcher" / "job_launch.c"
ZYGOTE_SOURCE = EXECUTOR_SOURCE / "launcher" / "zygote.c"


def build_launcher(directory: Path) -> Path:
    """Compile launcher/job_launch.c, and next to it the fork server's module (launcher/zygote.c, for the
    jobs' Python: its headers), as the image does."""
    from executor_service.runner import JOB_PATH
    from executor_service.zygote import MODULE_NAME

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("a C compiler (cc) is needed to build images/executor/launcher/job_launch.c for these tests")
    binary = directory / "job-launch"
    flags = ["-O2", "-Wall", "-Wextra", "-Werror"]
    subprocess.run([compiler, *flags, "-o", str(binary), str(LAUNCHER_SOURCE)], check=True, capture_output=True)
    job_python = shutil.which("python3", path=JOB_PATH)
    include = subprocess.run(
        [job_python, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not (Path(include) / "Python.h").is_file():
        pytest.fail(f"the jobs' Python ({job_python}) has no headers in {include}: install its -dev package")
    module = directory / MODULE_NAME
    subprocess.run(
        [compiler, *flags, "-shared", "-fPIC", f"-I{include}", "-o", str(module), str(ZYGOTE_SOURCE)],
        check=True,
        capture_output=True,
    )
    return binary


@pytest.fixture(scope="session")
def job_launcher(tmp_path_factory) -> Path:
    return build_launcher(tmp_path_factory.mktemp("launcher"))


def make_settings(work_root: Path, launcher: Path, **overrides: str) -> Settings:
    env = {
        "EXECUTOR_TOKEN_SHA256": TOKEN_SHA256,
        "EXECUTOR_WORK_ROOT": str(work_root),
        "EXECUTOR_JOB_LAUNCHER": str(launcher),
        "EXECUTOR_MAX_TIMEOUT_S": "20",
    }
    env.update(overrides)
    return load_settings(env)


@pytest.fixture
def work_root(tmp_path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    return root


@pytest.fixture(params=["fork", "python", "none"], ids=["fork", "warm", "cold"])
def runner(request, work_root, job_launcher) -> JobRunner:
    """Every runner test three times: Python jobs forked by the fork server, handed to an interpreter
    pre-started after the last sweep (warm), and started cold."""
    settings = make_settings(work_root, job_launcher, EXECUTOR_MAX_OUTPUT_BYTES="4096", EXECUTOR_PRESTART=request.param)
    runner = JobRunner(settings, IsolationMode.DEVELOPMENT)
    runner.prepare()
    yield runner
    runner.close()


def run_async(function, *args):
    """anyio.run on a private event loop: a plain anyio.run would leave the main thread with no
    current loop, which breaks later tests (of other suites) that call asyncio.get_event_loop()."""
    import asyncio

    import anyio

    return anyio.run(function, *args, backend_options={"loop_factory": asyncio.new_event_loop})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveServer:
    """The app under a real uvicorn on a free localhost port, in a thread."""

    def __init__(self, runner: JobRunner):
        import uvicorn

        self.runner = runner
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(runner), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = UnsignalledServer(config)
        self.thread = threading.Thread(target=self.server.run, name="executor-under-test", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the executor app did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(runner):
    with LiveServer(runner) as server:
        yield server


@pytest.fixture
def client(live_server):
    import httpx2

    with httpx2.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30, trust_env=False
    ) as http:
        yield http


@pytest.fixture
def anonymous(live_server):
    import httpx2

    with httpx2.Client(base_url=live_server.url, timeout=30, trust_env=False) as http:
        yield http
