"""Reading a task's event stream: the events as OpenCode 1.18.34's ``opencode run --format json`` wrote them."""

from __future__ import annotations

import json

import pytest

from operate.transcript import Outcome, Progress, describe, summary

SESSION = "ses_dcdda1d17ffeR6VRnnsAhaBK4o"


def _event(kind: str, part: dict | None = None, **extra) -> str:
    event = {"type": kind, "timestamp": 1796137675850, "sessionID": SESSION, **extra}
    if part is not None:
        event["part"] = {"sessionID": SESSION, **part}
    return json.dumps(event)


STEP_START = _event("step_start", {"id": "prt_1", "messageID": "msg_1", "type": "step-start"})
WRITE = _event(
    "tool_use",
    {
        "type": "tool",
        "tool": "write",
        "callID": "call_7054b41e97cda167a5acef2b",
        "state": {
            "status": "completed",
            "input": {"filePath": "/workspace/calc.py", "content": "def add(a, b):\n    return a + b\n"},
            "output": "Wrote file successfully.",
            "title": "workspace/calc.py",
        },
    },
)
REFUSED = _event(
    "tool_use",
    {
        "type": "tool",
        "tool": "read",
        "state": {
            "status": "error",
            "input": {"filePath": "/proc/self/environ"},
            "error": "The user has specified a rule which prevents you from using this specific tool call.",
        },
    },
)


def _finish(reason: str) -> str:
    return _event(
        "step_finish",
        {
            "id": "prt_2",
            "reason": reason,
            "type": "step-finish",
            "tokens": {"total": 1491, "input": 1481, "output": 10},
            "cost": 0,
        },
    )


ANSWER = _event("text", {"type": "text", "text": "Executor said: Wrote file successfully."})
#: OpenCode's error event (here: the model endpoint refused the request).
API_ERROR = _event(
    "error",
    error={
        "name": "APIError",
        "data": {"message": "Authorization header wrong", "statusCode": 401, "isRetryable": False},
    },
)


def progress_of(*lines: str) -> Progress:
    progress = Progress()
    for line in lines:
        progress.add_line(line)
    return progress


def test_a_tool_call_then_an_answer_is_a_finished_run():
    progress = progress_of(STEP_START, WRITE, _finish("tool-calls"), STEP_START, ANSWER, _finish("stop"))
    assert progress.finished
    assert progress.session_id == SESSION
    assert progress.steps == 2
    assert [(c.tool, c.status) for c in progress.tool_calls] == [("write", "completed")]
    assert progress.last_text == "Executor said: Wrote file successfully."


def test_a_run_that_ends_on_tool_calls_did_not_finish():
    # What `opencode run` does when a permission asks: it rejects the call and the run ends there.
    progress = progress_of(STEP_START, REFUSED, _finish("tool-calls"))
    assert not progress.finished
    assert "'tool-calls'" in progress.why_unfinished()
    assert progress.tool_calls[0].error.startswith("The user has specified a rule")


def test_an_error_event_is_not_finished_and_says_why():
    progress = progress_of(STEP_START, API_ERROR)
    assert not progress.finished
    assert progress.why_unfinished() == "APIError: Authorization header wrong"


def test_no_step_at_all_is_not_finished():
    assert progress_of().why_unfinished() == "the agent completed no step"


def test_lines_that_are_not_json_objects_are_counted_not_parsed():
    progress = progress_of("12345", "[1, 2]", "", STEP_START)
    assert progress.other_lines == 3 and progress.steps == 1


def test_long_texts_are_clipped_in_the_summary():
    progress = progress_of(STEP_START, _event("text", {"type": "text", "text": "x" * 10000}), _finish("stop"))
    assert len(progress.last_text) == 4000 and progress.last_text.endswith("…")


@pytest.mark.parametrize(
    "outcome, code",
    [
        (Outcome.FINISHED, 0),
        (Outcome.AGENT_ERROR, 1),
        (Outcome.TIMEOUT, 3),
        (Outcome.STEP_LIMIT, 4),
        (Outcome.INTERRUPTED, 130),
    ],
)
def test_every_outcome_has_its_own_exit_status(outcome, code):
    assert outcome.exit_code == code


def test_the_summary_counts_steps_and_tool_calls_and_reads_back_in_the_terminal():
    progress = progress_of(STEP_START, WRITE, REFUSED, _finish("tool-calls"), STEP_START, ANSWER, _finish("stop"))
    facts = {
        "duration_s": 3.31,
        "limits": {"timeout_s": 60, "max_steps": 5},
        "transcript": "logs/task-x.jsonl",
        "summary": "logs/task-x.summary.json",
    }
    result = summary(progress, Outcome.FINISHED, reason=None, **facts)
    assert result["outcome"] == "finished" and result["finished"] and result["exit_code"] == 0
    assert (result["steps"], result["tool_calls"], result["tool_calls_failed"]) == (2, 2, 1)
    assert result["tools"][1] == {"tool": "read", "status": "error", "error": progress.tool_calls[1].error}
    json.dumps(result)  # it is written as JSON
    text = describe(result)
    assert "outcome:    finished (exit 0)" in text
    assert "steps:      2 (limit 5)" in text
    assert "tool calls: 2 (1 failed): write (completed), read (error)" in text
    assert "duration:   3.3 s (limit 60 s)" in text
    assert text.endswith("last text:  Executor said: Wrote file successfully.")
