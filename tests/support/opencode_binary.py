"""The real OpenCode binary for tests, fetched with npm and verified against a pinned integrity.

``opencode_binary()`` runs ``npm pack opencode-linux-x64@<version>`` once, checks the
tarball against the npm ``integrity`` (SRI sha512) pinned here *before* extracting
anything, and keeps the result in ``~/.cache/opencode-sandbox/opencode-<version>/``;
later calls reuse that directory without touching the network.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

# The release the workspace image carries: the stack settings' defaults are the one truth.
from stacks.settings import OPENCODE_INTEGRITY, OPENCODE_VERSION

OPENCODE_PACKAGE = "opencode-linux-x64"
DEFAULT_CACHE_ROOT = Path.home() / ".cache" / "opencode-sandbox"
NPM_PACK_TIMEOUT_SECONDS = 600


class OpencodeBinaryError(RuntimeError):
    pass


def opencode_binary(cache_root: Path = DEFAULT_CACHE_ROOT) -> Path:
    """Path of the executable ``opencode`` (OPENCODE_VERSION), fetching it on first use."""
    version_dir = cache_root / f"opencode-{OPENCODE_VERSION}"
    binary = version_dir / "package" / "bin" / "opencode"
    if os.access(binary, os.X_OK):
        return binary

    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        raise OpencodeBinaryError(
            f"{OPENCODE_PACKAGE} runs on Linux x86_64 only; this is {platform.system()} {platform.machine()}"
        )
    npm = shutil.which("npm")
    if npm is None:
        raise OpencodeBinaryError(
            f"npm is not on PATH: it is needed once to fetch {OPENCODE_PACKAGE}@{OPENCODE_VERSION} "
            "(Debian: apt-get install npm)"
        )

    cache_root.mkdir(parents=True, exist_ok=True)
    # Build in a sibling directory and rename it into place, so an interrupted
    # fetch never leaves a half-extracted binary that a later call would trust.
    staging = Path(tempfile.mkdtemp(prefix=f".opencode-{OPENCODE_VERSION}-", dir=cache_root))
    try:
        tarball = _npm_pack(npm, staging)
        verify_integrity(tarball, OPENCODE_INTEGRITY)
        with tarfile.open(tarball) as archive:
            archive.extractall(staging, filter="data")
        staged_binary = staging / "package" / "bin" / "opencode"
        if not staged_binary.is_file():
            raise OpencodeBinaryError(f"{tarball.name} has no package/bin/opencode")
        staged_binary.chmod(0o755)
        if version_dir.exists():  # left by an older, incomplete layout: the binary check above failed
            shutil.rmtree(version_dir)
        try:
            staging.rename(version_dir)
        except OSError:
            if not os.access(binary, os.X_OK):  # not a concurrent fetch that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return binary


def opencode_binary_or_skip() -> Path:
    """The binary for a test; a skip saying why when it cannot be had (a failure when CI=true)."""
    import pytest

    from harness.engine import in_ci

    try:
        return opencode_binary()
    except OpencodeBinaryError as exc:
        if in_ci():
            raise
        pytest.skip(f"the real OpenCode binary is unavailable: {exc}")


def _npm_pack(npm: str, destination: Path) -> Path:
    spec = f"{OPENCODE_PACKAGE}@{OPENCODE_VERSION}"
    try:
        result = subprocess.run(
            [npm, "pack", spec, "--pack-destination", str(destination), "--silent"],
            cwd=destination,
            capture_output=True,
            text=True,
            timeout=NPM_PACK_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise OpencodeBinaryError(f"`npm pack {spec}` took longer than {NPM_PACK_TIMEOUT_SECONDS}s") from None
    tarball = destination / f"{OPENCODE_PACKAGE}-{OPENCODE_VERSION}.tgz"
    if result.returncode != 0 or not tarball.is_file():
        raise OpencodeBinaryError(
            f"`npm pack {spec}` failed (exit {result.returncode}):\n{result.stderr.strip()[-2000:]}"
        )
    return tarball


def verify_integrity(path: Path, integrity: str) -> None:
    """Raise unless ``path`` matches the npm/SRI ``sha512-<base64>`` string."""
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512" or not expected:
        raise OpencodeBinaryError(f"unsupported integrity string {integrity!r} (expected sha512-<base64>)")
    digest = hashlib.sha512()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    actual = base64.b64encode(digest.digest()).decode()
    if actual != expected:
        raise OpencodeBinaryError(
            f"{path.name} does not match the pinned integrity: expected sha512-{expected}, got sha512-{actual}"
        )
