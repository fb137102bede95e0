"""The service process's own protections: no root, no signal handlers, stop signals filtered by sender."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from executor_service import isolation
from executor_service.isolation import SI_KERNEL, SI_USER, IsolationMode, accepts_stop_signal

from .conftest import EXECUTOR_SOURCE, TOKEN, TOKEN_SHA256

SI_QUEUE = -1


def test_root_is_refused(monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 0)
    with pytest.raises(isolation.StartupError, match="UID 0"):
        isolation.refuse_root()
    monkeypatch.setattr(os, "getuid", lambda: 20000)
    monkeypatch.setattr(os, "geteuid", lambda: 20000)
    isolation.refuse_root()


def test_outside_pid_1_the_mode_is_development():
    assert os.getpid() != 1
    assert IsolationMode.detect() is IsolationMode.DEVELOPMENT


@pytest.mark.parametrize(
    ("si_pid", "si_code", "accepted"),
    [
        (0, SI_USER, True),  # docker stop / docker kill: sent from outside the PID namespace
        (0, SI_KERNEL, True),
        (57, SI_USER, False),  # a job's kill(1, SIGTERM)
        (0, SI_QUEUE, False),  # a job forging si_pid 0 with rt_sigqueueinfo
    ],
)
def test_in_a_container_only_signals_from_outside_stop_the_service(si_pid, si_code, accepted):
    info = SimpleNamespace(si_pid=si_pid, si_code=si_code, si_signo=signal.SIGTERM)
    assert accepts_stop_signal(IsolationMode.CONTAINER, info) is accepted
    assert accepts_stop_signal(IsolationMode.DEVELOPMENT, info) is True


def test_uvicorn_installs_no_signal_handlers():
    import uvicorn

    from executor_service.__main__ import UnsignalledServer

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = UnsignalledServer(uvicorn.Config(app=None))
    with server.capture_signals():
        assert {sig: signal.getsignal(sig) for sig in before} == before


def _python(code: str, **kwargs) -> subprocess.Popen:
    env = {"PYTHONPATH": str(EXECUTOR_SOURCE), "PATH": os.environ["PATH"]}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE, text=True, **kwargs
    )


def test_the_service_process_can_make_itself_undumpable():
    probe = _python(
        """
        from executor_service import isolation
        isolation.set_dumpable(False)
        print(isolation.is_dumpable())
        isolation.set_dumpable(True)
        print(isolation.is_dumpable())
        """
    )
    assert probe.communicate(timeout=20)[0].split() == ["False", "True"]


def test_a_held_stop_signal_reaches_the_watcher_not_a_handler():
    child = _python(
        """
        import signal, threading, time
        from executor_service import isolation
        isolation.hold_stop_signals()
        print(signal.getsignal(signal.SIGINT) is signal.SIG_DFL, flush=True)
        stopped = threading.Event()
        isolation.StopSignalWatcher(isolation.IsolationMode.DEVELOPMENT, stopped.set).start()
        print("ready", flush=True)
        print("stopped" if stopped.wait(20) else "not stopped", flush=True)
        """
    )
    assert child.stdout.readline().strip() == "True"
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.1)
    child.send_signal(signal.SIGTERM)
    assert child.stdout.readline().strip() == "stopped"
    assert child.wait(timeout=20) == 0


def _start_main(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(EXECUTOR_SOURCE), "PATH": os.environ["PATH"], **env_overrides}
    return subprocess.run(
        [sys.executable, "-m", "executor_service"], env=env, capture_output=True, text=True, timeout=30
    )


def test_the_service_will_not_start_without_the_token_digest():
    finished = _start_main({})
    assert finished.returncode == 2
    assert "EXECUTOR_TOKEN_SHA256" in finished.stderr


def test_the_service_will_not_start_with_the_token_itself_in_its_environment(tmp_path):
    finished = _start_main(
        {"EXECUTOR_TOKEN_SHA256": TOKEN_SHA256, "EXECUTOR_TOKEN": TOKEN, "EXECUTOR_WORK_ROOT": str(tmp_path)}
    )
    assert finished.returncode == 2
    assert "EXECUTOR_TOKEN must not be in an executor's environment" in finished.stderr
    assert TOKEN not in finished.stderr


@pytest.mark.skipif(os.getuid() != 0, reason="checks the refusal to run as root, so must run as root")
def test_the_service_will_not_start_as_root(tmp_path):
    finished = _start_main({"EXECUTOR_TOKEN_SHA256": TOKEN_SHA256, "EXECUTOR_WORK_ROOT": str(tmp_path)})
    assert finished.returncode == 2
    assert "refusing to run as UID 0" in finished.stderr


@pytest.fixture
def shared_dir():
    """A directory another UID can use (pytest's tmp_path is private to its user)."""
    directory = Path(tempfile.mkdtemp(prefix="executor-service-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def test_the_service_serves_and_a_stop_signal_ends_it_promptly(shared_dir, job_launcher):
    import httpx2

    from .conftest import _free_port

    work = shared_dir / "work"
    work.mkdir(mode=0o777)
    work.chmod(0o777)
    launcher = shutil.copy(job_launcher, shared_dir / "job-launch")
    command = [sys.executable, "-m", "executor_service"]
    if os.getuid() == 0:
        # The service refuses root. A user namespace mapping nobody to root gives it a non-root UID
        # while files keep root's access (the checkout and its virtualenv may be private to root).
        command = ["unshare", "--user", "--map-user=65534", "--map-group=65534", *command]
    port = _free_port()
    env = {
        "PYTHONPATH": str(EXECUTOR_SOURCE),
        "PATH": os.environ["PATH"],
        "EXECUTOR_TOKEN_SHA256": TOKEN_SHA256,
        "EXECUTOR_PORT": str(port),
        "EXECUTOR_WORK_ROOT": str(work),
        "EXECUTOR_JOB_LAUNCHER": str(launcher),
    }
    service = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1, trust_env=False)
                break
            except httpx2.TransportError:
                assert service.poll() is None, service.stderr.read()
                assert time.monotonic() < deadline, "the service did not answer within 20 s"
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}
        ran = httpx2.post(
            f"http://127.0.0.1:{port}/v1/run",
            json={"language": "sh", "source": "echo $EXECUTOR_TOKEN; id -u"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
            trust_env=False,
        ).json()
        assert ran["stdout"] == ("\n65534\n" if os.getuid() == 0 else f"\n{os.getuid()}\n")
        stopped_at = time.monotonic()
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=10) == 0
        assert time.monotonic() - stopped_at < 5
        assert "development mode" in service.stderr.read()
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
