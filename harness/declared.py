"""A committed stack's declared resources, possibly changed, as the engine hands them to the pack.

A change is a function that edits a resource's properties in place; it is
applied to a copy of the declared inputs (what ``Analyze`` sees) and of the
outputs (what ``AnalyzeStack`` sees; under mocks they are the inputs), so a
variant is always a real declared resource with one thing made insecure.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from harness.analyzer_client import Analyzer, Diagnostic, EngineResource
from harness.program import DeclaredResource, DeclaredStack
from sandbox_model.naming import LABEL_ROLE

Change = Callable[[dict], None]


def labels_of(resource: DeclaredResource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.inputs.get("labels", [])}


def role_of(resource: DeclaredResource) -> str | None:
    return labels_of(resource).get(LABEL_ROLE)


def with_role(declared: DeclaredStack, role: str, index: int = 0) -> DeclaredResource:
    containers = declared.container(role)
    assert len(containers) > index, f"stack {declared.stack} declares no container #{index} of role {role!r}"
    return containers[index]


def named(declared: DeclaredStack, type_: str, name: str) -> DeclaredResource:
    found = [r for r in declared.of_type(type_) if r.name == name]
    assert len(found) == 1, f"stack {declared.stack} declares {len(found)} {type_} named {name!r}"
    return found[0]


@dataclass
class ChangedStack:
    """A stack with some resources' properties changed."""

    declared: DeclaredStack
    changes: dict[str, list[Change]] = field(default_factory=dict)  # urn -> changes, in order

    def change(self, resource: DeclaredResource, *changes: Change) -> ChangedStack:
        self.changes.setdefault(resource.urn, []).extend(changes)
        return self

    def engine_inputs(self, resource: DeclaredResource) -> EngineResource:
        return self._engine(resource, "inputs")

    def engine_outputs(self, resource: DeclaredResource) -> EngineResource:
        return self._engine(resource, "outputs")

    def _engine(self, resource: DeclaredResource, side: str) -> EngineResource:
        changes = self.changes.get(resource.urn)
        if not changes:
            return _unchanged(resource, side)
        return _as_engine_sees(resource, side, changes)

    def analyze(self, analyzer: Analyzer, everything: bool = False) -> list[Diagnostic]:
        """Analyze of the changed resources (or of all), then AnalyzeStack: every diagnostic."""
        resources = (
            self.declared.resources if everything else [r for r in self.declared.resources if r.urn in self.changes]
        )
        diagnostics = [d for r in resources for d in analyzer.analyze(self.engine_inputs(r))]
        return diagnostics + analyzer.analyze_stack(self.engine_outputs(r) for r in self.declared.resources)


#: An unchanged declared resource as the engine hands it over, made once (with its marshalled struct):
#: the declared stacks live for the whole session and are never changed in place (changes apply to copies).
_UNCHANGED: dict[tuple[int, str], tuple[DeclaredResource, EngineResource]] = {}


def _unchanged(resource: DeclaredResource, side: str) -> EngineResource:
    key = (id(resource), side)
    cached = _UNCHANGED.get(key)
    if cached is None or cached[0] is not resource:
        cached = _UNCHANGED[key] = (resource, _as_engine_sees(resource, side, ()))
    return cached[1]


def _as_engine_sees(resource: DeclaredResource, side: str, changes: Iterable[Change]) -> EngineResource:
    """``resource``'s inputs or outputs (``side``), copied and changed, as the engine hands them over."""
    properties = copy.deepcopy(dict(getattr(resource, side)))
    for change in changes:
        change(properties)
    return EngineResource(
        type=resource.type,
        name=resource.name,
        urn=resource.urn,
        properties=properties,
        secret_keys=resource.secret_inputs,
        parent=resource.parent,
    )
