"""Driving the real OpenCode in a running stack's workspace against the model double, as a user would."""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass

import pytest

OPENCODE_TIMEOUT_S = 180


def scripted(name: str, arguments: dict) -> str:
    """A prompt that makes the model double call tool ``name`` with ``arguments`` (its script's rule 2)."""
    encoded = base64.urlsafe_b64encode(json.dumps(arguments).encode()).decode()
    return f"Please do this. TOOL_CALL={name} ARGS={encoded}"


def hostname(container: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "--format", "{{.Config.Hostname}}", container], capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass(frozen=True)
class AgentRun:
    returncode: int
    events: list[dict]
    #: The tail of the run's output, for assertion messages.
    diagnostics: str

    def tool_uses(self) -> list[dict]:
        return [e["part"] for e in self.events if e["type"] == "tool_use"]

    def texts(self) -> list[str]:
        return [e["part"]["text"] for e in self.events if e["type"] == "text"]


def opencode_run(workspace: str, prompt: str) -> AgentRun:
    """``opencode run --format json <prompt>`` inside the workspace container; fails the test on a hang."""
    try:
        run = subprocess.run(
            ["docker", "exec", workspace, "opencode", "run", "--print-logs", "--format", "json", prompt],
            capture_output=True,
            text=True,
            timeout=OPENCODE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"opencode run took longer than {OPENCODE_TIMEOUT_S}s; stderr tail:\n"
            f"{(exc.stderr or b'').decode(errors='replace')[-3000:]}"
        )
    diagnostics = f"\nexit code {run.returncode}\nstdout:\n{run.stdout[-4000:]}\nstderr tail:\n{run.stderr[-3000:]}"
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    return AgentRun(run.returncode, events, diagnostics)
