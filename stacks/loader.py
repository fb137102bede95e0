"""Load the stack settings from Pulumi config, once, before any resource is registered.

A bad setting stops the program with :class:`SettingsError`, whose message names
every bad key, its value and the fix. Secrets (``web_password``,
``model_api_key``, ``executor_token``, ``mcp_secrets``, ``conductor_token``) are accepted only as Pulumi secrets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import ValidationError

from sandbox_model.naming import PROJECT
from stacks.settings import Settings

#: Keys holding secrets: set with `pulumi config set --secret`, never plain text in a stack file.
SECRET_KEYS = ("web_password", "model_api_key", "executor_token", "mcp_secrets", "conductor_token")
SETTINGS_KEYS = tuple(name for name in Settings.model_fields if name != "stack")
KNOWN_KEYS = frozenset(SETTINGS_KEYS) | frozenset(SECRET_KEYS)


class SettingsError(pulumi.RunError):
    """A stack setting is wrong; the message says which, why and how to fix it."""


@dataclass(frozen=True)
class StackSecrets:
    """Secret inputs the user set (each None when unset: the stack then generates one)."""

    web_password: pulumi.Output[str] | None
    model_api_key: pulumi.Output[str] | None
    executor_token: pulumi.Output[str] | None
    #: The conductor's bearer token (conductor.enabled only).
    conductor_token: pulumi.Output[str] | None = None
    #: The values ``{secret:<name>}`` in ``workspace.mcp_servers`` headers stand for, by name.
    mcp_secrets: Mapping[str, pulumi.Output[str]] | None = None


@dataclass(frozen=True)
class StackInputs:
    settings: Settings
    secrets: StackSecrets


def _project_config() -> dict[str, Any]:
    """Every `opencode-sandbox:*` config value the engine passed, by short key."""
    values: dict[str, Any] = {}
    for source in (runtime_config.get_config_env(), runtime_config.CONFIG.get()):
        for key, value in source.items():
            namespace, _, name = key.partition(":")
            if namespace == PROJECT and name:
                values[name] = value
    return values


def _decode(value: Any) -> Any:
    """Structured config arrives as JSON text; scalars arrive as plain strings."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _config_set_hint(path: str) -> str:
    return f"pulumi config set --path '{PROJECT}:{path}' <value>"


def _format_error(error: Mapping[str, Any]) -> str:
    path = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    # Discriminated unions put the variant name in the location; drop it from the key.
    for variant in ("vllm", "external", "test-double"):
        path = path.replace(f"model.{variant}.", "model.").replace(f"model.{variant}", "model")
    key = f"{PROJECT}:{path}" if path else PROJECT
    kind, message = error["type"], error["msg"]
    value = error.get("input")
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "missing":
        return f"{key} is not set. Fix: {_config_set_hint(path)}"
    if kind == "extra_forbidden":
        return f"{key} is not a known setting. Fix: remove it (check the spelling against the README's settings table)"
    # A cross-field check names the key it blames itself: "<sub.key> = <value>: <problem>".
    blamed = re.match(r"^([a-z_]+(?:\.[a-z_]+)*) = ", message)
    if blamed and isinstance(value, Mapping):
        nested = f"{path}.{blamed.group(1)}" if path else blamed.group(1)
        return f"{PROJECT}:{nested}{message[len(blamed.group(1)) :]}"
    shown = json.dumps(value, default=str) if not isinstance(value, Mapping) else "{...}"
    if "Fix:" not in message:
        message = f"{message}. Fix: {_config_set_hint(path)} with a valid value"
    return f"{key} = {shown}: {message}"


def validate_settings(stack: str, raw: Mapping[str, Any]) -> Settings:
    """Validate decoded config values (short keys) into :class:`Settings`, or raise SettingsError."""
    problems = [
        f"{PROJECT}:{key} is not a known setting. Fix: remove it (known: {', '.join(sorted(KNOWN_KEYS))})"
        for key in sorted(set(raw) - KNOWN_KEYS)
    ]
    data = {key: _decode(raw[key]) for key in SETTINGS_KEYS if key in raw}
    try:
        settings = Settings.model_validate({"stack": stack, **data})
    except ValidationError as exc:
        problems.extend(_format_error(error) for error in exc.errors())
        settings = None
    if settings is not None:
        problems.extend(_mcp_secret_problems(settings, raw.get("mcp_secrets")))
    if problems or settings is None:
        raise SettingsError("invalid stack settings:\n  - " + "\n  - ".join(problems))
    return settings


def _mcp_secret_names(value: Any) -> tuple[list[str], str | None]:
    """The entry names of ``mcp_secrets`` (never its values), or the problem with its shape."""
    decoded = _decode(value) if value is not None else {}
    if not isinstance(decoded, Mapping) or not all(isinstance(v, str) and v for v in decoded.values()):
        return [], (
            f"{PROJECT}:mcp_secrets is not a map of names to non-empty strings. Fix: pulumi config set "
            f"--secret --path '{PROJECT}:mcp_secrets.<name>' <value>"
        )
    return sorted(decoded), None


def _mcp_secret_problems(settings: Settings, raw_secrets: Any) -> list[str]:
    names, problem = _mcp_secret_names(raw_secrets)
    if problem:
        return [problem]
    problems = []
    for server, declared in settings.workspace.mcp_servers.items():
        for name in declared.secret_names:
            if name not in names:
                problems.append(
                    f"{PROJECT}:workspace.mcp_servers.{server}.headers refers to {{secret:{name}}}, which "
                    f"{PROJECT}:mcp_secrets does not hold. Fix: pulumi config set --secret --path "
                    f"'{PROJECT}:mcp_secrets.{name}' <value>"
                )
    return problems


def load_stack_inputs() -> StackInputs:
    raw = _project_config()
    problems = []
    for key in SECRET_KEYS:
        if key in raw and not runtime_config.is_config_secret(f"{PROJECT}:{key}"):
            problems.append(
                f"{PROJECT}:{key} is stored as plain text. Fix: pulumi config rm {PROJECT}:{key} && "
                f"pulumi config set --secret {PROJECT}:{key} <value>"
            )
    if problems:
        raise SettingsError("invalid stack settings:\n  - " + "\n  - ".join(problems))
    settings = validate_settings(pulumi.get_stack(), raw)
    config = pulumi.Config(PROJECT)
    secrets = StackSecrets(
        **{key: config.get_secret(key) for key in SECRET_KEYS if key != "mcp_secrets"},
        mcp_secrets=_mcp_secret_outputs(config, raw.get("mcp_secrets")),
    )
    return StackInputs(settings=settings, secrets=secrets)


def _mcp_secret_outputs(config: pulumi.Config, raw_value: Any) -> dict[str, pulumi.Output[str]]:
    names, _ = _mcp_secret_names(raw_value)
    if not names:
        return {}
    whole = config.require_secret_object("mcp_secrets")
    return {name: pulumi.Output.secret(whole.apply(_entry(name))) for name in names}


def _entry(name: str) -> Callable[[Mapping[str, str]], str]:
    return lambda values: values[name]
