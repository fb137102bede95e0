"""The conductor's HTTP app: the MCP tools over streamable HTTP at ``/mcp``, behind a bearer token.

Tools: ``delegate_task`` (a prompt to the workspace agent's persistent session; returns its answer),
``abort_task``, ``read_project_file``, ``list_project_files``, ``get_project_status``. One task runs at
a time; ``abort_task`` stops it from another request.
"""

# No `from __future__ import annotations`: the SDK evaluates the tools' annotations.
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import Field
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conductor_service import project
from conductor_service.bearer_gate import BearerTokenGate
from conductor_service.opencode_api import OpenCodeClient, OpenCodeError
from conductor_service.settings import Settings

MCP_PATH = "/mcp"
HEALTH_PATH = "/health"


def _tool_error(function):
    async def run(*args, **kwargs):
        try:
            return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
        except (project.PathRefused, OpenCodeError) as exc:
            raise ToolError(str(exc)) from exc

    return run


def build_mcp_server(settings: Settings, client: OpenCodeClient) -> MCPServer:
    server = MCPServer(
        name="opencode-sandbox-conductor",
        instructions="Delegate coding work to the agent in the opencode-sandbox with delegate_task (it works in the "
        "project and runs code in its isolated executors), then inspect the project with "
        "read_project_file, list_project_files and get_project_status.",
    )
    running = anyio.Lock()
    root = settings.project_dir

    async def delegate_task(
        prompt: Annotated[
            str,
            Field(
                min_length=1,
                max_length=100_000,
                description="What the sandboxed agent should do, as you would tell it.",
            ),
        ],
    ) -> dict[str, Any]:
        if running.locked():
            raise ToolError("a delegated task is still running: wait for it, or stop it with abort_task")
        async with running:
            result = await _tool_error(client.prompt)(prompt, settings.task_timeout_s)
        if result["error"]:
            raise ToolError(f"the agent stopped with an error: {result['error']} (answer so far: {result['answer']!r})")
        return result

    async def abort_task() -> dict[str, Any]:
        return {**await _tool_error(client.abort)(), "was_running": running.locked()}

    async def read_project_file(
        path: Annotated[str, Field(description="A file's path relative to the project root, e.g. 'src/app.py'.")],
    ) -> dict[str, Any]:
        text = await _tool_error(project.read_file)(root, path)
        return {"path": text.path, "size": text.size, "truncated": text.truncated, "text": text.text}

    async def list_project_files(
        path: Annotated[str, Field(description="A directory relative to the project root ('.' the root).")] = ".",
        recursive: Annotated[bool, Field(description="List the whole tree below it (without .git).")] = False,
    ) -> dict[str, Any]:
        entries, truncated = await _tool_error(project.list_files)(root, path, recursive)
        return {"path": path, "entries": entries, "truncated": truncated}

    async def get_project_status() -> dict[str, Any]:
        return {
            **await _tool_error(project.git_status)(root),
            "task_running": running.locked(),
            "session_id": client.session_id,
        }

    read_only = ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )
    tools = (
        (
            delegate_task,
            "Delegate a task to the sandboxed agent",
            "Send a prompt to the OpenCode agent in the sandbox (one persistent session, so it remembers earlier "
            "tasks) and wait for its turn to end; returns its final answer and the tools it used.",
            ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False),
        ),
        (
            abort_task,
            "Abort the running task",
            "Stop the agent's running turn in the conductor's session.",
            ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False),
        ),
        (
            read_project_file,
            "Read a project file",
            f"Read a text file of the project (at most {project.MAX_READ_BYTES} bytes); paths outside it are refused.",
            read_only,
        ),
        (
            list_project_files,
            "List project files",
            "List a directory of the project (optionally recursively).",
            read_only,
        ),
        (
            get_project_status,
            "Project status",
            "The project's git branch, changed files and recent commits.",
            read_only,
        ),
    )
    for function, title, description, annotations in tools:
        server.add_tool(function, name=function.__name__, title=title, description=description, annotations=annotations)
    return server


def create_app(settings: Settings, client: OpenCodeClient | None = None) -> Starlette:
    client = client or OpenCodeClient(settings.opencode_url, settings.opencode_password)
    mcp_server = build_mcp_server(settings, client)
    # Stateless JSON responses: every call is one POST. The SDK's DNS-rebinding check is off: the
    # endpoint is reached through the ingress gateway (its Host is whatever the client used), and the
    # bearer token, which a browser page cannot add to a cross-site request, guards it.
    mcp_app = mcp_server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp_server.session_manager.run():
            yield

    return Starlette(
        routes=[Route(HEALTH_PATH, health, methods=["GET"]), Route(MCP_PATH, mcp_app, methods=["POST"])],
        # The token check (bearer_gate.py, a copy of the kernel's): /health is open; the conductor holds only
        # the token's SHA-256 and compares digests in constant time.
        middleware=[
            Middleware(
                BearerTokenGate,
                token_sha256=settings.token_sha256,
                realm="conductor",
                hint="Authorization: Bearer <conductor_token>",
                public_paths=(HEALTH_PATH,),
            )
        ],
        lifespan=lifespan,
    )
