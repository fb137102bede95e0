"""A committed stack's settings, validated as the program validates them, without running the program.

``stack_settings("ci", set_config={...})`` turns the committed ``Pulumi.<stack>.yaml`` (with the
same edits :func:`harness.program.run_program` takes) into the config mapping the loader reads and
returns ``stacks.loader.validate_settings``'s answer: the :class:`Settings`, or its ``SettingsError``.
Run it on a developer's machine (harness.program.developer_machine): paths expand against HOME.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.program import stack_config
from sandbox_model.naming import PROJECT
from stacks.loader import validate_settings
from stacks.settings import Settings


def stack_config_values(
    stack: str,
    *,
    set_config: Mapping[str, Any] | None = None,
    remove_config: tuple[str, ...] = (),
    plain_config: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The stack's config as the loader receives it: short key -> the engine's string value."""
    prefix = f"{PROJECT}:"
    config = {key[len(prefix) :]: value for key, value in stack_config(stack).items() if key.startswith(prefix)}
    for key in remove_config:
        config.pop(key, None)
    for key, value in (set_config or {}).items():
        config[key] = value if isinstance(value, str) else json.dumps(value)
    config.update(plain_config or {})
    return config


def stack_settings(stack: str, **edits: Any) -> Settings:
    """The validated settings of ``stack`` (raises stacks.loader.SettingsError, as the program would)."""
    return validate_settings(stack, stack_config_values(stack, **edits))
