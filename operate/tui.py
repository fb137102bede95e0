"""``scripts/tui <stack>``: OpenCode's terminal UI on a running stack's agent.

The TUI runs inside the workspace container (``docker exec -it``) and attaches to the OpenCode server
there (``opencode attach http://workspace-web:4096``), so it sees the agent's sessions, model and
tools exactly as the web UI does, under the same generated configuration and lockdown. The web
password never leaves the container: ``opencode attach`` takes it from ``OPENCODE_SERVER_PASSWORD``,
which every ``docker exec`` inherits from the container's environment, so it is on no command line.

Docker does not end an exec'd process when its client goes away (a closed terminal, a lost SSH
connection): the TUI would stay behind in the workspace. So the TUI runs under a small shell that
records its process group in the workspace's ``/tmp``, and this command ends that group when it
returns for any reason but the TUI's own exit.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence

from operate.stack import OperateError, StackContainer, docker_client, find_stack, run_command
from sandbox_model.destinations import PROJECT_MOUNT, WEB_ALIAS, WEB_PORT

#: Where the TUI's shell records its process group, in the workspace's /tmp (a tmpfs).
PIDFILE_PATTERN = "/tmp/opencode-sandbox-tui-{}.pid"
#: ``$0`` is the pid file; the rest is the command. Not ``exec``: the shell removes the file after a
#: normal exit, so a later clean-up never signals a process group number that is no longer the TUI's.
WRAPPER = 'echo "$$" > "$0"; "$@"; status=$?; rm -f "$0"; exit "$status"'
#: Ends the TUI's process group if it is still there (TERM, then KILL after a grace period).
CLEANUP = (
    'group=$(cat "$0" 2>/dev/null) || exit 0; rm -f "$0"; kill -TERM "-$group" 2>/dev/null || exit 0; '
    'sleep 3; kill -KILL "-$group" 2>/dev/null; exit 0'
)
#: Host environment passed through by name only (``-e NAME``): the terminal's type and colours.
TERMINAL_ENV = ("TERM", "COLORTERM")


def server_url() -> str:
    """The OpenCode server as the workspace itself reaches it (it listens on its ingress alias only)."""
    return f"http://{WEB_ALIAS}:{WEB_PORT}"


def attach_command(workspace: str, pidfile: str, session: str | None = None, resume: bool = False) -> list[str]:
    """The ``docker exec`` command line: nothing secret is on it."""
    command = ["docker", "exec", "--interactive", "--tty"]
    for name in TERMINAL_ENV:
        command += ["--env", name]
    command += [workspace, "sh", "-c", WRAPPER, pidfile, "opencode", "attach", server_url(), "--dir", PROJECT_MOUNT]
    if session:
        command += ["--session", session]
    elif resume:
        command.append("--continue")
    return command


def end_leftover(client, workspace: StackContainer, pidfile: str) -> None:
    client.api.exec_start(client.api.exec_create(workspace.id, ["sh", "-c", CLEANUP, pidfile])["Id"])


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/tui",
        description="Open OpenCode's terminal UI on a running stack's agent (the password stays in the workspace).",
    )
    parser.add_argument("stack", help="the stack's name, as for scripts/up (e.g. dev)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-c", "--continue", dest="resume", action="store_true", help="continue the last session")
    group.add_argument("-s", "--session", help="open this session (an id the TUI's session list shows)")
    args = parser.parse_args(argv)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise OperateError(
            "the TUI needs a terminal: run scripts/tui from an interactive shell (for unattended work use scripts/task)"
        )
    if shutil.which("docker") is None:
        raise OperateError(
            "the docker command is not on PATH: the TUI runs through `docker exec -it`. Fix: install the Docker CLI"
        )
    client = docker_client()
    workspace = find_stack(client, args.stack).workspace()
    if workspace.health not in ("healthy", "-"):
        print(f"note: {workspace.name} is {workspace.health}; the TUI may not reach its server yet", file=sys.stderr)
    pidfile = PIDFILE_PATTERN.format(secrets.token_hex(8))
    previous = {signum: signal.signal(signum, _raise_exit) for signum in (signal.SIGHUP, signal.SIGTERM)}
    process = None
    try:
        process = subprocess.Popen(attach_command(workspace.name, pidfile, args.session, args.resume))
        return process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if process is not None and process.poll() is None:
            process.terminate()
        end_leftover(client, workspace, pidfile)


if __name__ == "__main__":
    sys.exit(run_command(main))
