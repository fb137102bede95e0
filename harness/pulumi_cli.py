"""The Pulumi CLI as the tests run it: the real engine, on a copy of the project.

Each workspace is a copy of the project's program files (so ``pulumi stack init`` and the passphrase
salt it writes never touch the committed stack files), the project's virtualenv, a local file
backend in a temporary directory and a passphrase. The CLI is the one ``scripts/pulumi-toolchain``
built (``OPENCODE_SANDBOX_PULUMI_BIN``, set by ``.ci/run``), or a normal Pulumi install on PATH.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox_model.paths import REPO_ROOT

TOOLCHAIN_ENV = "OPENCODE_SANDBOX_PULUMI_BIN"
#: What the program needs at `pulumi up` (its build contexts included) and what the engine reads.
PROJECT_FILES = (
    "Pulumi.yaml",
    "__main__.py",
    "requirements.txt",
    "sandbox_model",
    "stacks",
    "components",
    "images",
    "policies",
)
PASSPHRASE = "opencode-sandbox-tests"
#: The extra CA a stack file may name (`images.extra_ca_file`), relative to HOME.
EXTRA_CA_RELATIVE = Path(".cache/opencode-sandbox/extra-ca.pem")
VENV = REPO_ROOT / os.environ.get("OPENCODE_SANDBOX_VENV", ".venv")


@functools.lru_cache(maxsize=1)
def toolchain_problem() -> str | None:
    """None when a Pulumi CLI that can run this project is here, otherwise why not."""
    bin_dir = os.environ.get(TOOLCHAIN_ENV)
    if bin_dir:
        missing = [
            name
            for name in ("pulumi", "pulumi-language-python", "pulumi-resource-docker")
            if not os.access(Path(bin_dir) / name, os.X_OK)
        ]
        if missing:
            return f"{TOOLCHAIN_ENV}={bin_dir} lacks {', '.join(missing)}. Fix: bash scripts/pulumi-toolchain"
        return None
    if shutil.which("pulumi") is None:
        return (
            f"no Pulumi CLI: install Pulumi, or build the toolchain with `bash scripts/pulumi-toolchain` "
            f"and set {TOOLCHAIN_ENV} to the directory it prints last"
        )
    return None


def stand_in_home(home: Path, real_home: Path | None = None) -> Path:
    """A HOME for the program holding what the committed stacks expect, copied from the real one.

    Running as root, ``~`` is /root, a host path no container may mount (catalog rule
    ``no-sensitive-host-mounts``); a stand-in HOME keeps the stack's own directories elsewhere.
    """
    real_home = real_home or Path.home()
    source = real_home / EXTRA_CA_RELATIVE
    home.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        target = home / EXTRA_CA_RELATIVE
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return home


class PulumiError(RuntimeError):
    def __init__(self, args: tuple[str, ...], result: subprocess.CompletedProcess):
        self.result = result
        super().__init__(
            f"pulumi {' '.join(args)} exited {result.returncode}:\n{(result.stdout + result.stderr)[-6000:]}"
        )


#: A program of one container, declared with exactly the inputs it is given (camelCase, as the provider
#: takes them): the container suites start the stack's executors this way, through the real provider.
ONE_CONTAINER_PROGRAM = """
import json

import pulumi

inputs = json.loads(pulumi.Config().require("inputs"))
container = pulumi.CustomResource("docker:index/container:Container", "container", inputs)
pulumi.export("id", container.id)
"""


@dataclass
class PulumiWorkspace:
    """``program``: the project's own program (copied), or the source of a one-file program instead."""

    root: Path
    home: Path
    program: str | None = None

    def __post_init__(self):
        self.project = self.root / "project"
        self.project.mkdir(parents=True)
        if self.program is not None:
            (self.project / "Pulumi.yaml").write_text(
                "name: opencode-sandbox-tests\nruntime:\n  name: python\n  options:\n    virtualenv: .venv\n"
            )
            (self.project / "__main__.py").write_text(self.program)
        for name in PROJECT_FILES if self.program is None else ():
            source = REPO_ROOT / name
            if source.is_dir():
                shutil.copytree(
                    source, self.project / name, ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.pyc")
                )
            else:
                shutil.copy2(source, self.project / name)
        for stack_file in REPO_ROOT.glob("Pulumi.*.yaml") if self.program is None else ():
            shutil.copy2(stack_file, self.project / stack_file.name)
        (self.project / ".venv").symlink_to(VENV)  # Pulumi.yaml's and PulumiPolicy.yaml's virtualenv
        (self.root / "state").mkdir()
        env = {key: value for key, value in os.environ.items() if not key.startswith("PULUMI_")}
        env.update(
            HOME=str(stand_in_home(self.home)),
            PULUMI_BACKEND_URL=f"file://{self.root / 'state'}",
            PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
            PULUMI_SKIP_UPDATE_CHECK="1",
        )
        bin_dir = os.environ.get(TOOLCHAIN_ENV)
        if bin_dir:
            env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
            env["PULUMI_HOME"] = str(self.root / "pulumi-home")
        else:  # a normal install: its plugins live in the real PULUMI_HOME
            env["PULUMI_HOME"] = os.environ.get("PULUMI_HOME", str(Path.home() / ".pulumi"))
        self.env = env

    def run(self, *args: str, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["pulumi", *args, "--non-interactive"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise PulumiError(args, result)
        return result

    def init_stack(
        self, stack: str, *, settings_from: str | None = None, set_config: Mapping[str, Any] | None = None
    ) -> None:
        """A new stack; its settings are ``Pulumi.<settings_from>.yaml``'s when given, changed by ``set_config``."""
        if settings_from is not None:
            shutil.copy2(self.project / f"Pulumi.{settings_from}.yaml", self.project / f"Pulumi.{stack}.yaml")
        self.run("stack", "init", stack)
        for key, value in (set_config or {}).items():
            self.run(
                "config",
                "set",
                "--stack",
                stack,
                "--path",
                f"opencode-sandbox:{key}",
                value if isinstance(value, str) else json.dumps(value),
            )

    def outputs(self, stack: str) -> dict[str, Any]:
        return json.loads(self.run("stack", "output", "--stack", stack, "--json", "--show-secrets").stdout)
