"""Model double: a scripted OpenAI-compatible chat-completions server (a TEST DOUBLE).

Only the ``ci`` stack runs it, in place of vLLM, so the end-to-end test can drive
the real OpenCode agent with no GPU and no internet. It is not a model: every
answer comes from the fixed script below. Standard library only.

Environment
    MODEL_DOUBLE_PORT     TCP port to listen on (default 8000; 0 picks a free one,
                          announced in the startup log line).
    MODEL_DOUBLE_HOST     address to bind (default 0.0.0.0).
    MODEL_DOUBLE_MODEL    the served model name (default ``model-double``); requests
                          naming another model get 404, as from vLLM.
    MODEL_DOUBLE_API_KEY  when set, every ``/v1/*`` request must carry
                          ``Authorization: Bearer <key>`` or gets 401.

Endpoints
    GET  /health               200 (no auth: it is the container healthcheck)
    GET  /v1/models            OpenAI list shape with the served name
    POST /v1/chat/completions  ``stream: false`` (one JSON completion) or ``stream: true``
                               (SSE ``chat.completion.chunk`` events, an optional usage
                               chunk when ``stream_options.include_usage``, ``data: [DONE]``)

The script (deterministic; the first rule that applies wins)
    1. ``scripted_call``: the latest user message contains ``TOOL_CALL=<name> ARGS=<base64url of
       a JSON object>`` directives (one or more, in order), fewer tool results than directives
       came after that user message, and tools are offered -> ONE call, to the directive whose
       turn it is (the first with no result yet) with its arguments, finish ``tool_calls``,
       *whether or not* ``<name>`` is offered (as a hostile or confused model would). The
       lockdown tests use it to ask for ``bash``, ``write`` or ``read`` calls the workspace must
       refuse; several directives make one turn do several steps (write a file, then test it).
    2. ``tool_result``: the latest message is a tool result (role ``tool``)
       -> text ``Executor said: <the tool result text>``, finish ``stop``.
    3. The latest user message contains ``MARKER=<token>`` (token ``[A-Za-z0-9_-]+``,
       the first one counts) and no tool result came after that user message:
       a. ``tool_call``: the request offers a tool whose function name ends with
          ``run_code`` (OpenCode calls the MCP server ``executor``'s tool ``run_code``
          ``executor_run_code``) -> ONE call to it with arguments
          ``{"language": "python", "source": "import socket; print(socket.gethostname(), '<token>')"}``,
          finish ``tool_calls``.
       b. ``executor_tool_missing``: tools are offered but none is ``run_code`` -> a text
          naming the offered tools, so the end-to-end test fails with a clear reason.
       A request that offers no tools at all is not an agent turn (OpenCode asks for a
       session title that way, quoting the user's message) and falls through to 4.
    4. ``fixed_text``: anything else -> the fixed text ``FIXED_TEXT``, finish ``stop``.

Malformed requests get 400 with an OpenAI-style error body naming the problem.
Every request is logged as one JSON line on stdout (method, path, status, branch, the offered
tool names).
The server writes no files, so it runs as any UID on a read-only root filesystem.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FIXED_TEXT = "This is the model double: a scripted test stand-in, not a model."
RUN_CODE_SUFFIX = "run_code"
MARKER_PATTERN = re.compile(r"MARKER=([A-Za-z0-9_-]+)")
SCRIPTED_CALL_PATTERN = re.compile(r"TOOL_CALL=([A-Za-z0-9_.-]+) ARGS=([A-Za-z0-9_=-]+)")
#: Larger bodies are refused with 413 (OpenCode's requests are well under 1 MiB).
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Streamed tool-call arguments are cut into this many deltas so clients must reassemble them.
ARGUMENT_PIECES = 3
KNOWN_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})

BRANCH_TOOL_RESULT = "tool_result"
BRANCH_TOOL_CALL = "tool_call"
BRANCH_SCRIPTED_CALL = "scripted_call"
BRANCH_EXECUTOR_TOOL_MISSING = "executor_tool_missing"
BRANCH_FIXED_TEXT = "fixed_text"


@dataclass(frozen=True)
class DoubleSettings:
    host: str = "0.0.0.0"
    port: int = 8000
    model: str = "model-double"
    api_key: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DoubleSettings:
        raw_port = environ.get("MODEL_DOUBLE_PORT", "8000")
        try:
            port = int(raw_port)
        except ValueError:
            raise ValueError(f"MODEL_DOUBLE_PORT must be an integer, got {raw_port!r}") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"MODEL_DOUBLE_PORT must be within 0..65535, got {port}")
        model = environ.get("MODEL_DOUBLE_MODEL", cls.model)
        if not model.strip():
            raise ValueError("MODEL_DOUBLE_MODEL must not be empty")
        return cls(
            host=environ.get("MODEL_DOUBLE_HOST", cls.host),
            port=port,
            model=model,
            api_key=environ.get("MODEL_DOUBLE_API_KEY") or None,
        )


class RequestError(Exception):
    """A request the double refuses; rendered as an OpenAI-style error body."""

    def __init__(self, status: HTTPStatus, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        kind = "authentication_error" if self.status == HTTPStatus.UNAUTHORIZED else "invalid_request_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    tool_names: list[str]
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it


@dataclass(frozen=True)
class Reply:
    branch: str
    text: str | None = None
    tool_call: ToolCall | None = None

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_call else "stop"


# --- parsing ---------------------------------------------------------------------------------


def parse_chat_request(body: bytes, served_model: str) -> ChatRequest:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "request body must be a JSON object")

    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(HTTPStatus.BAD_REQUEST, "'model' is required and must be a string", param="model")
    if model != served_model:
        raise RequestError(
            HTTPStatus.NOT_FOUND,
            f"The model `{model}` does not exist; this double serves `{served_model}`.",
            param="model",
            code="model_not_found",
        )

    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(HTTPStatus.BAD_REQUEST, "'messages' must be a non-empty array", param="messages")
    for position, message in enumerate(messages):
        _check_message(message, f"messages[{position}]")

    stream = payload.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise RequestError(HTTPStatus.BAD_REQUEST, "'stream' must be a boolean", param="stream")

    stream_options = payload.get("stream_options")
    if stream_options is None:
        stream_options = {}
    if not isinstance(stream_options, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "'stream_options' must be an object", param="stream_options")

    return ChatRequest(
        model=model,
        messages=messages,
        tool_names=_offered_tool_names(payload.get("tools")),
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
    )


def _check_message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{where} must be an object", param=where)
    role = message.get("role")
    if role not in KNOWN_ROLES:
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"{where}.role must be one of {sorted(KNOWN_ROLES)}, got {role!r}",
            param=f"{where}.role",
        )
    content = message.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f"{where}.content must be a string, an array or null", param=f"{where}.content"
        )
    if isinstance(content, list) and not all(isinstance(part, dict) for part in content):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{where}.content parts must be objects", param=f"{where}.content")


def _offered_tool_names(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise RequestError(HTTPStatus.BAD_REQUEST, "'tools' must be an array", param="tools")
    names = []
    for position, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(name, str) or not name:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"tools[{position}] must be {{'type': 'function', 'function': {{'name': <string>, ...}}}}",
                param=f"tools[{position}]",
            )
        names.append(name)
    return names


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message whose content is a string, null, or an array of text parts."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part.get("text"), str))


# --- the script ------------------------------------------------------------------------------


def run_code_source(token: str) -> str:
    return f"import socket; print(socket.gethostname(), '{token}')"


def scripted_call_text(name: str, arguments: Mapping[str, Any]) -> str:
    """The user-message text that makes the double call ``name`` with ``arguments`` (rule 2)."""
    encoded = base64.urlsafe_b64encode(json.dumps(arguments).encode()).decode()
    return f"TOOL_CALL={name} ARGS={encoded}"


def _scripted_calls(text: str) -> list[ToolCall]:
    """The text's ``TOOL_CALL=... ARGS=...`` directives, in order; one that does not decode is skipped."""
    calls = []
    for index, match in enumerate(SCRIPTED_CALL_PATTERN.finditer(text)):
        try:
            arguments = json.loads(base64.urlsafe_b64decode(match.group(2)))
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(arguments, dict):
            continue
        call_id = "call_" + hashlib.sha256(f"{index}:{match.group(0)}".encode()).hexdigest()[:24]
        calls.append(ToolCall(call_id=call_id, name=match.group(1), arguments=json.dumps(arguments)))
    return calls


def decide_reply(chat: ChatRequest) -> Reply:
    """Apply the script in the module docstring to one request."""
    messages = chat.messages
    last_user = max((i for i, message in enumerate(messages) if message["role"] == "user"), default=None)
    user_text = message_text(messages[last_user]) if last_user is not None else ""
    results_since = 0 if last_user is None else sum(m["role"] == "tool" for m in messages[last_user + 1 :])
    scripted = _scripted_calls(user_text)
    if results_since < len(scripted) and chat.tool_names:
        return Reply(BRANCH_SCRIPTED_CALL, tool_call=scripted[results_since])

    if messages[-1]["role"] == "tool":
        return Reply(BRANCH_TOOL_RESULT, text=f"Executor said: {message_text(messages[-1]).strip()}")

    marker = MARKER_PATTERN.search(user_text)
    tool_result_since = results_since > 0
    if marker and not tool_result_since and chat.tool_names:
        token = marker.group(1)
        run_code = next((name for name in chat.tool_names if name.endswith(RUN_CODE_SUFFIX)), None)
        if run_code is None:
            return Reply(
                BRANCH_EXECUTOR_TOOL_MISSING,
                text=(
                    f"The executor tool is missing: no offered tool name ends with {RUN_CODE_SUFFIX!r} "
                    f"(offered: {', '.join(chat.tool_names)})."
                ),
            )
        arguments = json.dumps({"language": "python", "source": run_code_source(token)})
        call_id = "call_" + hashlib.sha256(token.encode()).hexdigest()[:24]
        return Reply(BRANCH_TOOL_CALL, tool_call=ToolCall(call_id=call_id, name=run_code, arguments=arguments))

    return Reply(BRANCH_FIXED_TEXT, text=FIXED_TEXT)


# --- rendering -------------------------------------------------------------------------------


def _usage(chat: ChatRequest, reply: Reply) -> dict[str, int]:
    # Word counts stand in for tokens: clients only need plausible, consistent numbers.
    prompt = sum(len(message_text(m).split()) for m in chat.messages)
    if reply.text:
        said = reply.text
    elif reply.tool_call is not None:
        said = reply.tool_call.arguments
    else:  # every Reply decide_reply makes has one or the other
        raise ValueError(f"reply {reply.branch!r} has neither text nor a tool call")
    completion = len(said.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def completion_body(chat: ChatRequest, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_call:
        message["tool_calls"] = [_tool_call_json(reply.tool_call)]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": chat.model,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}],
        "usage": _usage(chat, reply),
    }


def _split(text: str, pieces: int) -> list[str]:
    size = max(1, -(-len(text) // pieces))
    return [text[start : start + size] for start in range(0, len(text), size)]


def completion_chunks(chat: ChatRequest, reply: Reply) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed reply, in order (without ``[DONE]``)."""
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": chat.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }

    yield chunk({"role": "assistant", "content": ""})
    if reply.tool_call:
        call = reply.tool_call
        # The first delta names the call; later ones carry only the index and argument text.
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call.call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        for piece in _split(call.arguments, ARGUMENT_PIECES):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    else:
        for piece in re.findall(r"\S+\s*|\s+", reply.text or ""):
            yield chunk({"content": piece})
    yield chunk({}, reply.finish_reason)
    if chat.include_usage:
        yield {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": chat.model,
            "choices": [],
            "usage": _usage(chat, reply),
        }


# --- HTTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """What one request gets: a JSON body, or (streaming) the chunk objects to send as SSE."""

    status: int
    body: Mapping[str, Any] | None = None
    events: list[Mapping[str, Any]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


_log_lock = threading.Lock()


def log_line(record: Mapping[str, Any]) -> None:
    with _log_lock:
        sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
        sys.stdout.flush()


class ModelDoubleHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "model-double"
    settings: DoubleSettings  # set per server by make_server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # replaced by the one JSON line per request written in _serve

    def _serve(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        record: dict[str, Any] = {"method": method, "path": path, "branch": None}
        try:
            response = self._respond(method, path, record)
        except RequestError as exc:
            record["error"] = exc.message
            response = Response(exc.status, body=exc.body(), headers=self._error_headers(exc))
        except Exception as exc:  # noqa: BLE001 - a bug in the double: say so in the log and to the client
            traceback.print_exc()
            record["error"] = f"{exc.__class__.__name__}: {exc}"
            self.close_connection = True
            response = Response(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                body={"error": {"message": record["error"], "type": "server_error"}},
                headers={"Connection": "close"},
            )
        record["status"] = int(response.status)
        # Logged before sending, so the line exists by the time the client has its answer.
        log_line(record)
        try:
            if response.events is not None:
                self._send_stream(response.events)
            elif response.body is not None:
                self._send_json(response.status, response.body, response.headers)
            else:  # every Response made here has a body or events
                raise ValueError(f"response {response.status} has neither a body nor events")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing left to tell it

    def _respond(self, method: str, path: str, record: dict[str, Any]) -> Response:
        if path.startswith("/v1/"):
            self._check_auth()
        routes = {"/health": "GET", "/v1/models": "GET", "/v1/chat/completions": "POST"}
        if path not in routes:
            raise RequestError(HTTPStatus.NOT_FOUND, f"no route for {path}", code="not_found")
        if routes[path] != method:
            raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} accepts {routes[path]} only")
        if path == "/health":
            return Response(HTTPStatus.OK, body={"status": "ok"})
        if path == "/v1/models":
            return Response(HTTPStatus.OK, body=self._models_body())

        chat = parse_chat_request(self._read_body(), self.settings.model)
        reply = decide_reply(chat)
        record.update(branch=reply.branch, stream=chat.stream, tools=len(chat.tool_names), tool_names=chat.tool_names)
        if chat.stream:
            return Response(HTTPStatus.OK, events=list(completion_chunks(chat, reply)))
        return Response(HTTPStatus.OK, body=completion_body(chat, reply))

    def _check_auth(self) -> None:
        expected = self.settings.api_key
        if expected is None:
            return
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            problem = "missing" if not given else "wrong"
            raise RequestError(
                HTTPStatus.UNAUTHORIZED,
                f"Authorization header {problem}: expected 'Bearer <MODEL_DOUBLE_API_KEY>'",
                code="invalid_api_key",
            )

    def _models_body(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": self.settings.model, "object": "model", "created": 0, "owned_by": "model-double"}],
        }

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError(
                HTTPStatus.LENGTH_REQUIRED, "chunked request bodies are not supported; send Content-Length"
            )
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        try:
            length = int(raw_length)
        except ValueError:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length is not an integer: {raw_length!r}") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body must be 0..{MAX_BODY_BYTES} bytes, got {length}"
            )
        return self.rfile.read(length)

    def _error_headers(self, exc: RequestError) -> dict[str, str]:
        headers = {"Connection": "close"}  # the body may be unread: never reuse this connection
        self.close_connection = True
        if exc.status == HTTPStatus.UNAUTHORIZED:
            headers["WWW-Authenticate"] = "Bearer"
        return headers

    def _send_json(self, status: int, body: Mapping[str, Any], extra_headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, chunks: list[Mapping[str, Any]]) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            self._write_http_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
        self._write_http_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_http_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def make_server(settings: DoubleSettings) -> ThreadingHTTPServer:
    """A bound (not yet serving) server; ``server.server_address[1]`` is the real port."""
    handler = type("BoundModelDoubleHandler", (ModelDoubleHandler,), {"settings": settings})
    return ThreadingHTTPServer((settings.host, settings.port), handler)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    # As PID 1 without an init (the stack runs it with init: false) SIGTERM is
    # ignored unless handled, so `docker stop` would wait for its timeout.
    raise SystemExit(0)


def main() -> int:
    try:
        settings = DoubleSettings.from_env(os.environ)
    except ValueError as exc:
        print(f"model-double: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    server = make_server(settings)
    log_line(
        {
            "event": "listening",
            "host": settings.host,
            "port": server.server_address[1],
            "model": settings.model,
            "api_key_required": settings.api_key is not None,
        }
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
