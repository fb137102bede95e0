"""``python3 -m executor_service``: validate the settings, protect the service process, serve HTTP."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

import uvicorn

from executor_service import isolation
from executor_service.http_app import create_app
from executor_service.isolation import IsolationMode, StartupError, StopSignalWatcher
from executor_service.project import check_project_dir
from executor_service.runner import JobRunner
from executor_service.settings import SettingsError, check_job_nproc_fits, load_settings

log = logging.getLogger("executor_service")

LISTEN_HOST = "0.0.0.0"


class UnsignalledServer(uvicorn.Server):
    """uvicorn without its SIGINT/SIGTERM handlers: a handler would let jobs signal PID 1 (see isolation)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(os.environ)
        isolation.refuse_root()
        check_job_nproc_fits(settings)
        mode = IsolationMode.detect()
        check_project_dir(settings, mode)
        isolation.hold_stop_signals()  # before any thread exists, so every thread inherits the mask
        isolation.set_dumpable(False)
        runner = JobRunner(settings, mode)
        runner.prepare()
    except (SettingsError, StartupError) as exc:
        print(f"executor: {exc}", file=sys.stderr)
        return 2
    if mode is IsolationMode.DEVELOPMENT:
        log.warning(
            "not PID 1 of a PID namespace: development mode. Only each job's session is cleaned up; "
            "a job that calls setsid() survives. Never run untrusted code this way."
        )
    server = UnsignalledServer(
        uvicorn.Config(
            create_app(runner),
            host=LISTEN_HOST,
            port=settings.port,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    )
    StopSignalWatcher(mode, on_stop=lambda: setattr(server, "should_exit", True)).start()
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
