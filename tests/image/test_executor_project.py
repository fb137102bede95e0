"""The project in an executor, as the stack declares it: readable at the agent's path, unchangeable by any job.

A job that tries every way to change the project (write, create, remove, rename, chmod, link, remount)
fails each time; the host's copy is byte-for-byte what it was. The executor is created by the real
provider from the ci stack's declaration (the project bind included).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sandbox_model.destinations import PROJECT_MOUNT

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

#: Every attempt prints `<what>=<errno or ok>`.
TAMPER = r"""
import errno, os, subprocess
def attempt(what, action):
    try:
        action()
        print(f"{what}=ok")
    except OSError as exc:
        print(f"{what}={errno.errorcode.get(exc.errno, exc.errno)}")
attempt("write", lambda: open("src/app.py", "a").write("planted = True\n"))
attempt("create", lambda: open("planted.py", "w").write("x"))
attempt("mkdir", lambda: os.mkdir(".git-planted"))
attempt("unlink", lambda: os.unlink("src/app.py"))
attempt("rename", lambda: os.rename("src/app.py", "src/moved.py"))
attempt("chmod", lambda: os.chmod("src/app.py", 0o777))
attempt("symlink", lambda: os.symlink("/etc/passwd", "link"))
attempt("utime", lambda: os.utime("src/app.py", (0, 0)))
remount = subprocess.run(["mount", "-o", "remount,rw", "/workspace"], capture_output=True)
print(f"remount={'ok' if remount.returncode == 0 else 'refused'}")
print("cwd=" + os.getcwd())
print("read=" + open("src/app.py").read().strip())
"""


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def project_executor(make_network, start_executor, declared_executor):
    bind = next(m for m in declared_executor.inputs["mounts"] if m["target"] == PROJECT_MOUNT)
    assert bind["readOnly"] is True, bind
    project = Path(bind["source"])
    (project / "src").mkdir(parents=True, exist_ok=True)
    (project / "src" / "app.py").write_text("VALUE = 42\n")
    for path in (project, project / "src"):
        path.chmod(0o755)
    (project / "src" / "app.py").chmod(0o644)
    return start_executor(make_network(internal=True)), project


def test_a_project_job_reads_the_project_at_the_agents_path_and_changes_nothing(project_executor):
    executor, project = project_executor
    before = _digest(project)
    result = executor.run("python", TAMPER, in_project=True)
    assert result["exit_code"] == 0, result
    outcome = dict(line.split("=", 1) for line in result["stdout"].splitlines())
    assert outcome.pop("cwd") == PROJECT_MOUNT and outcome.pop("read") == "VALUE = 42"
    assert set(outcome) == {"write", "create", "mkdir", "unlink", "rename", "chmod", "symlink", "utime", "remount"}
    assert [what for what, how in outcome.items() if how == "ok"] == [], outcome
    assert _digest(project) == before


def test_the_mount_itself_is_read_only_and_the_next_job_starts_in_scratch(project_executor):
    executor, _ = project_executor
    mounts = executor.run("sh", f"grep ' {PROJECT_MOUNT} ' /proc/self/mounts", in_project=True)
    options = mounts["stdout"].split()[3].split(",")
    assert "ro" in options, mounts
    plain = executor.run("sh", "pwd")
    assert plain["stdout"].strip() != PROJECT_MOUNT  # in_project is per job


def test_an_in_project_value_that_is_no_boolean_is_refused(project_executor):
    executor, _ = project_executor
    response = executor.http.post("/v1/run", json={"language": "sh", "source": "true", "in_project": "yes"})
    assert response.status_code == 422 and "in_project" in json.dumps(response.json())
