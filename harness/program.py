"""Run the Pulumi program for a stack under Pulumi's mocks and record what it declares.

This is how our machines (no Pulumi CLI, no provider plugin) see the program:
the committed ``Pulumi.<stack>.yaml`` is turned into the config the engine would
pass, ``__main__.py`` runs unchanged, and every resource registration is
recorded with its inputs (camelCase, as the engine serializes them) and the
resource options that matter (parent, dependencies, deleteBeforeReplace,
replaceOnChanges).
"""

from __future__ import annotations

import json
import os
import runpy
import secrets as pysecrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from sandbox_model.naming import CONTAINER_TYPE, NETWORK_TYPE, PROJECT, REMOTE_IMAGE_TYPE
from sandbox_model.paths import REPO_ROOT

STACKS = tuple(sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in REPO_ROOT.glob("Pulumi.*.yaml")))

#: The type of every Pulumi dynamic resource (components.generated_secret.GeneratedSecret is one).
DYNAMIC = "pulumi-python:dynamic:Resource"


@dataclass
class DeclaredResource:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: tuple[str, ...] = ()
    delete_before_replace: bool = False
    replace_on_changes: tuple[str, ...] = ()
    #: Top-level input names whose value is (or contains) a Pulumi secret.
    secret_inputs: frozenset[str] = frozenset()


@dataclass
class DeclaredStack:
    stack: str
    resources: list[DeclaredResource] = field(default_factory=list)

    def of_type(self, type_: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == type_]

    @property
    def containers(self) -> list[DeclaredResource]:
        return self.of_type(CONTAINER_TYPE)

    @property
    def networks(self) -> list[DeclaredResource]:
        return self.of_type(NETWORK_TYPE)

    def container(self, role: str) -> list[DeclaredResource]:
        from sandbox_model.naming import LABEL_ROLE

        return [
            c
            for c in self.containers
            if {label["label"]: label["value"] for label in c.inputs.get("labels", [])}.get(LABEL_ROLE) == role
        ]


class _Mocks(pulumi.runtime.Mocks):
    """Outputs = inputs, plus what the provider would compute that the program reads."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ == REMOTE_IMAGE_TYPE:
            # The program hands the image id to containers; the tag stands in for it here.
            outputs["imageId"] = args.inputs["name"]
        elif args.typ == DYNAMIC:  # GeneratedSecret
            outputs["result"] = pysecrets.token_urlsafe(30)[: int(args.inputs.get("length", 32))]
        return f"{args.name}-id", outputs

    def call(self, args: pulumi_mocks.MockCallArgs):
        return {}


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: _Mocks):
        super().__init__(mocks)
        self.declared: list[DeclaredResource] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            registration = self.resources[response.urn]
            raw = pulumi.runtime.rpc.deserialize_properties(request.object)
            self.declared.append(
                DeclaredResource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    custom=request.custom,
                    inputs=_plain(raw),
                    secret_inputs=frozenset(key for key, value in raw.items() if _holds_secret(value)),
                    outputs=_plain(registration.state),
                    dependencies=tuple(request.dependencies),
                    delete_before_replace=request.deleteBeforeReplace,
                    replace_on_changes=tuple(request.replaceOnChanges),
                )
            )
        return response


_SIG = pulumi.runtime.rpc._special_sig_key
_SECRET = pulumi.runtime.rpc._special_secret_sig


def _is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(_SIG) == _SECRET


def _holds_secret(value: Any) -> bool:
    if _is_secret(value):
        return True
    if isinstance(value, Mapping):
        return any(_holds_secret(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_secret(v) for v in value)
    return False


def _plain(value: Any) -> Any:
    """Inputs as the provider receives them: secrets unwrapped."""
    if _is_secret(value):
        return _plain(value["value"])
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def stack_config(stack: str) -> dict[str, str]:
    """The committed stack file as the engine passes it: `project:key` -> string (JSON for objects)."""
    document = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    config = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, Mapping) and "secure" in value:
            raise ValueError(f"Pulumi.{stack}.yaml holds an encrypted secret ({key}); committed stacks must not")
        config[key] = value if isinstance(value, str) else json.dumps(value)
    return config


@contextmanager
def developer_machine(home: Path, uid: int = 1000, gid: int = 1000) -> Iterator[None]:
    """HOME and the invoking user of a developer's machine (tests may run as root, in a tmp home)."""
    saved_home = os.environ.get("HOME")
    saved_ids = os.getuid, os.getgid
    os.environ["HOME"] = str(home)
    os.getuid, os.getgid = (lambda: uid), (lambda: gid)
    try:
        yield
    finally:
        os.getuid, os.getgid = saved_ids
        if saved_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = saved_home


def run_program(
    stack: str,
    *,
    set_config: Mapping[str, Any] | None = None,
    remove_config: tuple[str, ...] = (),
    secrets: Mapping[str, str] | None = None,
    plain_config: Mapping[str, str] | None = None,
    preview: bool = False,
    registered: list[DeclaredResource] | None = None,
    settings_from: str | None = None,
) -> DeclaredStack:
    """Run __main__.py for `stack` under mocks; returns every resource it registered.

    ``set_config`` replaces top-level keys (short names, values as Python objects),
    ``remove_config`` drops keys, ``secrets`` adds keys marked secret, ``plain_config``
    adds raw string values (not secret). Exceptions from the program propagate;
    ``registered``, when given, receives the registrations made before one. ``settings_from``
    runs the program as stack ``stack`` with another stack's committed file (its own names and
    labels, that stack's settings).
    """
    config = stack_config(settings_from or stack)
    for key in remove_config:
        config.pop(f"{PROJECT}:{key}", None)
    for key, value in (set_config or {}).items():
        config[f"{PROJECT}:{key}"] = value if isinstance(value, str) else json.dumps(value)
    for key, value in (plain_config or {}).items():
        config[f"{PROJECT}:{key}"] = value
    secret_keys = []
    for key, value in (secrets or {}).items():
        config[f"{PROJECT}:{key}"] = value
        secret_keys.append(f"{PROJECT}:{key}")

    mocks = _Mocks()
    monitor = _RecordingMonitor(mocks)
    if registered is not None:
        monitor.declared = registered
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys)
    settings = pulumi.runtime.settings.SETTINGS
    settings.rpc_manager.clear()
    settings.outputs.clear()
    cwd = Path.cwd()
    os.chdir(REPO_ROOT)  # Pulumi runs programs in the project directory
    try:
        _sync_await(run_pulumi_func(_run_main))
    finally:
        os.chdir(cwd)
    return DeclaredStack(stack=stack, resources=monitor.declared)


def _run_main() -> None:
    runpy.run_path(str(REPO_ROOT / "__main__.py"), run_name="__main__")
