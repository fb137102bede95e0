"""Where the repository keeps what the program, the pack and the tools read at run time.

The project is installed editable (``pip install -e .``, scripts/venv), so this
file stays in the checkout and the repository root is found from it once.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO_ROOT / "images"
SECCOMP_DIR = IMAGES_DIR / "seccomp"
README = REPO_ROOT / "README.md"
