"""Building the project's images from ``images/`` for tests, with BuildKit as pulumi-docker does.

Users build them through the Pulumi program; tests build them the same way the
program declares them: context ``images/<name>``, build arguments ``BASE_IMAGE``
and, when the machine needs one, ``EXTRA_CA_CERTS``, and with the builder the provider
uses (BuildKit through buildx; the classic builder reads some inputs differently, labels
among them).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from sandbox_model.paths import IMAGES_DIR

#: The locally imported debootstrap image (scripts/make-base-image makes it).
BASE_IMAGE = os.environ.get("OPENCODE_SANDBOX_BASE_IMAGE", "opencode-sandbox/base:bookworm")
#: PEM file with the extra CA certificates this machine's TLS-intercepting proxy needs.
EXTRA_CA_FILE = Path(
    os.environ.get(
        "OPENCODE_SANDBOX_EXTRA_CA_FILE",
        str(Path.home() / ".cache" / "opencode-sandbox" / "extra-ca.pem"),
    )
)


class ImageBuildError(RuntimeError):
    pass


def extra_ca_certs() -> str:
    """The extra CA PEM text for builds, or '' when this machine needs none."""
    return EXTRA_CA_FILE.read_text() if EXTRA_CA_FILE.is_file() else ""


def require_base_image(client) -> str:
    import docker.errors

    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        raise ImageBuildError(
            f"base image {BASE_IMAGE!r} is missing: run `bash scripts/make-base-image` "
            "(debootstrap + docker import) or set OPENCODE_SANDBOX_BASE_IMAGE"
        ) from None
    return BASE_IMAGE


@functools.lru_cache(maxsize=1)
def buildkit_command() -> tuple[tuple[str, ...], dict[str, str]]:
    """The command (and environment) that builds with BuildKit on this machine.

    ``docker buildx build --load`` where buildx is installed (Docker >= 23 has no other BuildKit
    path); else a Docker CLI older than 23, which has BuildKit built in (Debian's docker.io 20.10).
    """
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    candidates = [path for path in (shutil.which("docker"), "/usr/bin/docker") if path and os.path.exists(path)]
    for docker_cli in candidates:
        if subprocess.run([docker_cli, "buildx", "version"], capture_output=True).returncode == 0:
            return (docker_cli, "buildx", "build", "--load"), env
    for docker_cli in candidates:
        version = subprocess.run(
            [docker_cli, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True
        ).stdout.strip()
        if version and int(version.split(".")[0]) < 23:
            return (docker_cli, "build"), env
    raise ImageBuildError(
        "no BuildKit builder on this machine (the provider builds with BuildKit). Fix: install "
        "Docker's buildx plugin, or Debian's docker.io (its 20.10 CLI has BuildKit built in)"
    )


def buildkit_build(
    context: Path,
    tag: str,
    *,
    dockerfile: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    target: str | None = None,
    no_cache: bool = False,
    pull: bool = False,
) -> str:
    """``docker build`` with BuildKit, as pulumi-docker runs it; returns the image id."""
    command, env = buildkit_command()
    with tempfile.TemporaryDirectory() as scratch:
        iidfile = Path(scratch) / "iid"
        args = [*command, "--file", str(context / dockerfile), "--tag", tag, "--iidfile", str(iidfile)]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", f"{key}={value}"]  # values travel as arguments, never through a shell
        for key, value in (labels or {}).items():
            args += ["--label", f"{key}={value}"]
        if target:
            args += ["--target", target]
        if no_cache:
            args.append("--no-cache")
        if pull:
            args.append("--pull")
        result = subprocess.run([*args, str(context)], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise ImageBuildError(
                f"building {tag} from {context} failed (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-4000:]}"
            )
        return iidfile.read_text().strip()


def build_image(client, name: str, tag: str, build_args: dict[str, str] | None = None) -> str:
    """Build ``images/<name>`` as ``tag``; returns the image id. Raises with the build log on failure."""
    context = IMAGES_DIR / name
    if not (context / "Dockerfile").is_file():
        raise ImageBuildError(f"no Dockerfile in {context}")
    args = {"BASE_IMAGE": require_base_image(client), "EXTRA_CA_CERTS": extra_ca_certs()}
    if name == "workspace":
        from stacks.settings import OPENCODE_INTEGRITY, OPENCODE_VERSION

        args.update(OPENCODE_VERSION=OPENCODE_VERSION, OPENCODE_INTEGRITY=OPENCODE_INTEGRITY)
    args.update(build_args or {})
    return buildkit_build(context, tag, build_args=args)
