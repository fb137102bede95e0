"""Talk to the policy pack the way the Pulumi engine does: start it, then gRPC.

The engine runs a Python pack as ``python -u -m pulumi.policy <engine address> .``
in the pack's directory, reads the port the pack prints, and calls the
analyzer service: ``GetAnalyzerInfo``, ``Configure`` (every policy, with its
enforcement level, after reconciling the config file with the pack's defaults
and validating it against each policy's schema), ``Analyze`` per resource
(its inputs) and ``AnalyzeStack`` (every resource's outputs). Properties travel
as a protobuf ``Struct``: numbers are doubles, secrets are wrapped in the
secret signature, and a value not known during a preview is the engine's
unknown sentinel string. :class:`PolicyPackProcess` and :class:`Analyzer`
do exactly that, so the tests see what ``pulumi preview --policy-pack`` sees;
:class:`InProcessAnalyzer` sends the same requests to the same servicer in this
process (no process, no socket), for the many requests of the rule tests.
"""

from __future__ import annotations

import functools
import json
import select
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import jsonschema.validators
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from sandbox_model.paths import REPO_ROOT

POLICIES_DIR = REPO_ROOT / "policies"
#: What the engine sends for a value it cannot know during a preview (any type).
UNKNOWN = rpc.UNKNOWN
STARTUP_TIMEOUT_S = 60


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    level: str  # "MANDATORY", "ADVISORY", ...
    message: str
    urn: str


@dataclass(frozen=True)
class EngineResource:
    """A resource as the engine describes it to an analyzer."""

    type: str
    name: str
    urn: str
    properties: Mapping[str, Any]
    #: Top-level properties that hold a secret (sent wrapped in the secret signature).
    secret_keys: frozenset[str] = frozenset()
    parent: str = ""

    @functools.cached_property
    def struct(self) -> struct_pb2.Struct:
        """The properties as the engine marshals them, once per resource (its properties never change)."""
        return engine_struct(self.properties, self.secret_keys)


def engine_struct(properties: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> struct_pb2.Struct:
    """Properties marshalled as the engine marshals them (KeepUnknowns, KeepSecrets)."""
    secret_keys = set(secret_keys)
    marshalled = {
        key: {rpc._special_sig_key: rpc._special_secret_sig, "value": value} if key in secret_keys else value
        for key, value in properties.items()
    }
    struct = struct_pb2.Struct()
    struct.update(marshalled)  # every number becomes a double, as on the wire
    return struct


class PolicyPackProcess:
    """The pack's own process, started like the engine starts it; ``address`` once it listens."""

    def __init__(self, pack_dir: Path = POLICIES_DIR):
        self.pack_dir = pack_dir
        self.process: subprocess.Popen | None = None
        self.address = ""
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the pack process

    def __enter__(self) -> PolicyPackProcess:
        # The engine address is required on the command line; a policy pack never calls it.
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
            cwd=self.pack_dir,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        stdout = self.process.stdout
        assert stdout is not None  # stdout=PIPE
        ready, _, _ = select.select([stdout], [], [], STARTUP_TIMEOUT_S)
        line = stdout.readline() if ready else ""
        if not line.strip().isdigit():
            self._stop()
            raise RuntimeError(
                f"the policy pack in {self.pack_dir} did not start (no port on stdout): {line!r}\n{self.stderr}"
            )
        self.address = f"127.0.0.1:{line.strip()}"
        return self

    def __exit__(self, *exc) -> None:
        self._stop()
        self._stderr.close()

    def _stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    @property
    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()


class PackCrash(Exception):
    """The pack failed to answer a request (over gRPC: the failed RPC's details)."""

    def __init__(self, details: str):
        super().__init__(details)
        self.details = details


@functools.cache
def _validator(schema_json: str) -> Any:
    """A validator for one policy's config schema, the schema itself checked once (as jsonschema.validate does)."""
    schema = json.loads(schema_json)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


class _EngineSide:
    """The engine's side of the analyzer service, whatever carries the requests to the pack."""

    def _call(self, method: str, request: Any) -> Any:
        raise NotImplementedError

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        return self._call("GetAnalyzerInfo", empty_pb2.Empty())

    def configure(self, config: Mapping[str, Any] | None = None) -> None:
        """Apply a ``--policy-pack-config`` file's content the way the CLI does.

        Every policy gets its default (the level the pack declares), then ``all``'s level,
        then the file's entry (a level, or an object of properties with an optional
        ``enforcementLevel``); the result must validate against each policy's schema.
        """
        config = dict(config or {})
        all_level = config.pop("all", None)
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        known = set()
        for policy in self.info().policies:
            known.add(policy.name)
            level = analyzer_pb2.EnforcementLevel.Name(policy.enforcementLevel).lower()
            level = all_level or level
            entry = config.get(policy.name, {})
            properties = {}
            if isinstance(entry, str):
                level = entry
            else:
                properties = {k: v for k, v in entry.items() if k != "enforcementLevel"}
                level = entry.get("enforcementLevel", level)
            schema = {
                "type": "object",
                "properties": json_format.MessageToDict(policy.configSchema.properties),
                "required": list(policy.configSchema.required),
            }
            _validator(json.dumps(schema, sort_keys=True)).validate(properties)
            properties_struct = struct_pb2.Struct()
            properties_struct.update(properties)
            request.policyConfig[policy.name].CopyFrom(
                analyzer_pb2.PolicyConfig(
                    enforcementLevel=analyzer_pb2.EnforcementLevel.Value(level.upper()), properties=properties_struct
                )
            )
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"policy config names no policy of the pack: {sorted(unknown)}")
        self._call("Configure", request)

    def analyze(self, resource: EngineResource) -> list[Diagnostic]:
        response = self._call(
            "Analyze",
            analyzer_pb2.AnalyzeRequest(
                type=resource.type,
                name=resource.name,
                urn=resource.urn,
                properties=resource.struct,
            ),
        )
        return _diagnostics(response)

    def analyze_stack(self, resources: Iterable[EngineResource]) -> list[Diagnostic]:
        response = self._call(
            "AnalyzeStack",
            analyzer_pb2.AnalyzeStackRequest(
                resources=[
                    analyzer_pb2.AnalyzerResource(
                        type=r.type,
                        name=r.name,
                        urn=r.urn,
                        parent=r.parent,
                        properties=r.struct,
                    )
                    for r in resources
                ]
            ),
        )
        return _diagnostics(response)

    def close(self) -> None:
        pass


class Analyzer(_EngineSide):
    """The engine's side, over gRPC to a running pack (:class:`PolicyPackProcess`), as the engine talks to it."""

    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.stub, method)(request)
        except grpc.RpcError as error:
            raise PackCrash(error.details() or str(error)) from error

    def close(self) -> None:
        self.channel.close()


@functools.lru_cache(maxsize=4096)
def _deserialized(marshalled: bytes) -> Any:
    """Properties as the pack's servicer deserializes them, once per distinct marshalled value.

    The variant tests send the same unchanged resources thousands of times; the pack only reads
    props (it never writes them), so one deserialized copy serves every request that carries them.
    """
    from pulumi_policy.deserialize import deserialize_properties
    from pulumi_policy.proxy import unknown_checking_proxy

    struct = struct_pb2.Struct()
    struct.ParseFromString(marshalled)
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


class InProcessAnalyzer(_EngineSide):
    """The engine's side, calling the pack's policies in this process: the pack minus the transport.

    ``python -m pulumi.policy`` runs ``policies/__main__.py``, whose ``PolicyPack`` builds the
    SDK's servicer from :func:`policies.sandbox_policies.policies` and serves it over gRPC.
    This builds the same servicer from the same policies: ``GetAnalyzerInfo`` and
    ``Configure`` are the servicer's own; ``Analyze``/``AnalyzeStack`` take the same request
    messages (properties marshalled as the engine marshals them) and run the servicer's loop
    (enforcement levels, config, the report, an unknown value read as an advisory diagnostic)
    with its own helpers, but deserialize each resource once per request instead of once per
    policy (the pack never changes props). So the tests about the rules see what the pack
    answers, hundreds of times a second; tests/host/policy (the pack's info, the committed stacks and
    the unknown sentinel over gRPC) uses the real process. An exception
    in the pack, which gRPC reports as a failed RPC, is a :class:`PackCrash` here too.
    """

    def __init__(self) -> None:
        from pulumi_policy.policy import _PolicyAnalyzerServicer

        from policies.sandbox_policies import ENFORCEMENT_LEVEL, PACK_DESCRIPTION, PACK_NAME, policies

        self.policies = policies()
        # PolicyPack(...) passes these, and the version it always passes (PulumiPolicy.yaml's wins).
        self.servicer = _PolicyAnalyzerServicer(
            PACK_NAME, "0.0.1", self.policies, ENFORCEMENT_LEVEL, None, PACK_DESCRIPTION
        )

    def _call(self, method: str, request: Any) -> Any:
        handler = getattr(self, f"_{method}", None) or getattr(self.servicer, method)
        try:
            return handler(request, None)
        except Exception as error:  # gRPC turns any exception in the pack into a failed RPC
            raise PackCrash(f"Exception calling application: {error}") from error

    @staticmethod
    def _props(properties: struct_pb2.Struct) -> Any:
        return _deserialized(properties.SerializeToString(deterministic=True))

    def _run(self, response: Any, policy_type: Any, make_args: Any) -> Any:
        from pulumi_policy import EnforcementLevel
        from pulumi_policy.proxy import UnknownValueError

        servicer = self.servicer
        for policy in self.policies:
            level = servicer._get_enforcement_level(policy)
            if level == EnforcementLevel.DISABLED or not isinstance(policy, policy_type):
                continue
            if level == EnforcementLevel.REMEDIATE:
                level = EnforcementLevel.MANDATORY
            report = servicer._create_report_violation(
                response, policy.name, policy.description, level, policy.severity
            )
            try:
                policy.validate(make_args(servicer._get_policy_config(policy.name)), report)
            except UnknownValueError as error:
                response.diagnostics.append(
                    analyzer_pb2.AnalyzeDiagnostic(
                        policyName=policy.name,
                        message=f"can't run policy '{policy.name}' during preview: {error.message}",
                        description=policy.description,
                        enforcementLevel=analyzer_pb2.ADVISORY,
                    )
                )
        return response

    def _Analyze(self, request: analyzer_pb2.AnalyzeRequest, _context: None) -> Any:
        from pulumi_policy import ResourceValidationArgs, ResourceValidationPolicy

        props = self._props(request.properties)
        opts = self.servicer._get_resource_options(request)
        return self._run(
            analyzer_pb2.AnalyzeResponse(),
            ResourceValidationPolicy,
            lambda config: ResourceValidationArgs(
                request.type, props, request.urn, request.name, opts, None, config, {}
            ),
        )

    def _AnalyzeStack(self, request: analyzer_pb2.AnalyzeStackRequest, _context: None) -> Any:
        from pulumi_policy import StackValidationArgs, StackValidationPolicy
        from pulumi_policy.policy import PolicyResource

        resources = [
            PolicyResource(
                r.type,
                self._props(r.properties),
                r.urn,
                r.name,
                self.servicer._get_resource_options(r),
                None,
                None,
                [],
                {},
            )
            for r in request.resources
        ]
        return self._run(
            analyzer_pb2.AnalyzeResponse(),
            StackValidationPolicy,
            lambda config: StackValidationArgs(resources, config, {}),
        )


def _diagnostics(response: analyzer_pb2.AnalyzeResponse) -> list[Diagnostic]:
    return [
        Diagnostic(
            policy=d.policyName,
            level=analyzer_pb2.EnforcementLevel.Name(d.enforcementLevel),
            message=d.message,
            urn=d.urn,
        )
        for d in response.diagnostics
    ]
