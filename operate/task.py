"""``scripts/task <stack> [TASK.md]``: run a task file from the project to the end, unattended.

The task's text goes, as the message, to ``opencode run --format json`` inside the workspace (cwd
``/workspace``, the workspace's own environment and generated configuration), read there from the
project file on stdin. The agent works as it would in the web UI: its tools are the lockdown's, and
every piece of code it runs runs in an executor, so nothing has to be approved by a person. The
run's JSON events are the transcript; they go, as they arrive, to
``<project>/logs/task-<UTC time>-<task name>.jsonl``, and a summary (outcome, steps, tool calls,
duration, the agent's last text) to ``….summary.json`` beside it, both owned by the workspace user.

Limits (``task.timeout_s`` and ``task.max_steps`` in ``Pulumi.<stack>.yaml``, or ``--timeout-s``
and ``--max-steps``): the run is stopped (its process in the workspace is signalled) when the clock
runs out, or when the agent begins one step more than allowed (a step is one call to the model:
OpenCode's ``step_start`` event).

Exit status: 0 the agent finished; 1 it did not (OpenCode reported an error, or stopped without an
answer); 2 the task could not start; 3 the wall-clock limit stopped it; 4 the step limit stopped it;
130 interrupted (Ctrl-C, a hangup or a TERM: the agent is stopped too). With
``workspace.executor_approval: ask`` OpenCode's ``run`` rejects every executor call, so the task
refuses to start unless ``--approve-executor-runs`` says to approve them (OpenCode's ``--auto``: it
approves asks only; every denied tool stays denied).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

import yaml
from docker.errors import DockerException
from pydantic import ValidationError
from requests.exceptions import RequestException

from operate.stack import (
    OperateError,
    StackContainer,
    docker_client,
    executor_approval,
    find_stack,
    project_dir,
    run_command,
)
from operate.transcript import Outcome, Progress, describe, summary
from sandbox_model.destinations import PROJECT_MOUNT
from sandbox_model.naming import PROJECT
from sandbox_model.paths import REPO_ROOT
from stacks.settings import TaskSettings

DEFAULT_TASK = "TASK.md"
LOGS_DIR = "logs"
#: The first line on stdout is the shell's PID (which ``exec`` hands to OpenCode); ``$0`` is the task file.
RUN_WRAPPER = 'echo "$$"; exec "$@" < "$0"'
#: After the signal that stops a run, how long OpenCode has to exit before it is killed.
STOP_GRACE_S = 10
#: Stops the process ``$0`` in the workspace: TERM, then KILL if it is still there after the grace period.
STOP_SCRIPT = (
    f'kill -TERM "$0" 2>/dev/null || exit 0; i=0; while [ "$i" -lt {STOP_GRACE_S} ]; do sleep 1; '
    'kill -0 "$0" 2>/dev/null || exit 0; i=$((i + 1)); done; kill -KILL "$0" 2>/dev/null; exit 0'
)
#: How much of OpenCode's stderr a summary keeps when the agent did not finish.
STDERR_TAIL = 4000


def task_settings(stack: str, stack_file: Path | None = None) -> tuple[TaskSettings, str]:
    """The stack's ``task`` settings from its ``Pulumi.<stack>.yaml`` (the defaults when it has none)."""
    stack_file = stack_file or REPO_ROOT / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        return TaskSettings(), f"the defaults: no {stack_file.name} here"
    config = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
    key = f"{PROJECT}:task"
    try:
        return TaskSettings.model_validate(config.get(key) or {}), f"{key} in {stack_file.name}"
    except ValidationError as exc:
        problems = "; ".join(
            f"{key}.{'.'.join(str(p) for p in e['loc'])} = {e.get('input')!r}: {e['msg']}" for e in exc.errors()
        )
        raise OperateError(
            f"{stack_file}: {problems}. Fix: pulumi config set --path '{key}.<name>' <value> "
            "(see the README's settings table)"
        ) from None


def container_task_path(task: str, project: Path) -> PurePosixPath:
    """The task file as the workspace sees it: ``task`` is relative to the project, or a host path in it."""
    given = Path(task)
    host_path = given if given.is_absolute() else project / given
    resolved = Path(os.path.normpath(host_path))
    try:
        relative = resolved.relative_to(project)
    except ValueError:
        raise OperateError(
            f"{task} is not in the stack's project ({project}): the task runs there. Fix: put the "
            "task file into the project and name it relative to the project"
        ) from None
    try:
        is_file = resolved.is_file()
    except PermissionError:
        raise OperateError(f"cannot read {resolved} as this user. Fix: run as the project's owner") from None
    if not is_file:
        raise OperateError(
            f"no task file {resolved}. Fix: write the task into {relative} in the project "
            f"(or name another file: scripts/task <stack> path/in/the/project.md)"
        )
    if resolved.stat().st_size == 0:
        raise OperateError(f"{resolved} is empty. Fix: write the task into it")
    return PurePosixPath(PROJECT_MOUNT, *relative.parts)


def log_names(task: PurePosixPath, started: datetime, attempt: int = 1) -> tuple[str, str]:
    """The transcript's and the summary's paths in the project (``attempt`` > 1: a second task that second)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", task.stem).strip("-.") or "task"
    base = f"task-{started.strftime('%Y%m%dT%H%M%SZ')}-{stem}" + (f"-{attempt}" if attempt > 1 else "")
    return f"{LOGS_DIR}/{base}.jsonl", f"{LOGS_DIR}/{base}.summary.json"


class OwnedFiles:
    """New files in the project's ``logs/``, handed to the workspace user (when this command may: as root).

    The project is the agent's: nothing in it is followed. ``logs/`` must be a real directory (not a
    symbolic link) and every file is created new (``O_EXCL``), so a link planted there cannot turn a
    write by this command, perhaps as root, into one elsewhere on the host.
    """

    def __init__(self, project: Path, owner: tuple[int, int] | None):
        self.project = project
        self.owner = owner if owner and os.geteuid() == 0 else None

    def _directory(self) -> int:
        logs = self.project / LOGS_DIR
        try:
            os.mkdir(logs, 0o755)
            created = True
        except FileExistsError:
            created = False
        try:
            fd = os.open(logs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            raise OperateError(
                f"{logs} is not a directory ({exc.strerror}): the task's logs go there. Fix: move "
                "it away (a symbolic link is never followed)"
            ) from None
        if created and self.owner:
            os.fchown(fd, *self.owner)
        return fd

    def open(self, name: str) -> IO[str]:
        """A new file in ``logs/`` (FileExistsError when the name is taken)."""
        directory = self._directory()
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=directory)
        finally:
            os.close(directory)
        if self.owner:
            os.fchown(fd, *self.owner)
        return os.fdopen(fd, "w", encoding="utf-8")

    def open_new_logs(self, task: PurePosixPath, started: datetime) -> tuple[IO[str], str, str]:
        """The transcript, opened, and the two log names: the first pair of names not taken yet."""
        for attempt in range(1, 100):
            transcript_name, summary_name = log_names(task, started, attempt)
            if os.path.lexists(self.project / summary_name):
                continue
            try:
                return self.open(Path(transcript_name).name), transcript_name, summary_name
            except FileExistsError:
                continue
        raise OperateError(f"{self.project / LOGS_DIR} already holds 99 logs of {task.name} for this second")

    def write(self, name: str, text: str) -> None:
        with self.open(Path(name).name) as handle:
            handle.write(text)


class TaskRun:
    """One ``opencode run`` in the workspace, read as it goes, stopped at a limit."""

    def __init__(
        self, client, workspace: StackContainer, limits: TaskSettings, transcript: IO[str], echo: IO[str] = sys.stdout
    ):
        self.client = client
        self.workspace = workspace
        self.limits = limits
        self.transcript = transcript
        self.echo = echo
        self.progress = Progress()
        self.stop_reason: Outcome | None = None
        self.stopped_at_step = 0
        #: Why the run could not be followed to its end (the Docker engine's error), if it could not.
        self.lost: str | None = None
        self.exit_code: int | None = None
        self.stderr = bytearray()
        self._pid: int | None = None
        self._stopper: threading.Thread | None = None
        self._lock = threading.Lock()

    def command(self, task: PurePosixPath, title: str, approve: bool) -> list[str]:
        opencode = ["opencode", "run", "--format", "json", "--title", title, *(["--auto"] if approve else [])]
        return ["sh", "-c", RUN_WRAPPER, str(task), *opencode]

    def stop(self, outcome: Outcome) -> None:
        """Stop the run (the first reason counts): TERM to OpenCode in the workspace, KILL after a grace period."""
        with self._lock:
            if self.stop_reason is not None:
                return
            self.stop_reason = outcome
            self.stopped_at_step = self.progress.steps
            pid = self._pid
        if pid is not None:
            self._signal(pid)

    def _signal(self, pid: int) -> None:
        exec_id = self.client.api.exec_create(self.workspace.id, ["sh", "-c", STOP_SCRIPT, str(pid)])["Id"]
        self._stopper = threading.Thread(target=self.client.api.exec_start, args=(exec_id,), daemon=True)
        self._stopper.start()

    def wait_stopped(self) -> None:
        """Wait until a stop under way is done (the process in the workspace has gone)."""
        if self._stopper is not None:
            self._stopper.join()

    def _started(self, pid: int) -> None:
        with self._lock:
            self._pid = pid
            stopping = self.stop_reason is not None
        if stopping:
            self._signal(pid)

    def run(self, task: PurePosixPath, title: str, approve: bool) -> None:
        api = self.client.api
        exec_id = api.exec_create(
            self.workspace.id, self.command(task, title, approve), stdout=True, stderr=True, workdir=PROJECT_MOUNT
        )["Id"]
        timer = threading.Timer(self.limits.timeout_s, self.stop, args=(Outcome.TIMEOUT,))
        timer.daemon = True
        timer.start()
        try:
            pending = b""
            for out, err in api.exec_start(exec_id, stream=True, demux=True):
                if err:
                    self.stderr += err
                    del self.stderr[:-STDERR_TAIL]
                if out:
                    pending += out
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        self._line(line.decode("utf-8", errors="replace"))
            if pending:
                self._line(pending.decode("utf-8", errors="replace"))
        finally:
            timer.cancel()
        self.exit_code = api.exec_inspect(exec_id)["ExitCode"]

    def _line(self, line: str) -> None:
        if self._pid is None and line.strip().isdigit():
            self._started(int(line))
            return
        event = self.progress.add_line(line)
        if event is None:
            return
        self.transcript.write(line.rstrip("\n") + "\n")
        self.transcript.flush()
        self._show(event)
        if event.get("type") == "step_start" and self.progress.steps > self.limits.max_steps:
            self.stop(Outcome.STEP_LIMIT)

    def _show(self, event: dict) -> None:
        kind, part = event.get("type"), event.get("part") or {}
        if kind == "step_start":
            print(f"step {self.progress.steps}", file=self.echo, flush=True)
        elif kind == "tool_use":
            call = self.progress.tool_calls[-1]
            print(
                f"  tool {call.tool}: {call.status}" + (f" ({call.error[:160]})" if call.error else ""),
                file=self.echo,
                flush=True,
            )
        elif kind == "text" and part.get("text"):
            first = part["text"].strip().splitlines()[0] if part["text"].strip() else ""
            print(f"  text: {first[:160]}", file=self.echo, flush=True)
        elif kind == "error":
            print(f"  error: {self.progress.errors[-1]}", file=self.echo, flush=True)

    def outcome(self) -> tuple[Outcome, str | None]:
        if self.stop_reason is Outcome.TIMEOUT:
            return Outcome.TIMEOUT, f"stopped after the wall-clock limit of {self.limits.timeout_s:g} s"
        if self.stop_reason is Outcome.STEP_LIMIT:
            return Outcome.STEP_LIMIT, (
                f"stopped as the agent began step {self.stopped_at_step} (limit {self.limits.max_steps})"
            )
        if self.lost is not None:
            return Outcome.AGENT_ERROR, self.lost
        if self.stop_reason is Outcome.INTERRUPTED:
            return Outcome.INTERRUPTED, "the agent was stopped on Ctrl-C, a hangup or TERM"
        if self.exit_code == 0 and self.progress.finished:
            return Outcome.FINISHED, None
        if self.exit_code not in (0, None) and not self.progress.errors:
            return Outcome.AGENT_ERROR, f"opencode run exited {self.exit_code}"
        return Outcome.AGENT_ERROR, self.progress.why_unfinished()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/task",
        description="Run a task file from the stack's project "
        "to the end, unattended; the transcript and a summary go to <project>/logs/.",
    )
    parser.add_argument("stack", help="the stack's name, as for scripts/up (e.g. dev)")
    parser.add_argument(
        "task",
        nargs="?",
        default=DEFAULT_TASK,
        help=f"the task file, relative to the project (default {DEFAULT_TASK}), or a host path in it",
    )
    parser.add_argument("--timeout-s", type=float, help="wall-clock limit in seconds (default: task.timeout_s)")
    parser.add_argument("--max-steps", type=int, help="most model steps (default: task.max_steps)")
    parser.add_argument(
        "--approve-executor-runs",
        action="store_true",
        help="with workspace.executor_approval: ask, approve the agent's executor runs for this task",
    )
    return parser


def limits_for(args: argparse.Namespace) -> tuple[TaskSettings, str]:
    limits, source = task_settings(args.stack)
    overrides = {
        key: value for key, value in (("timeout_s", args.timeout_s), ("max_steps", args.max_steps)) if value is not None
    }
    if not overrides:
        return limits, source
    try:
        return TaskSettings(**{**limits.model_dump(), **overrides}), f"{source}, overridden on the command line"
    except ValidationError as exc:
        raise OperateError(
            f"{'; '.join(e['msg'] for e in exc.errors())}. Fix: give a positive --timeout-s / --max-steps"
        ) from None


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    limits, source = limits_for(args)
    client = docker_client(timeout=limits.timeout_s + 2 * STOP_GRACE_S + 60)
    workspace = find_stack(client, args.stack).workspace()
    approval = executor_approval(workspace)
    if approval == "ask" and not args.approve_executor_runs:
        raise OperateError(
            f"stack {args.stack!r} asks for approval of every executor run "
            "(workspace.executor_approval: ask), and a task runs unattended: OpenCode would reject "
            "each one. Fix: give --approve-executor-runs to approve them for this task, or set "
            "workspace.executor_approval: allow"
        )
    project = project_dir(workspace)
    task = container_task_path(args.task, project)
    started = datetime.now(UTC)
    files = OwnedFiles(project, workspace.user_ids)
    transcript, transcript_name, summary_name = files.open_new_logs(task, started)
    print(
        f"task {task.relative_to(PROJECT_MOUNT)} on stack {args.stack!r}: at most {limits.timeout_s:g} s and "
        f"{limits.max_steps} steps ({source}); transcript: {transcript_name}",
        flush=True,
    )
    clock = time.monotonic()
    # A hangup or a TERM (a closed terminal, a CI runner's timeout) stops the agent as Ctrl-C does: the
    # process in the workspace would otherwise run on, with no limit left to stop it.
    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    with transcript:
        run = TaskRun(client, workspace, limits, transcript)
        try:
            run.run(task, f"task: {task.relative_to(PROJECT_MOUNT)}", approve=approval == "ask")
        except KeyboardInterrupt:
            run.stop(Outcome.INTERRUPTED)
            run.wait_stopped()
        except (DockerException, RequestException) as exc:  # the engine went away, or the workspace with it
            run.lost = f"lost the run: {exc}"
            with contextlib.suppress(DockerException, RequestException):
                run.stop(Outcome.AGENT_ERROR)  # if the workspace is still there, nothing may run on in it
    outcome, reason = run.outcome()
    facts: dict[str, Any] = {
        "stack": args.stack,
        "task": str(task.relative_to(PROJECT_MOUNT)),
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - clock, 3),
        "limits": limits.model_dump(),
        "opencode_exit_code": run.exit_code,
        "transcript": transcript_name,
        "summary": summary_name,
    }
    if outcome is not Outcome.FINISHED and run.stderr:
        facts["opencode_stderr_tail"] = run.stderr.decode("utf-8", errors="replace")
        print("opencode's stderr, the end:\n" + facts["opencode_stderr_tail"].rstrip(), file=sys.stderr)
    result = summary(run.progress, outcome, reason=reason, **facts)
    files.write(summary_name, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(describe(result), flush=True)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(run_command(main))
