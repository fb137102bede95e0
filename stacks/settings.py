"""The stack settings: one pydantic model, validated once, then passed down as plain objects.

Every key lives under the project namespace ``opencode-sandbox:`` in
``Pulumi.<stack>.yaml``. Unknown keys are errors at every level. Secrets are not
part of this model: they are read separately, and only as Pulumi secrets
(see :mod:`stacks.loader`).

Host paths are absolute, or start with ``~`` (the home directory of the user
running Pulumi, which must be the Docker host). Directories the stack owns
(``workspace.project_dir``, ``model.cache_dir``) are created at deploy time when
missing; inputs the user provides (``workspace.shared_dir``,
``images.extra_ca_file``) must exist.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from sandbox_model import executor_contract
from sandbox_model.destinations import EXECUTOR_MCP_NAME, MCP_SECRET_REFERENCE, Destination
from sandbox_model.engine_api import (
    OLDEST_SUPPORTED_API,
    SECCOMP_BUILTIN,
    ApiVersion,
    format_api_version,
    parse_api_version,
)
from sandbox_model.provider_forms import cpus_round_trip, provider_cpus
from sandbox_model.security.baseline import is_loopback_address
from sandbox_model.security.rules_resource import image_reference_problem

_DOMAIN_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN_PATTERN = re.compile(rf"^(\*\.)?{_DOMAIN_LABEL}(\.{_DOMAIN_LABEL})+$")
_PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
MAX_EXTRA_CA_BYTES = 64 * 1024  # build args travel in a request line; a whole CA bundle would not fit
#: The OpenCode release the workspace image carries by default, and the npm integrity of its tarball.
OPENCODE_VERSION = "1.18.34"
OPENCODE_INTEGRITY = "sha512-RTAMjCve4euxP2QKLuvRmdoW5J5DQK1DiZqt+7slfixyjAEi79QC2Df2oYKogibaAI4IEU8uzenoJeEl3k+UEw=="


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _expand(value: str) -> Path:
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        raise ValueError(f"{value!r} is not an absolute path. Fix: give an absolute path (or one starting with ~)")
    return path


def _existing_directory(path: Path) -> Path:
    if not path.is_dir():
        raise ValueError(f"{path} is not an existing directory. Fix: create it or point the setting elsewhere")
    return path


def _extra_ca_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(
            f"{path} does not exist. Fix: give a PEM file with your proxy's CA certificate(s) "
            "(scripts/extra-ca-from-host writes one from this host's trust store), or remove the setting"
        )
    size = path.stat().st_size
    if size > MAX_EXTRA_CA_BYTES:
        raise ValueError(
            f"{path} is {size} bytes. Fix: give only the extra CA certificate(s), not a whole bundle "
            f"(at most {MAX_EXTRA_CA_BYTES} bytes)"
        )
    if _PEM_CERTIFICATE not in path.read_text(errors="replace"):
        raise ValueError(f"{path} holds no PEM certificate. Fix: give a file with '{_PEM_CERTIFICATE}' blocks")
    return path


HostPath = Annotated[str, AfterValidator(_expand)]
ExistingDirectory = Annotated[str, AfterValidator(_expand), AfterValidator(_existing_directory)]
ExtraCaFile = Annotated[str, AfterValidator(_expand), AfterValidator(_extra_ca_file)]


def _pinned_image(reference: str) -> str:
    problem = image_reference_problem(reference)
    if problem:
        raise ValueError(f"{problem}. Fix: pin it by digest (name@sha256:...) or a fixed version tag")
    return reference


PinnedImage = Annotated[str, AfterValidator(_pinned_image)]

#: Debian's package-name rule (lower case, digits, + - .; two characters or more), with an optional
#: `=version`: nothing else reaches the executor image's apt-get command line.
_DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?")


def _debian_package(entry: str) -> str:
    if not _DEBIAN_PACKAGE.fullmatch(entry):
        raise ValueError(
            f"{entry!r} is not a Debian package name (optionally name=version). "
            "Fix: use the name `apt-cache show` knows, e.g. python3-pytest or nodejs"
        )
    return entry


DebianPackage = Annotated[str, AfterValidator(_debian_package)]


class UserIds(_Strict):
    """A numeric, non-root identity a container runs as."""

    uid: int
    gid: int

    @field_validator("uid", "gid")
    @classmethod
    def _not_root(cls, value: int, info) -> int:
        if value <= 0:
            raise ValueError(
                f"{info.field_name} {value} is root or invalid. Fix: use a non-root id (> 0), "
                f"e.g. your own (`id -{info.field_name[0]}`)"
            )
        return value

    @property
    def docker_user(self) -> str:
        return f"{self.uid}:{self.gid}"


class Limits(_Strict):
    memory_mb: int = Field(gt=0)
    cpus: float = Field(gt=0)
    nproc: int = Field(gt=0)

    @field_validator("cpus")
    @classmethod
    def _cpus_read_back_unchanged(cls, value: float) -> float:
        if not cpus_round_trip(value):
            raise ValueError(
                f"cpus = {value:g} is read back by pulumi-docker as {provider_cpus(value)}, so every "
                "refresh would see a change. Fix: choose a value it reads back unchanged, "
                "e.g. 0.5, 1, 1.25 or 2"
            )
        return value


class EngineSettings(_Strict):
    """The Docker Engine API version of the stack's engine (``docker version --format '{{.Server.APIVersion}}'``)."""

    api_version: str = Field(default=format_api_version(OLDEST_SUPPORTED_API), pattern=r"^\d+\.\d+$")

    @field_validator("api_version")
    @classmethod
    def _supported(cls, value: str) -> str:
        if parse_api_version(value) < OLDEST_SUPPORTED_API:
            raise ValueError(
                f"Engine API {value} is older than Docker 20.10's "
                f"({format_api_version(OLDEST_SUPPORTED_API)}). Fix: upgrade the Docker engine"
            )
        return value

    @property
    def api(self) -> ApiVersion:
        return parse_api_version(self.api_version)


class ImageSettings(_Strict):
    #: The base the project's images build FROM: a pinned upstream image (users) or a
    #: locally imported one (our CI, which reaches no registry).
    base_image: str = Field(min_length=1)
    #: Opt-in: extra CA certificates for TLS-intercepting proxies, used only while building.
    extra_ca_file: ExtraCaFile | None = None
    opencode_version: str = Field(default=OPENCODE_VERSION, pattern=r"^\d+\.\d+\.\d+$")
    opencode_integrity: str = Field(default=OPENCODE_INTEGRITY, pattern=r"^sha512-[A-Za-z0-9+/]{86}==$")


class WebSettings(_Strict):
    host_ip: str = "127.0.0.1"
    port: int = Field(default=4096, ge=1024, le=65535)

    @field_validator("host_ip")
    @classmethod
    def _loopback(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address. Fix: use 127.0.0.1") from None
        if not is_loopback_address(value):
            raise ValueError(
                f"{value} is not a loopback address, so the web UI would be reachable from the "
                "network. Fix: use 127.0.0.1 (reach it remotely through an SSH tunnel)"
            )
        return value


class TmpfsSizes(_Strict):
    home_mb: int = Field(default=256, gt=0)
    cache_mb: int = Field(default=1024, gt=0)
    tmp_mb: int = Field(default=1024, gt=0)


#: MCP server names: OpenCode names their tools ``<name>_<tool>``, and the permission rule ``<name>_*``
#: must match those and nothing else. No underscore (``a_*`` would also match ``a_b``'s tools), and
#: none whose ``<name>_`` begins a built-in tool or permission (``external_directory``,
#: ``apply_patch``, ``doom_loop``, ``list_mcp_resources``, ``read_mcp_resource``) or is the stack's own.
_MCP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
RESERVED_MCP_NAMES = (EXECUTOR_MCP_NAME, "sandbox", "external", "apply", "doom", "list", "read")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
#: Keys that would make a server run code in the workspace (OpenCode's local, stdio, servers).
_LOCAL_MCP_KEYS = ("command", "environment", "args", "cwd", "env")
LOCAL_MCP_REFUSAL = (
    "local (stdio) MCP servers would run their code inside the workspace, next to the stack's secrets, "
    "and are not supported. Fix: run the server as a remote MCP server (streamable HTTP), e.g. outside "
    "the sandbox, and declare its URL here (url: https://..., headers from mcp_secrets); or, for code "
    "that must run next to the project, use the executors (executors.packages, executors.test_command)"
)


def _mcp_header_value(value: str) -> str:
    literal = MCP_SECRET_REFERENCE.sub("", value)
    # OpenCode substitutes {env:...} and {file:...} anywhere in its config: a literal one would send
    # the workspace's own secrets (or files) to the remote.
    if "{" in literal or "}" in literal or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(
            f"{value!r} holds braces or control characters other than {{secret:<name>}} references. "
            "Fix: write secret values as {secret:<name>} (an entry of the secret mcp_secrets) and "
            "nothing else in braces"
        )
    return value


class McpServer(_Strict):
    """A remote MCP server of the user's (streamable HTTP, or SSE), reached through the egress gateway."""

    type: Literal["remote"] = "remote"
    #: http(s), host a name or an IPv4 address: its host:port is added to the egress allowlist.
    url: str
    #: Header -> value; ``{secret:<name>}`` stands for the entry <name> of the secret ``mcp_secrets``.
    headers: dict[str, Annotated[str, AfterValidator(_mcp_header_value)]] = Field(default_factory=dict, max_length=16)
    #: ``allow``: its tools (``<name>_*``) run at once; ``ask``: each call waits for your approval.
    approval: Literal["allow", "ask"] = "allow"
    enabled: bool = True
    timeout_ms: int | None = Field(default=None, gt=0, le=600_000)

    @model_validator(mode="before")
    @classmethod
    def _remote_only(cls, value):
        if isinstance(value, dict) and (value.get("type") == "local" or any(key in value for key in _LOCAL_MCP_KEYS)):
            raise ValueError(LOCAL_MCP_REFUSAL)
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError(
                f"{value!r} holds braces (OpenCode would substitute them). Fix: give the URL as is; "
                "put credentials in headers, from mcp_secrets"
            )
        Destination.from_url(value)  # the egress gateway must be able to admit exactly this endpoint
        from urllib.parse import urlsplit

        if urlsplit(value).username or urlsplit(value).password:
            raise ValueError(
                f"{value!r} carries credentials. Fix: remove them from the URL and send them in "
                "a header from mcp_secrets, e.g. Authorization: 'Bearer {secret:<name>}'"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not an HTTP header name. Fix: use e.g. Authorization or X-Api-Key")
        return headers

    @property
    def secret_names(self) -> tuple[str, ...]:
        return tuple(sorted({n for value in self.headers.values() for n in MCP_SECRET_REFERENCE.findall(value)}))


def _mcp_servers(servers: dict) -> dict:
    for name in servers:
        if not _MCP_NAME.match(name):
            raise ValueError(
                f"{name!r} is not an MCP server name. Fix: use lower-case letters, digits and '-' "
                "(no '_': OpenCode names its tools <name>_<tool>), at most 31, starting with a letter"
            )
        if name in RESERVED_MCP_NAMES:
            raise ValueError(
                f"{name!r} is reserved (the stack's own executor server, or a prefix of OpenCode's "
                f"built-in tools: {', '.join(RESERVED_MCP_NAMES)}). Fix: choose another name"
            )
    return servers


class WorkspaceSettings(_Strict):
    #: Defaults to the user running Pulumi, so project files keep their owner.
    user: UserIds = Field(default=None, validate_default=True)
    project_dir: HostPath
    shared_dir: ExistingDirectory | None = None
    #: Keep OpenCode's sessions in <project_dir>/.opencode-sandbox (git-ignored) instead of tmpfs.
    persist_sessions: bool = True
    limits: Limits = Limits(memory_mb=4096, cpus=2.0, nproc=8192)
    tmpfs: TmpfsSizes = TmpfsSizes()
    web: WebSettings = WebSettings()
    #: Whether each executor run (an ``executor_*`` tool call) waits for the user's approval
    #: in the web UI (``ask``) or runs at once (``allow``). ``opencode run`` rejects every ``ask``.
    executor_approval: Literal["allow", "ask"] = "allow"
    #: The user's remote MCP servers, by name (their tools are ``<name>_*``); see :class:`McpServer`.
    mcp_servers: Annotated[dict[str, McpServer], AfterValidator(_mcp_servers)] = Field(
        default_factory=dict, max_length=16
    )

    @field_validator("executor_approval", mode="before")
    @classmethod
    def _approval(cls, value):
        if value not in ("allow", "ask"):
            raise ValueError(
                f"{value!r} is not an approval mode. Fix: use 'allow' (executor runs start at once) "
                "or 'ask' (each run waits for your approval in the web UI)"
            )
        return value

    @field_validator("user", mode="before")
    @classmethod
    def _default_to_invoking_user(cls, value):
        return invoking_user() if value is None else value

    @model_validator(mode="after")
    def _shared_is_not_project(self):
        if self.shared_dir is not None and Path(self.shared_dir) == Path(self.project_dir):
            raise ValueError(
                f"shared_dir = {self.shared_dir}: it is the project_dir, which is already mounted "
                "read-write. Fix: point shared_dir elsewhere or remove it"
            )
        return self


class ExecutorSettings(_Strict):
    count: int = Field(default=2, ge=1, le=16)
    #: Executor i runs as uid_base + i: the nproc ulimit counts processes per UID, so
    #: separate UIDs keep one executor's fork bomb from starving another.
    uid_base: int = Field(default=20000, gt=0, lt=2**31 - 64)
    gid: int = Field(default=20000, gt=0)
    limits: Limits = Limits(memory_mb=512, cpus=1.0, nproc=256)
    tmp_mb: int = Field(default=64, gt=0)
    # What the executor service accepts (sandbox_model.executor_contract, the service's copy): a value
    # it would refuse at start is refused here, before anything is deployed.
    default_timeout_s: float = Field(default=executor_contract.DEFAULT_TIMEOUT_S, gt=0)
    max_timeout_s: float = Field(
        default=executor_contract.MAX_TIMEOUT_S, gt=0, le=executor_contract.MAX_TIMEOUT_S_CEILING
    )
    max_output_bytes: int = Field(
        default=executor_contract.MAX_OUTPUT_BYTES, gt=0, le=executor_contract.MAX_OUTPUT_BYTES_CEILING
    )
    max_source_bytes: int = Field(
        default=executor_contract.MAX_SOURCE_BYTES, gt=0, le=executor_contract.MAX_SOURCE_BYTES_CEILING
    )
    #: Debian packages (bookworm) installed into the executor image for jobs, e.g. python3-pytest,
    #: nodejs, npm, make, git: the reviewed way a toolchain reaches the sandbox (nothing is installed
    #: at run time; jobs have no network). `name` or `name=version`.
    packages: list[DebianPackage] = Field(default_factory=list, max_length=64)
    #: What the executor tool run_tests runs in the project (a POSIX sh command line).
    test_command: str = Field(
        default=executor_contract.TEST_COMMAND, min_length=1, max_length=executor_contract.TEST_COMMAND_MAX_LENGTH
    )

    @field_validator("packages")
    @classmethod
    def _unique_packages(cls, packages: list[str]) -> list[str]:
        seen = [name.split("=")[0] for name in packages]
        twice = sorted({name for name in seen if seen.count(name) > 1})
        if twice:
            raise ValueError(f"packages lists {', '.join(twice)} more than once. Fix: keep one entry each")
        return packages

    @model_validator(mode="after")
    def _consistent(self):
        if self.default_timeout_s > self.max_timeout_s:
            raise ValueError(
                f"default_timeout_s {self.default_timeout_s} exceeds max_timeout_s "
                f"{self.max_timeout_s}. Fix: lower the default or raise the maximum"
            )
        if self.limits.nproc < executor_contract.MIN_CONTAINER_NPROC:
            raise ValueError(
                f"limits.nproc = {self.limits.nproc}: that leaves the executor service no room "
                f"beside a job. Fix: allow at least {executor_contract.MIN_CONTAINER_NPROC} processes"
            )
        return self

    @property
    def job_nproc(self) -> int:
        """Processes one job may have (``EXECUTOR_JOB_NPROC``): half the container's, and always
        ``SERVICE_TASK_HEADROOM`` (16) fewer, so the service keeps headroom (sandbox_model.executor_contract)."""
        return executor_contract.job_nproc(self.limits.nproc)


class GatewaySettings(_Strict):
    #: The egress gateway runs as uid_base, the web ingress as uid_base + 1, the model-API ingress as
    #: uid_base + 2, the model gateway as uid_base + 3, the conductor as uid_base + 4 and its ingress
    #: gateway as uid_base + 5: one UID each, so that no gateway can use up another's process budget.
    uid_base: int = Field(default=10001, gt=0, lt=2**31 - 8)
    gid: int = Field(default=10001, gt=0)
    limits: Limits = Limits(memory_mb=128, cpus=0.5, nproc=128)

    @property
    def egress_user(self) -> UserIds:
        return UserIds(uid=self.uid_base, gid=self.gid)

    @property
    def web_ingress_user(self) -> UserIds:
        return UserIds(uid=self.uid_base + 1, gid=self.gid)

    @property
    def model_api_ingress_user(self) -> UserIds:
        return UserIds(uid=self.uid_base + 2, gid=self.gid)

    @property
    def model_gateway_user(self) -> UserIds:
        return UserIds(uid=self.uid_base + 3, gid=self.gid)

    @property
    def conductor_user(self) -> UserIds:
        return UserIds(uid=self.uid_base + 4, gid=self.gid)

    @property
    def conductor_ingress_user(self) -> UserIds:
        return UserIds(uid=self.uid_base + 5, gid=self.gid)

    @property
    def uids(self) -> range:
        return range(self.uid_base, self.uid_base + 6)


class VllmModel(_Strict):
    backend: Literal["vllm"]
    image: PinnedImage
    model: str = "Qwen/Qwen3-4B-Instruct-2507"
    served_model_name: str = Field(default="qwen3-4b-instruct-2507", pattern=r"^[A-Za-z0-9._-]+$")
    max_model_len: int = Field(default=32768, gt=0)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    #: "all", or the device ids/UUIDs to give vLLM.
    gpus: Literal["all"] | list[str] = "all"
    shm_size_mb: int = Field(default=2048, gt=0)
    #: Hugging Face cache with the weights (fetched beforehand: the model server has no route out).
    cache_dir: HostPath
    #: Publish the OpenAI API on 127.0.0.1:<host_port> too (through an ingress gateway).
    host_port: int | None = Field(default=None, ge=1024, le=65535)
    #: Defaults to the workspace user, who owns the cache directory.
    user: UserIds | None = None
    limits: Limits = Limits(memory_mb=24576, cpus=4.0, nproc=16384)
    #: "builtin" = Docker's own default profile (Docker >= 23), "service" = the project's profile.
    seccomp: Literal["builtin", "service"] = "builtin"
    extra_args: list[str] = []


class ExternalModel(_Strict):
    backend: Literal["external"]
    #: An OpenAI-compatible endpoint, e.g. http://host.docker.internal:1234/v1 (LM Studio on the host).
    base_url: str
    model: str = Field(min_length=1)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        Destination.from_url(value)  # the egress gateway must be able to admit exactly this endpoint
        return value.rstrip("/")


class TestDoubleModel(_Strict):
    """A scripted OpenAI-compatible server standing in for vLLM in the ci stack (no GPU)."""

    backend: Literal["test-double"]
    served_model_name: str = Field(default="qwen3-4b-instruct-2507", pattern=r"^[A-Za-z0-9._-]+$")
    user: UserIds = UserIds(uid=10100, gid=10100)
    limits: Limits = Limits(memory_mb=128, cpus=0.5, nproc=64)
    host_port: int | None = Field(default=None, ge=1024, le=65535)


ModelSettings = Annotated[VllmModel | ExternalModel | TestDoubleModel, Field(discriminator="backend")]


def _domain_pattern(value: str) -> str:
    lowered = value.strip().lower()
    # A numeric last label is an IP address, never a domain (no top-level domain is numeric).
    if not _DOMAIN_PATTERN.match(lowered) or lowered.rsplit(".", 1)[-1].isdigit():
        raise ValueError(
            f"{value!r} is not a domain name or '*.domain'. Fix: give a domain name such as "
            "'pypi.org' or '*.pythonhosted.org' (no scheme, port or path; IP addresses are not allowed)"
        )
    return lowered


DomainPattern = Annotated[str, AfterValidator(_domain_pattern)]


class EgressSettings(_Strict):
    """The workspace's route out: none, or an allowlist enforced by the egress gateway.

    Executors never get a route out, whatever this says.
    """

    allow: list[DomainPattern] = []
    limits: Limits = Limits(memory_mb=256, cpus=0.5, nproc=256)


class ConductorSettings(_Strict):
    """The conductor mode: an MCP endpoint on 127.0.0.1:<host_port> through which an outside agent
    (Claude Code, Codex, any MCP client) delegates tasks to the workspace's agent (components.conductor)."""

    enabled: bool = False
    host_port: int = Field(default=4097, ge=1024, le=65535)
    #: How long delegate_task waits for the agent's answer.
    task_timeout_s: float = Field(default=1800, gt=0)
    limits: Limits = Limits(memory_mb=256, cpus=0.5, nproc=128)


class TaskSettings(_Strict):
    """Limits of the autonomous task mode (``scripts/task``, operate/task.py): read by that host-side
    command from this stack's file, not by the program, which declares nothing from them."""

    #: Wall-clock seconds a task may run before it is stopped.
    timeout_s: float = Field(default=1800, gt=0)
    #: Model steps (OpenCode's ``step_start`` events: one model call each) a task may take.
    max_steps: int = Field(default=100, gt=0)


class Settings(_Strict):
    stack: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    images: ImageSettings
    workspace: WorkspaceSettings
    model: ModelSettings
    executors: ExecutorSettings = ExecutorSettings()
    gateways: GatewaySettings = GatewaySettings()
    egress: EgressSettings = EgressSettings()
    engine: EngineSettings = EngineSettings()
    task: TaskSettings = TaskSettings()
    conductor: ConductorSettings = ConductorSettings()

    @field_validator("egress", mode="before")
    @classmethod
    def _egress_none(cls, value):
        # `egress: none` is the readable way to say "no route out".
        return {"allow": []} if value in ("none", None) else value

    @model_validator(mode="after")
    def _engine_runs_the_model(self):
        if (
            isinstance(self.model, VllmModel)
            and self.model.seccomp == "builtin"
            and not SECCOMP_BUILTIN.supported_by(self.engine.api)
        ):
            raise ValueError(
                f"model.seccomp = builtin needs Docker {SECCOMP_BUILTIN.docker_release}+ (Engine API "
                f"{format_api_version(SECCOMP_BUILTIN.min_api)}), but engine.api_version = {self.engine.api_version}. "
                "Fix: set engine.api_version to your engine's (docker version --format '{{.Server.APIVersion}}') "
                "or model.seccomp: service"
            )
        return self

    @model_validator(mode="after")
    def _conductor_port_free(self):
        ports = {
            "workspace.web.port": self.workspace.web.port,
            "model.host_port": getattr(self.model, "host_port", None),
        }
        for key, port in ports.items():
            if self.conductor.enabled and port == self.conductor.host_port:
                raise ValueError(
                    f"conductor.host_port = {self.conductor.host_port}: {key} publishes that port "
                    "already. Fix: choose another conductor.host_port"
                )
        return self

    @model_validator(mode="after")
    def _distinct_identities(self):
        # Process limits (nproc) are counted per UID across the host: executors and gateways must not
        # share a UID with anyone (the model server may run as the workspace user, who owns its cache).
        executor_uids = range(self.executors.uid_base, self.executors.uid_base + self.executors.count)
        others = [("workspace.user.uid", self.workspace.user.uid)]
        if self.model_user is not None:
            others.append(("model.user.uid", self.model_user.uid))
        for key, uid in [*others, *((f"gateways.uid_base + {i}", u) for i, u in enumerate(self.gateways.uids))]:
            if uid in executor_uids:
                raise ValueError(
                    f"executors.uid_base = {self.executors.uid_base}: with count = "
                    f"{self.executors.count} the executors' UIDs include {key} = {uid}. Fix: move "
                    "executors.uid_base so no other role shares an executor's UID"
                )
        for key, uid in others:
            if uid in self.gateways.uids:
                raise ValueError(
                    f"gateways.uid_base = {self.gateways.uid_base}: the gateways' UIDs "
                    f"({self.gateways.uids.start}-{self.gateways.uids.stop - 1}) include {key} = {uid}. "
                    "Fix: move gateways.uid_base"
                )
        return self

    @property
    def model_user(self) -> UserIds | None:
        if isinstance(self.model, VllmModel):
            return self.model.user or self.workspace.user
        if isinstance(self.model, TestDoubleModel):
            return self.model.user
        return None


def invoking_user() -> UserIds:
    """The user running Pulumi, as the default workspace identity."""
    uid, gid = os.getuid(), os.getgid()
    if uid == 0 or gid == 0:
        raise ValueError(
            "not set, and Pulumi runs as root so it cannot default to the invoking user. Fix: set "
            "the uid/gid that should own the project files: pulumi config set --path "
            "'opencode-sandbox:workspace.user.uid' 1000 (and the same for .gid)"
        )
    return UserIds(uid=uid, gid=gid)
