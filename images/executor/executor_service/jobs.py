"""What a job is: the request both front doors (HTTP and MCP) accept, its validation, and its result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from executor_service.settings import Settings


@dataclass(frozen=True)
class Language:
    name: str
    #: Command looked up on the job's PATH when the service starts.
    interpreter: str
    #: The source is written to this file in the job directory (argv cannot carry 256 KiB).
    script_name: str


LANGUAGES: dict[str, Language] = {
    "python": Language("python", "python3", "main.py"),
    "sh": Language("sh", "sh", "main.sh"),
}

LanguageName = Literal["python", "sh"]
StrictNumber = Annotated[float, Field(strict=True)]


class RunRequest(BaseModel):
    """The body of ``POST /v1/run``."""

    model_config = ConfigDict(extra="forbid")

    language: LanguageName
    source: str
    stdin: str | None = None
    timeout_s: StrictNumber | None = None
    max_output_bytes: StrictInt | None = None
    #: Run with the project (read-only) as the working directory instead of the scratch directory.
    in_project: StrictBool = False


class RequestRejected(ValueError):
    """A well-formed request the service refuses; nothing ran. ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class JobSpec:
    language: Language
    source: bytes
    #: None: the job's stdin is /dev/null.
    stdin: bytes | None
    timeout_s: float
    max_output_bytes: int
    #: The job's working directory; None: its scratch directory (HOME/TMPDIR stay the scratch either way).
    #: The project's tools set it to the project, which the job sees read-only.
    workdir: Path | None = None


class JobResult(BaseModel):
    exit_code: int = Field(description="The process's exit status; 128+N when signal N ended it (137: killed).")
    stdout: str
    stderr: str
    duration_ms: float
    timed_out: bool = Field(description="The job ran into its deadline and was killed with all its processes.")
    truncated: bool = Field(description="stdout or stderr was longer than the output cap and was cut.")


def _utf8(text: str, field: str) -> bytes:
    """``text`` as UTF-8; JSON may carry a lone UTF-16 surrogate ("\\ud800"), which is no Unicode text."""
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise RequestRejected(
            f"{field} is not valid Unicode: a lone UTF-16 surrogate (U+{ord(exc.object[exc.start]):04X}) "
            f"at character {exc.start}"
        ) from None


def job_from_request(request: RunRequest, settings: Settings) -> JobSpec:
    """Apply the service's limits to a request. Raises RequestRejected."""
    source = _utf8(request.source, "source")
    if len(source) > settings.max_source_bytes:
        raise RequestRejected(
            f"source is {len(source)} bytes; the limit (EXECUTOR_MAX_SOURCE_BYTES) is {settings.max_source_bytes}",
            status=413,
        )
    stdin = None if request.stdin is None else _utf8(request.stdin, "stdin")
    if stdin is not None and len(stdin) > settings.max_source_bytes:
        raise RequestRejected(
            f"stdin is {len(stdin)} bytes; the limit (EXECUTOR_MAX_SOURCE_BYTES) is {settings.max_source_bytes}",
            status=413,
        )
    timeout_s = settings.default_timeout_s if request.timeout_s is None else request.timeout_s
    if not 0 < timeout_s <= settings.max_timeout_s:
        raise RequestRejected(f"timeout_s must be > 0 and <= {settings.max_timeout_s:g} (got {timeout_s:g})")
    max_output = settings.max_output_bytes if request.max_output_bytes is None else request.max_output_bytes
    if not 1 <= max_output <= settings.max_output_bytes:
        raise RequestRejected(f"max_output_bytes must be between 1 and {settings.max_output_bytes} (got {max_output})")
    if request.in_project and settings.project_dir is None:
        raise RequestRejected("in_project: this executor has no project (EXECUTOR_PROJECT_DIR is unset)")
    return JobSpec(
        language=LANGUAGES[request.language],
        source=source,
        stdin=stdin,
        timeout_s=timeout_s,
        max_output_bytes=max_output,
        workdir=settings.project_dir if request.in_project else None,
    )
