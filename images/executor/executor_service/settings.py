# The aliases are the contract's names (executor_contract.*_ENV, shared with the stack), not literals, so the
# pydantic plugin cannot see them; nothing constructs Settings by keyword (load_settings validates a mapping).
# mypy: disable-error-code="pydantic-alias"
"""The service's settings, read from ``EXECUTOR_*`` environment variables and validated at start.

The variables, their defaults and bounds are the executor contract (``executor_contract.py``, a copy
of the kernel's ``sandbox_model/executor_contract.py``, which the stack builds the environment from).
"""

from __future__ import annotations

import resource
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from executor_service import executor_contract as contract
from executor_service.executor_contract import SERVICE_TASK_HEADROOM


class SettingsError(ValueError):
    """Bad configuration; the message names the variable(s) at fault."""


class Settings(BaseModel):
    """Everything the operator can set. Field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    #: The SHA-256 of the API token, in hex: all the service needs to check a presented token. The
    #: token itself is never in an executor's environment, which every `docker exec` inherits.
    token_sha256: str = Field(alias=contract.TOKEN_SHA256_ENV, pattern=r"^[0-9a-f]{64}$", repr=False)
    port: int = Field(contract.PORT, alias=contract.PORT_ENV, ge=1, le=65535)
    default_timeout_s: float = Field(contract.DEFAULT_TIMEOUT_S, alias=contract.DEFAULT_TIMEOUT_S_ENV, gt=0)
    max_timeout_s: float = Field(
        contract.MAX_TIMEOUT_S, alias=contract.MAX_TIMEOUT_S_ENV, gt=0, le=contract.MAX_TIMEOUT_S_CEILING
    )
    max_output_bytes: int = Field(
        contract.MAX_OUTPUT_BYTES, alias=contract.MAX_OUTPUT_BYTES_ENV, ge=1, le=contract.MAX_OUTPUT_BYTES_CEILING
    )
    max_source_bytes: int = Field(
        contract.MAX_SOURCE_BYTES, alias=contract.MAX_SOURCE_BYTES_ENV, ge=1, le=contract.MAX_SOURCE_BYTES_CEILING
    )
    job_nproc: int = Field(contract.JOB_NPROC, alias=contract.JOB_NPROC_ENV, ge=contract.JOB_NPROC_FLOOR)
    job_memory_mb: int | None = Field(None, alias=contract.JOB_MEMORY_MB_ENV, ge=contract.JOB_MEMORY_MB_FLOOR)
    #: The writable tmpfs jobs run in (``<work_root>/job``); emptied after every job. Tests point it
    #: at a temporary directory; in the container it is the stack's ``/tmp`` tmpfs.
    work_root: Path = Field(Path(contract.WORK_ROOT), alias=contract.WORK_ROOT_ENV)
    #: The small C program (launcher/job_launch.c) that puts a job's limits on it, then execs it.
    job_launcher: Path = Field(Path(contract.JOB_LAUNCHER), alias=contract.JOB_LAUNCHER_ENV)
    #: How Python jobs start. ``fork``: forked, per job, by a fork server (zygote.py) that waits inside its
    #: own start-up; needs Landlock ABI 6, else ``python`` is used. ``python``: after every job's sweep,
    #: the next Python job's interpreter is started and waits (prestart.py). ``none``: every job starts its
    #: interpreter when it comes (a cold start).
    prestart: Literal["fork", "python", "none"] = Field(contract.PRESTART, alias=contract.PRESTART_ENV)
    #: Jobs one fork server forks before the service replaces it (after that job's sweep): what its jobs
    #: share (the hash secret, the address-space layout; see the README) is shared by at most this many.
    fork_jobs: int = Field(contract.FORK_JOBS, alias=contract.FORK_JOBS_ENV, ge=1, le=contract.FORK_JOBS_CEILING)
    #: Where the stack mounts the agent's project, read-only, at the path the agent sees it: the
    #: working directory of the project tools' jobs (run_command, run_tests). Unset: no project tools.
    project_dir: Path | None = Field(None, alias=contract.PROJECT_DIR_ENV)
    #: What ``run_tests`` runs in the project (a POSIX sh command line; the tool appends its arguments).
    test_command: str = Field(
        contract.TEST_COMMAND,
        alias=contract.TEST_COMMAND_ENV,
        min_length=1,
        max_length=contract.TEST_COMMAND_MAX_LENGTH,
    )

    @model_validator(mode="after")
    def _default_timeout_within_max(self) -> Settings:
        if self.default_timeout_s > self.max_timeout_s:
            raise ValueError(
                f"EXECUTOR_DEFAULT_TIMEOUT_S ({self.default_timeout_s:g}) must not exceed "
                f"EXECUTOR_MAX_TIMEOUT_S ({self.max_timeout_s:g})"
            )
        return self


#: Refused in the environment: see ``Settings.token_sha256``.
FORBIDDEN_TOKEN_VARIABLE = contract.FORBIDDEN_TOKEN_ENV


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Settings from ``environ``; an empty variable counts as unset. Raises SettingsError."""
    if FORBIDDEN_TOKEN_VARIABLE in environ:
        raise SettingsError(
            f"{FORBIDDEN_TOKEN_VARIABLE} must not be in an executor's environment (every `docker exec` in the "
            "container, the healthcheck included, inherits it): give EXECUTOR_TOKEN_SHA256, the token's SHA-256 "
            'in hex (e.g. printf %s "$TOKEN" | sha256sum)'
        )
    names = {field.alias for field in Settings.model_fields.values()}
    given = {name: value for name, value in environ.items() if name in names and value.strip() != ""}
    try:
        return Settings.model_validate(given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            # Only the variable and the rule: the rejected value may be the token.
            problems.append(f"{where}: {error['msg']}")
        raise SettingsError("invalid executor settings: " + "; ".join(problems)) from None


def check_job_nproc_fits(settings: Settings, container_nproc_limit: int | None = None) -> None:
    """EXECUTOR_JOB_NPROC must leave the service room under the container's nproc ulimit.

    ``RLIMIT_NPROC`` counts every task of the UID (the service's threads included), so a job
    allowed as many as the container limit could stop the service from starting a thread.
    """
    if container_nproc_limit is None:
        container_nproc_limit = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if container_nproc_limit == resource.RLIM_INFINITY:
        return
    highest = contract.highest_job_nproc(container_nproc_limit)
    if settings.job_nproc > highest:
        raise SettingsError(
            f"EXECUTOR_JOB_NPROC ({settings.job_nproc}) must be at most {highest}: the container's nproc "
            f"ulimit is {container_nproc_limit} and the service keeps {SERVICE_TASK_HEADROOM} for itself"
        )
