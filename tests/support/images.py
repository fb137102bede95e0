"""Building the project's images from ``images/`` for tests (the docker SDK, classic builder).

Users build them through the Pulumi program; tests build them the same way the
program declares them: context ``images/<name>``, build arguments ``BASE_IMAGE``
and, when the machine needs one, ``EXTRA_CA_CERTS``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = REPO_ROOT / "images"

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


def build_image(client, name: str, tag: str, build_args: dict[str, str] | None = None) -> str:
    """Build ``images/<name>`` as ``tag``; returns the image id. Raises with the build log on failure."""
    import docker.errors

    context = IMAGES_DIR / name
    if not (context / "Dockerfile").is_file():
        raise ImageBuildError(f"no Dockerfile in {context}")
    args = {"BASE_IMAGE": require_base_image(client), "EXTRA_CA_CERTS": extra_ca_certs()}
    if name == "workspace":
        from stacks.settings import OPENCODE_INTEGRITY, OPENCODE_VERSION

        args.update(OPENCODE_VERSION=OPENCODE_VERSION, OPENCODE_INTEGRITY=OPENCODE_INTEGRITY)
    args.update(build_args or {})
    try:
        image, _log = client.images.build(path=str(context), tag=tag, buildargs=args, rm=True, forcerm=True)
    except docker.errors.BuildError as exc:
        lines = [chunk.get("stream", "") or chunk.get("error", "") for chunk in exc.build_log]
        raise ImageBuildError(f"building images/{name} failed: {exc}\n{''.join(lines)[-4000:]}") from None
    return image.id
