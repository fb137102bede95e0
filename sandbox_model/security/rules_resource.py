"""The resource rules' checks: each judges one image reference (a pulled image's, or a container's).

Every check has the signature :data:`ResourceCheck`, ``(reference) -> problem | None``.
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox_model.security.baseline import MUTABLE_TAGS

#: A resource rule's check: an image reference -> why it is forbidden, or None.
ResourceCheck = Callable[[str], str | None]


def image_reference_problem(reference: str) -> str | None:
    """Why an image reference is mutable, or None when it is pinned (digest or fixed tag)."""
    if "@sha256:" in reference or reference.startswith("sha256:"):
        return None
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {reference!r} has no tag (that means :latest)"
    tag = last.rsplit(":", 1)[1]
    if tag.lower() in MUTABLE_TAGS:
        return f"image {reference!r} is on the mutable tag {tag!r}"
    return None
