"""The ``run_code`` MCP tool (OpenCode sees it as ``executor_run_code``), served stateless over streamable HTTP."""

# No `from __future__ import annotations`: the SDK evaluates the tool's annotations, which use local limits.
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import Field
from starlette.applications import Starlette

from executor_service.jobs import JobResult, LanguageName, RequestRejected, RunRequest, job_from_request
from executor_service.runner import ExecutorUnavailable, JobRunner, JobStartFailed

MCP_PATH = "/mcp"

TOOL_DESCRIPTION = (
    "Run a short program in a fresh, isolated, network-less sandbox and return its exit code, stdout and "
    "stderr. Languages: 'python' (Python 3, standard library only) and 'sh' (POSIX shell). Nothing persists "
    "between calls: files, processes and background jobs are removed when the call ends. The working "
    "directory (also $HOME and $TMPDIR) is writable scratch space. Output beyond the size cap is cut "
    "('truncated': true); a run past its timeout is killed ('timed_out': true)."
)


def build_mcp_server(runner: JobRunner) -> MCPServer:
    settings = runner.settings
    server = MCPServer(
        name="executor",
        instructions="Use run_code to execute Python or shell code and see its output.",
    )

    async def run_code(
        language: Annotated[LanguageName, Field(description="'python' or 'sh'.")],
        source: Annotated[
            str, Field(description=f"The program text (at most {settings.max_source_bytes} bytes as UTF-8).")
        ],
        stdin: Annotated[str | None, Field(description="Text fed to the program's standard input.")] = None,
        timeout_s: Annotated[
            float | None,
            Field(
                gt=0,
                le=settings.max_timeout_s,
                description=f"Seconds before the run is killed (default {settings.default_timeout_s:g}, "
                f"at most {settings.max_timeout_s:g}).",
            ),
        ] = None,
    ) -> JobResult:
        request = RunRequest(language=language, source=source, stdin=stdin, timeout_s=timeout_s)
        try:
            return await runner.run(job_from_request(request, settings))
        except (RequestRejected, ExecutorUnavailable, JobStartFailed) as exc:
            raise ToolError(str(exc)) from exc

    server.add_tool(
        run_code,
        name="run_code",
        title="Run code in the sandbox",
        description=TOOL_DESCRIPTION,
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    return server


def build_mcp_app(server: MCPServer) -> Starlette:
    """The streamable-HTTP endpoint at ``MCP_PATH``; the caller runs ``server.session_manager.run()``.

    Stateless: each POST is served on its own, so any executor container behind the DNS alias can
    answer any request. The SDK's Host/Origin (DNS-rebinding) check is off: it guards browsers on
    localhost, while this endpoint sits on an internal network behind the bearer token.
    """
    return server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
