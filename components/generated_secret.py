"""A secret the stack generates once and keeps in its state: a Pulumi dynamic resource.

The value is made by Python's ``secrets`` module when the resource is created, stored (encrypted, as
a secret output) in the stack's state, and never changes afterwards: later ``pulumi up`` runs and
refreshes read it from the state. Changing ``length`` makes a new value. A dynamic resource runs in
the Pulumi SDK's own provider host (``pulumi-resource-pulumi-python``, part of every Pulumi
install), so the stack needs no provider plugin for it.
"""

from __future__ import annotations

import secrets
import string
import uuid

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

ALPHABET = string.ascii_letters + string.digits


class _GeneratedSecretProvider(ResourceProvider):
    def create(self, props):
        length = int(props["length"])
        value = "".join(secrets.choice(ALPHABET) for _ in range(length))
        return CreateResult(id_=uuid.uuid4().hex, outs={"length": length, "result": value})

    def diff(self, _id, olds, news):
        # Only a new length makes a new value; the provider's own code changing is no reason to.
        changed = int(olds.get("length", 0)) != int(news["length"])
        return DiffResult(changes=changed, replaces=["length"] if changed else [], delete_before_replace=False)


class GeneratedSecret(Resource):
    """``result``: ``length`` letters and digits, a secret output."""

    result: pulumi.Output[str]

    def __init__(self, name: str, length: int, opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            _GeneratedSecretProvider(),
            name,
            {"length": length, "result": None},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["result"])),
        )
