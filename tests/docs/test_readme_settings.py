"""The README's settings table names every setting the stacks accept (docs that match the code)."""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel

from sandbox_model.paths import README
from stacks.loader import SECRET_KEYS
from stacks.settings import Settings


def _models(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (unions and Annotated unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return [model for arg in typing.get_args(annotation) for model in _models(arg)]
    return [annotation] if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []


def setting_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every leaf setting, dotted (the variants of a union all count)."""
    paths = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = _models(field.annotation)
        if not nested:
            paths.add(path)
        for sub in nested:
            paths |= setting_paths(sub, f"{path}.")
    return paths


def documented(path: str, lines: list[list[str]]) -> bool:
    parent, _, leaf = path.rpartition(".")
    for tokens in lines:
        if path in tokens:
            return True
        # A grouped row: `workspace.limits.memory_mb` / `.cpus`, or the parent named as a whole.
        if parent and (parent in tokens or (f".{leaf}" in tokens and any(t.startswith(f"{parent}.") for t in tokens))):
            return True
    return False


def test_every_setting_is_in_the_readme():
    table = [line for line in README.read_text().splitlines() if line.startswith("| `")]
    lines = [re.findall(r"`([^`]+)`", line) for line in table]
    paths = setting_paths(Settings) - {"stack"} | set(SECRET_KEYS)
    missing = sorted(path for path in paths if not documented(path, lines))
    assert missing == [], f"settings missing from the README's settings table: {missing}"
