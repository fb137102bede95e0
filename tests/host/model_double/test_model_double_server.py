"""The model double (images/model-double/model_double.py), served in-process on a free localhost port.

What the ci stack and the end-to-end test rely on: the API-key gate, the OpenAI
shapes the Vercel AI SDK parses, each branch of the script streamed and not, and
clear 4xx answers to bad requests.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import socket
import subprocess
import sys
import threading

import pytest

from sandbox_model.paths import IMAGES_DIR

DOUBLE_SCRIPT = IMAGES_DIR / "model-double" / "model_double.py"
MODEL = "qwen3-4b-instruct-2507"
API_KEY = "unit-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TOKEN = "tok-42_Ab"


@pytest.fixture(scope="module")
def double():
    """The server module, loaded from its file (it lives in an image context, not a package)."""
    spec = importlib.util.spec_from_file_location("model_double_under_test", DOUBLE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _serve(double, api_key):
    server = double.make_server(double.DoubleSettings(host="127.0.0.1", port=0, model=MODEL, api_key=api_key))
    server.daemon_threads = False  # so server_close() waits for its handler threads
    # A short poll interval keeps shutdown() (and so each teardown) quick.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def port(double):
    server, thread = _serve(double, API_KEY)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def open_port(double):
    """A double started without MODEL_DOUBLE_API_KEY."""
    server, thread = _serve(double, None)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def request(port, method, path, body=None, headers=None, connection=None):
    """(status, headers, raw body); ``body`` dicts/lists are sent as JSON, bytes as they are."""
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    conn.request(method, path, body=data, headers=all_headers)
    response = conn.getresponse()
    payload = response.read()
    if connection is None:
        conn.close()
    return response.status, response.headers, payload


def chat(port, body, connection=None):
    status, headers, payload = request(port, "POST", "/v1/chat/completions", body, AUTH, connection)
    assert status == 200, payload
    return headers, payload


def sse_events(payload: bytes) -> list:
    """The ``data:`` payloads of an SSE body, JSON-decoded except the final ``[DONE]``."""
    events = []
    for block in payload.decode().split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def tool(name):
    return {"type": "function", "function": {"name": name, "description": "", "parameters": {"type": "object"}}}


OPENCODE_TOOLS = [tool("bash"), tool("executor_run_code"), tool("read")]


def marker_request(**extra):
    return {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are opencode."},
            {"role": "user", "content": f'"Please run this. MARKER={TOKEN}"'},
        ],
        "tools": OPENCODE_TOOLS,
        "tool_choice": "auto",
        **extra,
    }


def after_tool_result(tool_output, **extra):
    body = marker_request(**extra)
    body["messages"] += [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "executor_run_code", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": tool_output},
    ]
    return body


def streamed_text(events) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])


def finish_reasons(events) -> list:
    return [e["choices"][0]["finish_reason"] for e in events[:-1] if e["choices"] and e["choices"][0]["finish_reason"]]


# --- auth and plain endpoints ----------------------------------------------------------------


def test_health_answers_without_credentials(port):
    status, _, payload = request(port, "GET", "/health")
    assert status == 200, payload


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}],
    ids=["missing", "wrong-key", "no-bearer-prefix"],
)
@pytest.mark.parametrize(
    "method,path", [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("GET", "/v1/unknown")]
)
def test_every_v1_request_needs_the_api_key(port, headers, method, path):
    status, response_headers, payload = request(port, method, path, marker_request(), headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"] == "Bearer"
    error = json.loads(payload)["error"]
    assert error["code"] == "invalid_api_key"
    assert "Authorization" in error["message"]


def test_models_lists_the_served_name(port):
    status, _, payload = request(port, "GET", "/v1/models", headers=AUTH)
    assert status == 200
    body = json.loads(payload)
    assert body["object"] == "list"
    assert [(m["id"], m["object"]) for m in body["data"]] == [(MODEL, "model")]


def test_without_a_configured_key_no_credentials_are_needed(open_port):
    status, _, payload = request(open_port, "GET", "/v1/models")
    assert status == 200, payload
    status, _, payload = request(open_port, "POST", "/v1/chat/completions", marker_request())
    assert status == 200, payload


# --- branch 1: the tool call -----------------------------------------------------------------


def test_marker_gets_one_run_code_call(port):
    _, payload = chat(port, marker_request())
    body = json.loads(payload)
    assert body["object"] == "chat.completion"
    assert body["model"] == MODEL
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"]
    assert call["function"]["name"] == "executor_run_code"
    assert json.loads(call["function"]["arguments"]) == {
        "language": "python",
        "source": f"import socket; print(socket.gethostname(), '{TOKEN}')",
    }
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_the_scripted_source_really_prints_hostname_and_token(port):
    _, payload = chat(port, marker_request())
    arguments = json.loads(json.loads(payload)["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    ran = subprocess.run([sys.executable, "-c", arguments["source"]], capture_output=True, text=True, timeout=30)
    assert ran.stdout == f"{socket.gethostname()} {TOKEN}\n", ran.stderr


def test_streamed_tool_call_reassembles_into_valid_json_arguments(port):
    headers, payload = chat(port, marker_request(stream=True))
    assert headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(payload)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"

    deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert {d["index"] for d in deltas} == {0}
    first, *rest = deltas
    assert first["id"] and first["type"] == "function" and first["function"]["name"] == "executor_run_code"
    assert len(rest) > 1, "arguments should arrive in several deltas, as from a real server"
    arguments = "".join(d["function"].get("arguments", "") for d in deltas)
    assert json.loads(arguments)["source"] == f"import socket; print(socket.gethostname(), '{TOKEN}')"
    assert finish_reasons(events) == ["tool_calls"]
    assert chunks[-1]["choices"][0]["delta"] == {}


@pytest.mark.parametrize("include_usage", [True, False])
def test_usage_chunk_only_when_asked(port, include_usage):
    _, payload = chat(port, marker_request(stream=True, stream_options={"include_usage": include_usage}))
    events = sse_events(payload)
    usage_chunks = [e for e in events[:-1] if e.get("usage")]
    if include_usage:
        assert events[-2] is usage_chunks[0]
        assert usage_chunks[0]["choices"] == []
        assert usage_chunks[0]["usage"]["completion_tokens"] > 0
    else:
        assert usage_chunks == []


def test_marker_in_text_parts_counts(port):
    body = marker_request()
    body["messages"][-1]["content"] = [{"type": "text", "text": "run it"}, {"type": "text", "text": f" MARKER={TOKEN}"}]
    _, payload = chat(port, body)
    assert json.loads(payload)["choices"][0]["finish_reason"] == "tool_calls"


def test_a_new_marker_after_an_earlier_tool_round_calls_again(port):
    body = after_tool_result("host old\n")
    body["messages"] += [
        {"role": "assistant", "content": "Executor said: host old"},
        {"role": "user", "content": "again MARKER=second"},
    ]
    _, payload = chat(port, body)
    (call,) = json.loads(payload)["choices"][0]["message"]["tool_calls"]
    assert "'second'" in json.loads(call["function"]["arguments"])["source"]


@pytest.mark.parametrize("stream", [False, True])
def test_marker_without_run_code_tool_says_the_executor_is_missing(port, stream):
    _, payload = chat(port, marker_request(tools=[tool("bash"), tool("read")], stream=stream))
    if stream:
        events = sse_events(payload)
        text, reasons = streamed_text(events), finish_reasons(events)
    else:
        choice = json.loads(payload)["choices"][0]
        text, reasons = choice["message"]["content"], [choice["finish_reason"]]
        assert "tool_calls" not in choice["message"]
    assert "executor tool is missing" in text
    assert "bash, read" in text
    assert reasons == ["stop"]


# --- branch 2: the tool result ---------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "tool_output",
    ["buildhost tok-42_Ab\n", [{"type": "text", "text": "buildhost tok-42_Ab\n"}]],
    ids=["string-content", "text-parts"],
)
def test_tool_result_is_echoed_and_the_turn_stops(port, stream, tool_output):
    _, payload = chat(port, after_tool_result(tool_output, stream=stream))
    if stream:
        events = sse_events(payload)
        assert events[-1] == "[DONE]"
        text, reasons = streamed_text(events), finish_reasons(events)
        assert not any(e["choices"][0]["delta"].get("tool_calls") for e in events[:-1] if e["choices"])
    else:
        choice = json.loads(payload)["choices"][0]
        text, reasons = choice["message"]["content"], [choice["finish_reason"]]
    assert text == "Executor said: buildhost tok-42_Ab"
    assert reasons == ["stop"]


# --- branch 3: everything else ---------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_title_request_without_tools_gets_the_fixed_text(port, double, stream):
    # OpenCode's title request quotes the user's message (marker included) but offers no tools.
    body = {
        "model": MODEL,
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are a title generator."},
            {"role": "user", "content": "Generate a title for this conversation:\n"},
            {"role": "user", "content": f'"Please run this. MARKER={TOKEN}"'},
        ],
    }
    _, payload = chat(port, body)
    if stream:
        events = sse_events(payload)
        assert streamed_text(events) == double.FIXED_TEXT
        assert finish_reasons(events) == ["stop"]
    else:
        assert json.loads(payload)["choices"][0]["message"]["content"] == double.FIXED_TEXT


def test_after_the_tool_result_was_answered_the_marker_no_longer_triggers(port, double):
    body = after_tool_result("host tok\n")
    body["messages"].append({"role": "assistant", "content": "Executor said: host tok"})
    _, payload = chat(port, body)
    choice = json.loads(payload)["choices"][0]
    assert choice["message"]["content"] == double.FIXED_TEXT
    assert choice["finish_reason"] == "stop"


def test_a_connection_stays_usable_after_a_stream(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        _, streamed = chat(port, marker_request(stream=True), connection)
        _, plain = chat(port, marker_request(), connection)
    finally:
        connection.close()
    assert sse_events(streamed)[-1] == "[DONE]"
    assert json.loads(plain)["choices"][0]["finish_reason"] == "tool_calls"


# --- bad requests ----------------------------------------------------------------------------


def _with(**changes):
    body = marker_request()
    body.update(changes)
    return body


def _without(key):
    body = marker_request()
    del body[key]
    return body


@pytest.mark.parametrize(
    "body,named",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ([1, 2], "JSON object"),
        (_without("model"), "'model'"),
        (_without("messages"), "'messages'"),
        (_with(messages=[]), "'messages'"),
        (_with(messages=["hi"]), "messages[0]"),
        (_with(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
        (_with(messages=[{"role": "user", "content": 7}]), "messages[0].content"),
        (_with(messages=[{"role": "user", "content": ["x"]}]), "messages[0].content"),
        (_with(stream="yes"), "'stream'"),
        (_with(stream_options=[]), "'stream_options'"),
        (_with(tools={"bash": {}}), "'tools'"),
        (_with(tools=[{"type": "function", "function": {}}]), "tools[0]"),
        (_with(tools=[{"type": "retrieval"}]), "tools[0]"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_malformed_requests_get_400_naming_the_problem(port, body, named):
    status, _, payload = request(port, "POST", "/v1/chat/completions", body, AUTH)
    assert status == 400, payload
    error = json.loads(payload)["error"]
    assert error["type"] == "invalid_request_error"
    assert named in error["message"]


def test_unknown_model_is_404_like_vllm(port):
    status, _, payload = request(port, "POST", "/v1/chat/completions", _with(model="gpt-4o"), AUTH)
    assert status == 404
    error = json.loads(payload)["error"]
    assert error["code"] == "model_not_found"
    assert "gpt-4o" in error["message"] and MODEL in error["message"]


def test_unknown_path_and_wrong_method(port):
    assert request(port, "GET", "/v1/completions", headers=AUTH)[0] == 404
    status, _, payload = request(port, "GET", "/v1/chat/completions", headers=AUTH)
    assert status == 405
    assert "POST" in json.loads(payload)["error"]["message"]


def test_a_missing_content_length_is_refused(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("POST", "/v1/chat/completions")
        for name, value in AUTH.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 411
        assert "Content-Length" in json.loads(response.read())["error"]["message"]
    finally:
        connection.close()


# --- logging and settings --------------------------------------------------------------------


def test_each_request_is_one_json_log_line_with_its_branch(port, capsys):
    capsys.readouterr()
    chat(port, marker_request())
    chat(port, after_tool_result("h t\n", stream=True))
    request(port, "GET", "/v1/models")
    # The double logs before it answers, so every line is there once the client has its response.
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["method"], r["path"], r["status"], r["branch"]) for r in lines] == [
        ("POST", "/v1/chat/completions", 200, "tool_call"),
        ("POST", "/v1/chat/completions", 200, "tool_result"),
        ("GET", "/v1/models", 401, None),
    ]


def test_settings_from_env(double):
    settings = double.DoubleSettings.from_env(
        {"MODEL_DOUBLE_PORT": "9001", "MODEL_DOUBLE_MODEL": MODEL, "MODEL_DOUBLE_API_KEY": "k"}
    )
    assert (settings.host, settings.port, settings.model, settings.api_key) == ("0.0.0.0", 9001, MODEL, "k")
    defaults = double.DoubleSettings.from_env({"MODEL_DOUBLE_API_KEY": ""})
    assert (defaults.port, defaults.api_key) == (8000, None)


@pytest.mark.parametrize(
    "env,named",
    [
        ({"MODEL_DOUBLE_PORT": "http"}, "MODEL_DOUBLE_PORT"),
        ({"MODEL_DOUBLE_PORT": "70000"}, "MODEL_DOUBLE_PORT"),
        ({"MODEL_DOUBLE_MODEL": " "}, "MODEL_DOUBLE_MODEL"),
    ],
)
def test_bad_settings_stop_the_server_with_a_message(env, named):
    result = subprocess.run(
        [sys.executable, "-I", str(DOUBLE_SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert named in result.stderr


# --- branch 1: scripted calls (the lockdown tests, multi-step turns) -------------------------------------------


def scripted_request(double, name, arguments, tools=OPENCODE_TOOLS):
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"Do it. {double.scripted_call_text(name, arguments)}"}],
        "tools": tools,
    }


@pytest.mark.parametrize("offered", [True, False], ids=["offered", "not-offered"])
def test_a_scripted_call_names_any_tool_offered_or_not(port, double, offered):
    tools = OPENCODE_TOOLS if offered else [tool("read"), tool("executor_run_code")]
    arguments = {"command": "touch /tmp/marker", "description": "marker"}
    _, payload = chat(port, scripted_request(double, "bash", arguments, tools))
    choice = json.loads(payload)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "bash"
    assert json.loads(call["function"]["arguments"]) == arguments


def test_a_scripted_call_is_made_once_then_the_result_is_echoed(port, double):
    body = scripted_request(double, "read", {"filePath": "/proc/self/environ"})
    body["messages"] += [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "permission denied"},
    ]
    _, payload = chat(port, body)
    choice = json.loads(payload)["choices"][0]
    assert choice["finish_reason"] == "stop" and "permission denied" in choice["message"]["content"]


def test_several_directives_are_called_in_order_one_per_step_then_the_last_result_is_echoed(port, double):
    steps = [("write", {"filePath": "t.py", "content": "x"}), ("executor_run_tests", {"arguments": "t.py"})]
    text = " then ".join(double.scripted_call_text(name, arguments) for name, arguments in steps)
    messages = [{"role": "user", "content": f"Task: {text}"}]
    for index, (name, arguments) in enumerate(steps):
        _, payload = chat(port, {"model": MODEL, "messages": messages, "tools": OPENCODE_TOOLS})
        choice = json.loads(payload)["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        (call,) = choice["message"]["tool_calls"]
        assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == (name, arguments)
        messages += [
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": f"result {index}"},
        ]
    _, payload = chat(port, {"model": MODEL, "messages": messages, "tools": OPENCODE_TOOLS})
    choice = json.loads(payload)["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"] == "Executor said: result 1"


def test_a_scripted_call_without_tools_is_no_agent_turn(port, double):
    _, payload = chat(port, scripted_request(double, "bash", {"command": "true"}, tools=None))
    assert json.loads(payload)["choices"][0]["message"]["content"] == double.FIXED_TEXT


def test_the_log_names_the_offered_tools(port, double, capsys):
    capsys.readouterr()
    chat(port, scripted_request(double, "bash", {"command": "true"}))
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["branch"] == "scripted_call" and record["tool_names"] == ["bash", "executor_run_code", "read"]
