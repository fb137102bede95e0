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
do exactly that, so the tests see what ``pulumi preview --policy-pack`` sees.
"""

from __future__ import annotations

import select
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import grpc
import jsonschema
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


def engine_struct(properties: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> struct_pb2.Struct:
    """Properties marshalled as the engine marshals them (KeepUnknowns, KeepSecrets)."""
    secret_keys = set(secret_keys)
    marshalled = {key: {rpc._special_sig_key: rpc._special_secret_sig, "value": value} if key in secret_keys else value
                  for key, value in properties.items()}
    struct = struct_pb2.Struct()
    struct.update(marshalled)  # every number becomes a double, as on the wire
    return struct


class PolicyPackProcess:
    """The pack's own process, started like the engine starts it; ``address`` once it listens."""

    def __init__(self, pack_dir: Path = POLICIES_DIR):
        self.pack_dir = pack_dir
        self.process: subprocess.Popen | None = None
        self.address = ""
        self._stderr = tempfile.TemporaryFile(mode="w+")

    def __enter__(self) -> "PolicyPackProcess":
        # The engine address is required on the command line; a policy pack never calls it.
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
            cwd=self.pack_dir, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], STARTUP_TIMEOUT_S)
        line = self.process.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            self._stop()
            raise RuntimeError(f"the policy pack in {self.pack_dir} did not start (no port on stdout): "
                               f"{line!r}\n{self.stderr}")
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
        if self.process is not None:
            self.process.stdout.close()

    @property
    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()


class Analyzer:
    """The engine's side of the analyzer service."""

    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        return self.stub.GetAnalyzerInfo(empty_pb2.Empty())

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
            schema = {"type": "object", "properties": json_format.MessageToDict(policy.configSchema.properties),
                      "required": list(policy.configSchema.required)}
            jsonschema.validate(properties, schema)
            properties_struct = struct_pb2.Struct()
            properties_struct.update(properties)
            request.policyConfig[policy.name].CopyFrom(analyzer_pb2.PolicyConfig(
                enforcementLevel=analyzer_pb2.EnforcementLevel.Value(level.upper()), properties=properties_struct))
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"policy config names no policy of the pack: {sorted(unknown)}")
        self.stub.Configure(request)

    def analyze(self, resource: EngineResource) -> list[Diagnostic]:
        response = self.stub.Analyze(analyzer_pb2.AnalyzeRequest(
            type=resource.type, name=resource.name, urn=resource.urn,
            properties=engine_struct(resource.properties, resource.secret_keys)))
        return _diagnostics(response)

    def analyze_stack(self, resources: Iterable[EngineResource]) -> list[Diagnostic]:
        response = self.stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
            analyzer_pb2.AnalyzerResource(
                type=r.type, name=r.name, urn=r.urn, parent=r.parent,
                properties=engine_struct(r.properties, r.secret_keys))
            for r in resources]))
        return _diagnostics(response)

    def close(self) -> None:
        self.channel.close()


def _diagnostics(response: analyzer_pb2.AnalyzeResponse) -> list[Diagnostic]:
    return [Diagnostic(policy=d.policyName, level=analyzer_pb2.EnforcementLevel.Name(d.enforcementLevel),
                       message=d.message, urn=d.urn)
            for d in response.diagnostics]
