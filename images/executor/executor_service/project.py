"""The project's tools: shell and test commands run with the agent's project as the working directory.

The stack mounts the project read-only at ``EXECUTOR_PROJECT_DIR`` (the path the agent sees it at),
so a command reads the project as the agent wrote it and can change none of it: the mount is
read-only and the job's Landlock domain allows writes beneath the scratch directories only. What
a command would write into the project (caches) is sent to its scratch ``HOME`` by the prelude
below, and is removed with everything else after the job.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from executor_service.isolation import IsolationMode, StartupError
from executor_service.settings import Settings

#: Put before every project command: caches into the job's scratch HOME (emptied after the job), and
#: Git told that the project (owned by the agent's UID, not the executor's) is safe to read.
_PRELUDE = """\
export XDG_CACHE_HOME="$HOME/.cache" PYTHONPYCACHEPREFIX="$HOME/.cache/pycache" \\
  npm_config_cache="$HOME/.cache/npm" GOCACHE="$HOME/.cache/go" \\
  PYTEST_ADDOPTS="-o cache_dir=$HOME/.cache/pytest${PYTEST_ADDOPTS:+ $PYTEST_ADDOPTS}" \\
  GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0=%(project)s
"""


def command_source(command: str, project_dir: Path) -> str:
    """The ``sh`` job that runs ``command`` (a shell command line) in the project."""
    return _PRELUDE % {"project": shlex.quote(str(project_dir))} + command + "\n"


def test_command_line(test_command: str, arguments: str) -> str:
    """``EXECUTOR_TEST_COMMAND`` with the tool's extra arguments (shell words, as typed) appended."""
    return f"{test_command} {arguments}" if arguments.strip() else test_command


def check_project_dir(settings: Settings, mode: IsolationMode) -> None:
    """The project directory, when given, is a directory the service can read and, in a container, read-only."""
    project = settings.project_dir
    if project is None:
        return
    if not project.is_absolute() or not project.is_dir():
        raise StartupError(f"EXECUTOR_PROJECT_DIR {project} is not an absolute path to a directory")
    if not os.access(project, os.R_OK | os.X_OK):
        raise StartupError(
            f"EXECUTOR_PROJECT_DIR {project} is not readable by UID {os.getuid()}: the project's files must be "
            "readable by others (e.g. chmod -R o+rX on the host), or the project tools cannot see them"
        )
    if mode is IsolationMode.CONTAINER and not os.statvfs(project).f_flag & os.ST_RDONLY:
        raise StartupError(
            f"EXECUTOR_PROJECT_DIR {project} is mounted writable: the stack must bind the project read-only "
            "(jobs may read the agent's project, never change it)"
        )
