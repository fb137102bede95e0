"""The project's seccomp profiles (``images/seccomp/<name>.json``), as the engine receives them.

Docker takes a profile inline (``seccomp=<JSON text>``), not as a path; the text
is minified so the declared input stays stable and small.
"""

from __future__ import annotations

import functools
import json

from sandbox_model.paths import SECCOMP_DIR


@functools.cache
def seccomp_profile(name: str) -> str:
    path = SECCOMP_DIR / f"{name}.json"
    try:
        profile = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"seccomp profile {path} is missing (images/seccomp/generate.py writes it)") from None
    return json.dumps(profile, separators=(",", ":"), sort_keys=True)


def all_seccomp_profiles() -> dict[str, str]:
    return {path.stem: seccomp_profile(path.stem) for path in sorted(SECCOMP_DIR.glob("*.json"))}
