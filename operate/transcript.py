"""What a task run did, from OpenCode's event stream (``opencode run --format json``, OpenCode 1.18.34).

One JSON object per line, each with a ``type``: ``step_start`` when a model step (one call to the
model) begins, ``tool_use`` when a tool call has ended (``part.state.status`` ``completed`` or
``error``), ``text`` for a finished piece of the model's text, ``step_finish`` when the step has
ended (``part.reason``: ``tool-calls`` when the agent goes on with the tools' results, ``stop``
when it has answered), and ``error`` when the run failed (``error.name``, ``error.data.message``).
The agent has *finished* when the run reported no error and its last step ended with ``stop``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

#: How much of a text or an error a summary keeps.
TEXT_LIMIT = 4000


class Outcome(Enum):
    """How a task ended, and the exit status of ``scripts/task`` for it."""

    FINISHED = ("finished", 0)
    AGENT_ERROR = ("agent_error", 1)
    TIMEOUT = ("timeout", 3)
    STEP_LIMIT = ("step_limit", 4)
    INTERRUPTED = ("interrupted", 130)

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def exit_code(self) -> int:
        return self.value[1]


@dataclass(frozen=True)
class ToolCall:
    tool: str
    status: str
    error: str | None = None


def _clip(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_message(event: Mapping[str, Any]) -> str:
    error = event.get("error") or {}
    data = error.get("data") or {}
    message = data.get("message") if isinstance(data, Mapping) else None
    return _clip(f"{error.get('name', 'error')}: {message or json.dumps(data)[:500]}")


@dataclass
class Progress:
    """The running account of one task's events."""

    session_id: str | None = None
    steps: int = 0
    finish_reasons: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Lines on stdout that were no JSON object (OpenCode writes none in json format; kept, not parsed).
    other_lines: int = 0

    def add_line(self, line: str) -> dict | None:
        """Account for one line of the stream; the event it held, or None."""
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self.other_lines += 1
            return None
        self.add(event)
        return event

    def add(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        part = event.get("part") or {}
        self.session_id = self.session_id or event.get("sessionID")
        if kind == "step_start":
            self.steps += 1
        elif kind == "step_finish":
            self.finish_reasons.append(str(part.get("reason")))
        elif kind == "tool_use":
            state = part.get("state") or {}
            error = state.get("error")
            self.tool_calls.append(
                ToolCall(
                    tool=str(part.get("tool")),
                    status=str(state.get("status")),
                    error=_clip(str(error), 500) if error else None,
                )
            )
        elif kind == "text" and part.get("text"):
            self.texts.append(str(part["text"]))
        elif kind == "error":
            self.errors.append(error_message(event))

    @property
    def last_reason(self) -> str | None:
        return self.finish_reasons[-1] if self.finish_reasons else None

    @property
    def finished(self) -> bool:
        return not self.errors and self.last_reason == "stop"

    @property
    def last_text(self) -> str | None:
        return _clip(self.texts[-1]) if self.texts else None

    def why_unfinished(self) -> str:
        if self.errors:
            return self.errors[-1]
        if self.last_reason is None:
            return "the agent completed no step"
        return f"the agent's last step ended with {self.last_reason!r}, not with an answer ('stop')"


def summary(progress: Progress, outcome: Outcome, *, reason: str | None, **facts: Any) -> dict[str, Any]:
    """The summary a task leaves beside its transcript: how it ended, and what the agent did."""
    failed = [call for call in progress.tool_calls if call.status != "completed"]
    return {
        "outcome": outcome.label,
        "exit_code": outcome.exit_code,
        "finished": outcome is Outcome.FINISHED,
        "reason": reason,
        **facts,
        "session_id": progress.session_id,
        "steps": progress.steps,
        "tool_calls": len(progress.tool_calls),
        "tool_calls_failed": len(failed),
        "tools": [
            {"tool": c.tool, "status": c.status, **({"error": c.error} if c.error else {})} for c in progress.tool_calls
        ],
        "errors": progress.errors,
        "last_text": progress.last_text,
    }


def describe(summary_: Mapping[str, Any]) -> str:
    """The summary as the terminal shows it at the end of a task."""
    tools = ", ".join(f"{t['tool']} ({t['status']})" for t in summary_["tools"]) or "none"
    lines = [
        f"outcome:    {summary_['outcome']} (exit {summary_['exit_code']})"
        + (f": {summary_['reason']}" if summary_.get("reason") else ""),
        f"steps:      {summary_['steps']} (limit {summary_['limits']['max_steps']})",
        f"tool calls: {summary_['tool_calls']} ({summary_['tool_calls_failed']} failed): {tools}",
        f"duration:   {summary_['duration_s']:.1f} s (limit {summary_['limits']['timeout_s']:g} s)",
        f"transcript: {summary_['transcript']}",
        f"summary:    {summary_['summary']}",
    ]
    if summary_.get("last_text"):
        lines.append("last text:  " + summary_["last_text"].strip().replace("\n", "\n            "))
    return "\n".join(lines)
