"""The terminal UI mode on the running stack, as its user runs it: ``bash scripts/tui <stack>`` in a terminal.

The terminal is a tmux pane (a server of this test's own, ``tmux -L``): keys are sent to it and its
screen is read back. The TUI must show the agent's model, and a prompt typed into it must reach
the model double, whose script (``MARKER=<token>``) runs code in an executor, and come back as the
double's answer. The web password must be on no command line on the host, and no TUI may be left
running in the workspace, neither after the user quits nor after the terminal goes away.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from sandbox_model.paths import REPO_ROOT
from tests.support.agent_run import hostname

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

#: Bounds the wait for a screen (the test then fails, showing the screen); not a measurement.
SCREEN_DEADLINE_S = 120
EXITED = "TUI-EXITED="


class Terminal:
    """A 200x50 tmux pane running one command, on a tmux server of its own."""

    def __init__(self, command: str):
        if shutil.which("tmux") is None:
            pytest.fail("tmux is not installed: the TUI test drives the TUI through it (apt-get install tmux)")
        self.socket = f"opencode-sandbox-tui-test-{secrets.token_hex(4)}"
        # The pane outlives the command, so its exit status stays on the screen.
        script = f"{command}; echo {EXITED}$?; sleep 600"
        self._tmux("new-session", "-d", "-x", "200", "-y", "50", "-c", str(REPO_ROOT), script)
        self.socket_path = Path(self._tmux("display-message", "-p", "#{socket_path}").strip())

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p")

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-l", text)

    def key(self, name: str) -> None:
        self._tmux("send-keys", name)

    def wait_for(self, what: str, found) -> str:
        deadline = time.monotonic() + SCREEN_DEADLINE_S
        while True:
            screen = self.screen()
            if found(screen):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"the terminal never showed {what}; its screen:\n{screen}")
            time.sleep(0.5)

    def close(self) -> None:
        """What closing the terminal window does: the tmux server and everything in its panes get a hangup."""
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
        self.socket_path.unlink(missing_ok=True)  # tmux leaves its socket file behind


def model_id(workspace: str) -> str:
    env = subprocess.run(
        ["docker", "inspect", "--format", "{{json .Config.Env}}", workspace], capture_output=True, text=True, check=True
    ).stdout
    config = next(e.partition("=")[2] for e in json.loads(env) if e.startswith("OPENCODE_CONFIG_CONTENT="))
    return json.loads(config)["model"].partition("/")[2]


def web_password(workspace: str) -> str:
    env = subprocess.run(
        ["docker", "inspect", "--format", "{{json .Config.Env}}", workspace], capture_output=True, text=True, check=True
    ).stdout
    return next(e.partition("=")[2] for e in json.loads(env) if e.startswith("OPENCODE_SERVER_PASSWORD="))


def tuis_in(workspace: str) -> list[str]:
    """The TUI processes in the workspace (OpenCode's binary running ``attach``)."""
    processes = subprocess.run(
        ["docker", "exec", workspace, "ps", "-eo", "args"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    commands = [p.split() for p in processes]
    return [" ".join(c) for c in commands if c[:1] and c[0].endswith("/opencode") and c[1:2] == ["attach"]]


def wait_until_no_tui(workspace: str) -> list[str]:
    """The TUIs still in the workspace once none is left, or the deadline has passed."""
    deadline = time.monotonic() + SCREEN_DEADLINE_S
    while (left := tuis_in(workspace)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def host_command_lines() -> list[str]:
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # gone meanwhile
    return lines


@pytest.fixture
def workspace(deployed_stack) -> str:
    if "model" not in deployed_stack.containers:
        pytest.skip(f"stack {deployed_stack.stack!r} has no in-stack model server to script the agent")
    workspace = deployed_stack.one("workspace")
    assert wait_until_no_tui(workspace) == [], "a TUI is already running in the workspace"
    return workspace


def test_the_tui_shows_the_agent_and_a_typed_prompt_gets_the_doubles_answer(deployed_stack, workspace):
    terminal = Terminal(f"bash scripts/tui {shlex.quote(deployed_stack.stack)}")
    try:
        model = model_id(workspace)
        terminal.wait_for(f"the agent's model {model}", lambda s: model in s and "/workspace" in s)
        password = web_password(workspace)
        assert [line for line in host_command_lines() if password in line] == []
        assert len(tuis_in(workspace)) == 1

        token = f"tui-{secrets.token_hex(6)}"
        terminal.type(f"Run the executor check. MARKER={token}")
        terminal.key("Enter")
        screen = terminal.wait_for(
            "the double's answer", lambda s: "Executor said:" in s and re.search(rf'"stdout": "\S+ {token}', s)
        )
        printed_host = re.search(rf'"stdout": "(\S+) {token}', screen).group(1)
        executors = {hostname(name) for name in deployed_stack.containers["executor"]}
        assert printed_host in executors, f"the code ran on {printed_host!r}, no executor ({executors}):\n{screen}"

        terminal.key("C-c")  # the TUI's own exit, with an empty prompt
        screen = terminal.wait_for("the TUI's exit", lambda s: EXITED in s)
        assert f"{EXITED}0" in screen, screen
        assert wait_until_no_tui(workspace) == []
    finally:
        terminal.close()


def test_closing_the_terminal_ends_the_tui_in_the_workspace(deployed_stack, workspace):
    terminal = Terminal(f"bash scripts/tui {shlex.quote(deployed_stack.stack)}")
    try:
        model = model_id(workspace)
        terminal.wait_for(f"the agent's model {model}", lambda s: model in s)
        assert len(tuis_in(workspace)) == 1
    finally:
        terminal.close()
    assert wait_until_no_tui(workspace) == [], "the TUI stayed behind in the workspace after its terminal closed"
