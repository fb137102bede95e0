"""The executor contract: what the stack gives an executor container and what its service reads.

Both sides of the image boundary state it from here: the stack (``stacks/settings.py``'s
``ExecutorSettings``, ``components/executors.py``) imports this module, and the executor image
carries a byte-for-byte copy, ``images/executor/executor_service/executor_contract.py``, which the
service's ``settings.py`` imports (an image's build context is its own directory, so it cannot
import the kernel). Edit only ``sandbox_model/executor_contract.py``, then refresh the copy with
``.venv/bin/python scripts/sync-contract --write``; tests/docs/test_contract_copies.py fails while
they differ. Standard library only, and nothing but this file: it must work in both places.
"""

from __future__ import annotations

from typing import Final

KIB = 1024
MIB = 1024 * 1024

# ---- the environment variables the service reads (and only these) --------------------------------
#: The SHA-256 of the API token, in hex (see bearer_gate.token_digest): all the service needs to check
#: a presented token. The token itself is never in an executor's environment.
TOKEN_SHA256_ENV = "EXECUTOR_TOKEN_SHA256"
#: Refused in the environment: every `docker exec` in the container (the healthcheck too) inherits it.
FORBIDDEN_TOKEN_ENV = "EXECUTOR_TOKEN"
PORT_ENV = "EXECUTOR_PORT"
DEFAULT_TIMEOUT_S_ENV = "EXECUTOR_DEFAULT_TIMEOUT_S"
MAX_TIMEOUT_S_ENV = "EXECUTOR_MAX_TIMEOUT_S"
MAX_OUTPUT_BYTES_ENV = "EXECUTOR_MAX_OUTPUT_BYTES"
MAX_SOURCE_BYTES_ENV = "EXECUTOR_MAX_SOURCE_BYTES"
JOB_NPROC_ENV = "EXECUTOR_JOB_NPROC"
JOB_MEMORY_MB_ENV = "EXECUTOR_JOB_MEMORY_MB"
WORK_ROOT_ENV = "EXECUTOR_WORK_ROOT"
JOB_LAUNCHER_ENV = "EXECUTOR_JOB_LAUNCHER"
PRESTART_ENV = "EXECUTOR_PRESTART"
FORK_JOBS_ENV = "EXECUTOR_FORK_JOBS"
PROJECT_DIR_ENV = "EXECUTOR_PROJECT_DIR"
TEST_COMMAND_ENV = "EXECUTOR_TEST_COMMAND"

# ---- their defaults and bounds -----------------------------------------------------------------------
#: The service's port (the image's ``EXPOSE`` and ``ENV EXECUTOR_PORT`` say the same).
PORT = 8080
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 60.0
#: The longest ``EXECUTOR_MAX_TIMEOUT_S`` may be.
MAX_TIMEOUT_S_CEILING = 3600.0
MAX_OUTPUT_BYTES = MIB
MAX_OUTPUT_BYTES_CEILING = 64 * MIB
MAX_SOURCE_BYTES = 256 * KIB
MAX_SOURCE_BYTES_CEILING = 16 * MIB
#: A job's RLIMIT_NPROC when the variable is unset (the stack always sets it: see job_nproc below).
JOB_NPROC = 64
JOB_NPROC_FLOOR = 2
JOB_MEMORY_MB_FLOOR = 32
WORK_ROOT = "/tmp"
#: Built into the image (launcher/job_launch.c), as is the static healthcheck (launcher/healthcheck.c).
JOB_LAUNCHER = "/opt/executor/bin/job-launch"
HEALTHCHECK = "/opt/executor/bin/healthcheck"
PRESTART_MODES = ("fork", "python", "none")
PRESTART: Final = "fork"  # Final: its type is the literal, one of PRESTART_MODES
FORK_JOBS = 1000
FORK_JOBS_CEILING = 1_000_000
TEST_COMMAND = "python3 -m pytest"
TEST_COMMAND_MAX_LENGTH = 4096

# ---- the HTTP face -----------------------------------------------------------------------------------
HEALTH_PATH = "/health"
MCP_PATH = "/mcp"

# ---- processes -----------------------------------------------------------------------------------------
#: Tasks the service itself may need beside a job's (uvicorn, worker and signal threads), counted
#: against the same per-UID total (the container's nproc ulimit) as the job's processes.
SERVICE_TASK_HEADROOM = 16
#: The smallest container nproc ulimit that leaves the service room beside a job.
MIN_CONTAINER_NPROC = 24


def highest_job_nproc(container_nproc: int) -> int:
    """The most processes ``EXECUTOR_JOB_NPROC`` may allow under the container's nproc ulimit."""
    return container_nproc - SERVICE_TASK_HEADROOM


def job_nproc(container_nproc: int) -> int:
    """What the stack sets ``EXECUTOR_JOB_NPROC`` to: half the container's processes, and always at
    least ``SERVICE_TASK_HEADROOM`` fewer, so the service keeps its headroom (never below 8)."""
    return max(8, min(container_nproc // 2, highest_job_nproc(container_nproc)))
