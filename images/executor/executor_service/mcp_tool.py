"""The executor's MCP tools, served stateless over streamable HTTP (OpenCode prefixes them ``executor_``).

``run_code`` runs a program in scratch space; with a project mounted (``EXECUTOR_PROJECT_DIR``),
``run_command`` and ``run_tests`` run shell and test commands with the project as the working
directory: what the agent's own ``bash`` would do, but in the sandbox (read-only project, no network).
"""

# No `from __future__ import annotations`: the SDK evaluates the tool's annotations, which use local limits.
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import Field
from starlette.applications import Starlette

from executor_service.executor_contract import MCP_PATH
from executor_service.jobs import JobResult, LanguageName, RequestRejected, RunRequest, job_from_request
from executor_service.project import command_source, test_command_line
from executor_service.runner import ExecutorUnavailable, JobRunner, JobStartFailed

TOOL_DESCRIPTION = (
    "Run a short program in a fresh, isolated, network-less sandbox and return its exit code, stdout and "
    "stderr. Languages: 'python' (Python 3, standard library only) and 'sh' (POSIX shell). Nothing persists "
    "between calls: files, processes and background jobs are removed when the call ends. The working "
    "directory (also $HOME and $TMPDIR) is writable scratch space. Output beyond the size cap is cut "
    "('truncated': true); a run past its timeout is killed ('timed_out': true)."
)

PROJECT_RULES = (
    "It runs in a fresh, isolated, network-less sandbox with the project directory {project} as the working "
    "directory: the project is read-only there (edit files with the edit/write tools, then run this again); "
    "$HOME and $TMPDIR are writable scratch space, and nothing of a run (files, processes, caches) is left "
    "for the next. Returns exit code, stdout, stderr and duration; output beyond the size cap is cut, a run "
    "past its timeout is killed."
)


def build_mcp_server(runner: JobRunner) -> MCPServer:
    settings = runner.settings
    server = MCPServer(
        name="executor",
        instructions="Use run_code to execute Python or shell code and see its output"
        + ("; run_command and run_tests to run commands and tests in the project." if settings.project_dir else "."),
    )

    def timeout_field():
        return Field(
            gt=0,
            le=settings.max_timeout_s,
            description=f"Seconds before the run is killed (default {settings.default_timeout_s:g}, "
            f"at most {settings.max_timeout_s:g}).",
        )

    async def submit(request: RunRequest) -> JobResult:
        try:
            return await runner.run(job_from_request(request, settings))
        except (RequestRejected, ExecutorUnavailable, JobStartFailed) as exc:
            raise ToolError(str(exc)) from exc

    async def run_code(
        language: Annotated[LanguageName, Field(description="'python' or 'sh'.")],
        source: Annotated[
            str, Field(description=f"The program text (at most {settings.max_source_bytes} bytes as UTF-8).")
        ],
        stdin: Annotated[str | None, Field(description="Text fed to the program's standard input.")] = None,
        timeout_s: Annotated[float | None, timeout_field()] = None,
    ) -> JobResult:
        return await submit(RunRequest(language=language, source=source, stdin=stdin, timeout_s=timeout_s))

    async def run_in_project(command: str, stdin: str | None, timeout_s: float | None) -> JobResult:
        assert settings.project_dir is not None
        source = command_source(command, settings.project_dir)
        return await submit(RunRequest(language="sh", source=source, stdin=stdin, timeout_s=timeout_s, in_project=True))

    async def run_command(
        command: Annotated[str, Field(description="A POSIX shell command line, e.g. 'ls -la src && grep -rn TODO .'.")],
        stdin: Annotated[str | None, Field(description="Text fed to the command's standard input.")] = None,
        timeout_s: Annotated[float | None, timeout_field()] = None,
    ) -> JobResult:
        return await run_in_project(command, stdin, timeout_s)

    async def run_tests(
        arguments: Annotated[
            str,
            Field(
                description=f"Extra arguments appended to `{settings.test_command}` (shell words), "
                "e.g. a test file or '-k name'; empty: the whole suite."
            ),
        ] = "",
        timeout_s: Annotated[float | None, timeout_field()] = None,
    ) -> JobResult:
        return await run_in_project(test_command_line(settings.test_command, arguments), None, timeout_s)

    server.add_tool(
        run_code,
        name="run_code",
        title="Run code in the sandbox",
        description=TOOL_DESCRIPTION,
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    if settings.project_dir is not None:
        rules = PROJECT_RULES.format(project=settings.project_dir)
        project_tools = (
            (
                run_command,
                "run_command",
                "Run a shell command in the project",
                "Run a POSIX shell command line in the project (instead of a local shell, which is not available). "
                + rules,
            ),
            (
                run_tests,
                "run_tests",
                "Run the project's tests",
                f"Run the project's tests: `{settings.test_command}` plus the given arguments. " + rules,
            ),
        )
        for function, tool_name, title, description in project_tools:
            server.add_tool(
                function,
                name=tool_name,
                title=title,
                description=description,
                annotations=ToolAnnotations(
                    read_only_hint=True, destructive_hint=False, idempotent_hint=False, open_world_hint=False
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
