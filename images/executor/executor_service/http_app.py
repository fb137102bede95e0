"""The HTTP face of the service: /health, /v1/run, /v1/languages and the MCP endpoint, behind one bearer token."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from executor_service.bearer_gate import BearerTokenGate
from executor_service.executor_contract import HEALTH_PATH
from executor_service.jobs import LANGUAGES, RequestRejected, RunRequest, job_from_request
from executor_service.mcp_tool import MCP_PATH, build_mcp_app, build_mcp_server
from executor_service.runner import ExecutorUnavailable, JobRunner, JobStartFailed

PUBLIC_PATHS = frozenset({HEALTH_PATH})
#: JSON may escape one byte of source or stdin as six ("\u0001"): room for both at that worst case.
_BODY_ESCAPE_FACTOR = 12
_BODY_OVERHEAD = 64 * 1024


def error(status: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body is {declared} bytes; at most {limit} are accepted")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"request body exceeds {limit} bytes")
    return bytes(body)


def _validation_message(exc: ValidationError) -> str:
    problems = []
    for problem in exc.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        problems.append(f"{where}: {problem['msg']}")
    return "; ".join(problems)


def parse_run_body(body: bytes) -> RunRequest:
    """The body of ``POST /v1/run`` as a request. Raises RequestRejected (400 or 422) for anything else.

    Every malformed body gets a 4xx with a message, never a 500: invalid UTF-8 or JSON, nesting too deep
    for the parser (RecursionError), a value other than an object, fields of the wrong name or type.
    """
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestRejected(f"request body is not valid JSON: {exc}", status=400) from None
    except RecursionError:
        raise RequestRejected("request body is not acceptable JSON: nested too deeply", status=400) from None
    if not isinstance(payload, dict):
        raise RequestRejected("request body must be a JSON object", status=400)
    try:
        return RunRequest.model_validate(payload)
    except ValidationError as exc:
        raise RequestRejected(f"invalid request: {_validation_message(exc)}", status=422) from None
    except RecursionError:  # a deep value in a field pydantic walks before rejecting it
        raise RequestRejected("invalid request: a value is nested too deeply", status=422) from None


def create_app(runner: JobRunner) -> Starlette:
    settings = runner.settings
    body_limit = _BODY_ESCAPE_FACTOR * settings.max_source_bytes + _BODY_OVERHEAD
    mcp_server = build_mcp_server(runner)
    mcp_app = build_mcp_app(mcp_server)

    async def health(request: Request) -> Response:
        if runner.unusable_reason is not None:
            return JSONResponse({"status": "unusable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def languages(request: Request) -> Response:
        return JSONResponse(
            {
                "languages": [{"name": name, "interpreter": runner.interpreters.get(name)} for name in LANGUAGES],
                "limits": {
                    "default_timeout_s": settings.default_timeout_s,
                    "max_timeout_s": settings.max_timeout_s,
                    "max_output_bytes": settings.max_output_bytes,
                    "max_source_bytes": settings.max_source_bytes,
                },
            }
        )

    async def run(request: Request) -> Response:
        body = await _read_body(request, body_limit)
        try:
            spec = job_from_request(parse_run_body(body), settings)
        except RequestRejected as exc:
            return error(exc.status, str(exc))
        try:
            result = await runner.run(spec)
        except ExecutorUnavailable as exc:
            return error(503, str(exc))
        except JobStartFailed as exc:
            return error(500, str(exc))
        return JSONResponse(result.model_dump())

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp_server.session_manager.run():
            yield

    return Starlette(
        routes=[
            Route(HEALTH_PATH, health, methods=["GET"]),
            Route("/v1/run", run, methods=["POST"]),
            Route("/v1/languages", languages, methods=["GET"]),
            # POST only: a stateless server has nothing to push on a GET stream, and the spec's answer
            # for "no stream here" is 405 (a GET would otherwise hold a connection open for nothing).
            Route(MCP_PATH, mcp_app, methods=["POST"]),
        ],
        # The token check (bearer_gate.py, a copy of the kernel's): hashes what is presented, compares digests.
        middleware=[
            Middleware(
                BearerTokenGate,
                token_sha256=settings.token_sha256,
                realm="executor",
                hint="Authorization: Bearer <EXECUTOR_TOKEN>",
                public_paths=PUBLIC_PATHS,
            )
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
