"""``scripts/status <stack> [--html FILE]``: what a running stack is doing, at a glance.

From the Docker API: each container's state and health, and its CPU and memory use (one ``stats``
sample each, ``stream=False``) against the limits it was created with. From the containers' logs:
the executors' jobs (the executor service logs one line per job, ``job <language> (<how> start):
exit <code> in <ms> ms[, timed out]…``; a failure is a non-zero exit or a timeout) and its errors,
and the egress gateway's recent decisions (one JSON object per line on its stdout, with
``decision``, ``host``, ``port``, ``status``; components/egress_proxy.py), grouped by destination.
Nothing is changed and nothing is sent to the stack's networks.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from operate.stack import RunningStack, StackContainer, docker_client, find_stack, run_command
from sandbox_model.roles import Role

#: The egress log lines read (the most recent): the window the destinations are counted over.
EGRESS_WINDOW = 2000

_JOB = re.compile(
    r"\bjob (?P<language>\S+) \((?P<start>[\w-]+) start\): exit (?P<exit>-?\d+) in (?P<ms>[\d.]+) ms"
    r"(?P<timed_out>, timed out)?"
)
#: The executor service's log format: ``<asctime> <LEVEL> <logger>: <message>``.
_LEVEL = re.compile(r"^\S+ \S+ (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<logger>[\w.]+): (?P<message>.*)$")


# --- usage against limits ----------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    cpu_cores: float | None  # CPUs in use over the sample (1.0 = one core busy)
    cpu_limit: float | None  # the container's CPU limit, in CPUs (None: none)
    memory_bytes: int | None
    memory_limit: int | None
    pids: int | None

    @property
    def cpu_percent(self) -> float | None:
        """CPU use as a share of the container's limit."""
        if self.cpu_cores is None or not self.cpu_limit:
            return None
        return 100 * self.cpu_cores / self.cpu_limit

    @property
    def memory_percent(self) -> float | None:
        if self.memory_bytes is None or not self.memory_limit:
            return None
        return 100 * self.memory_bytes / self.memory_limit


def cpu_cores(stats: Mapping[str, Any]) -> float | None:
    """CPUs in use between the two samples of one ``stats(stream=False)`` (Docker's own arithmetic)."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    try:
        used = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    online = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or ()) or 1
    return used / system * online if system > 0 and used >= 0 else None


def memory_bytes(stats: Mapping[str, Any]) -> int | None:
    """Memory in use without the reclaimable page cache (as ``docker stats`` counts it: cgroup v1 or v2)."""
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    if usage is None:
        return None
    details = memory.get("stats") or {}
    inactive = details.get("total_inactive_file", details.get("inactive_file", 0))
    return usage - inactive if inactive < usage else usage


def cpu_limit(host_config: Mapping[str, Any]) -> float | None:
    if host_config.get("NanoCpus"):
        return host_config["NanoCpus"] / 1e9
    if host_config.get("CpuQuota", 0) > 0 and host_config.get("CpuPeriod"):
        return host_config["CpuQuota"] / host_config["CpuPeriod"]
    return None


def usage(stats: Mapping[str, Any] | None, host_config: Mapping[str, Any]) -> Usage:
    stats = stats or {}
    return Usage(
        cpu_cores=cpu_cores(stats) if stats else None,
        cpu_limit=cpu_limit(host_config),
        memory_bytes=memory_bytes(stats) if stats else None,
        memory_limit=host_config.get("Memory") or None,
        pids=(stats.get("pids_stats") or {}).get("current"),
    )


# --- executors ---------------------------------------------------------------------------------


def split_timestamp(line: str) -> tuple[datetime | None, str]:
    """A ``docker logs --timestamps`` line: its RFC 3339 time (nanoseconds cut to micro) and the rest."""
    stamp, _, rest = line.partition(" ")
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$", stamp)
    if not match:
        return None, line
    fraction = (match.group(2) or ".0")[:7]
    return datetime.fromisoformat(match.group(1) + fraction).replace(tzinfo=UTC), rest


@dataclass(frozen=True)
class Job:
    time: datetime | None
    language: str
    start: str
    exit_code: int
    duration_ms: float
    timed_out: bool

    @property
    def failed(self) -> bool:
        return self.exit_code != 0 or self.timed_out

    def describe(self) -> str:
        return f"{self.language} exit {self.exit_code}" + (" (timed out)" if self.timed_out else "")


def parse_job(line: str) -> Job | None:
    """The executor service's per-job log line (images/executor/executor_service/runner.py), or None."""
    time, rest = split_timestamp(line)
    match = _JOB.search(rest)
    if match is None:
        return None
    return Job(
        time=time,
        language=match["language"],
        start=match["start"],
        exit_code=int(match["exit"]),
        duration_ms=float(match["ms"]),
        timed_out=bool(match["timed_out"]),
    )


@dataclass(frozen=True)
class ServiceError:
    time: datetime | None
    message: str


@dataclass(frozen=True)
class ExecutorJobs:
    jobs: int = 0
    failed: int = 0
    timed_out: int = 0
    last_failure: Job | None = None
    last_error: ServiceError | None = None


def executor_jobs(lines: Iterable[str]) -> ExecutorJobs:
    """Job counts and the last failure from an executor's log; the last ERROR line as its last error."""
    jobs = failed = timed_out = 0
    last_failure: Job | None = None
    last_error: ServiceError | None = None
    for line in lines:
        job = parse_job(line)
        if job is not None:
            jobs += 1
            if job.failed:
                failed += 1
                last_failure = job
            timed_out += job.timed_out
            continue
        time, rest = split_timestamp(line)
        level = _LEVEL.match(rest)
        if level and level["level"] in ("ERROR", "CRITICAL"):
            last_error = ServiceError(time, level["message"])
        elif rest.startswith("executor: "):  # a start-up refusal (the service printed it and exited)
            last_error = ServiceError(time, rest[len("executor: ") :])
    return ExecutorJobs(jobs, failed, timed_out, last_failure, last_error)


# --- egress ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    decision: str  # allowed | denied
    host: str
    port: str
    requests: int
    last_time: str
    last_status: str
    last_error: str | None

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}" if self.port not in ("", "-") else self.host


def egress_decisions(lines: Iterable[str]) -> list[dict[str, str]]:
    """The gateway's decision records (its JSON lines); squid's other output is passed over."""
    records = []
    for line in lines:
        _, rest = split_timestamp(line)
        if not rest.startswith("{"):
            continue
        try:
            record = json.loads(rest)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("decision") in ("allowed", "denied"):
            records.append(record)
    return records


def destinations(records: Sequence[Mapping[str, str]]) -> dict[str, list[Destination]]:
    """Per decision, its destinations (host:port), the most recently seen first."""
    grouped: dict[tuple[str, str, str], list[Mapping[str, str]]] = {}
    for record in records:
        grouped.setdefault((record["decision"], record.get("host", "-"), record.get("port", "-")), []).append(record)
    result: dict[str, list[Destination]] = {"allowed": [], "denied": []}
    for (decision, host, port), seen in grouped.items():
        last = seen[-1]
        error = last.get("error")
        result[decision].append(
            Destination(
                decision,
                host,
                port,
                len(seen),
                last.get("time", "-"),
                last.get("status", "-"),
                error if error not in (None, "-") else None,
            )
        )
    for listed in result.values():
        listed.sort(key=lambda d: d.last_time, reverse=True)
    return result


# --- the whole stack ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    role: str
    state: str
    health: str
    restarts: int
    usage: Usage
    #: For a container that is not running: the last line it logged (why it stopped, usually).
    last_line: str | None = None


@dataclass(frozen=True)
class EgressStatus:
    container: str
    decisions: int
    destinations: dict[str, list[Destination]]


@dataclass(frozen=True)
class StackStatus:
    stack: str
    taken: datetime
    containers: list[ContainerStatus]
    executors: dict[str, ExecutorJobs]
    #: None: the stack has no egress gateway.
    egress: EgressStatus | None


def _log_lines(container, **options) -> list[str]:
    return container.logs(timestamps=True, **options).decode("utf-8", errors="replace").splitlines()


def _container_status(client, container: StackContainer) -> ContainerStatus:
    stats = client.api.stats(container.id, stream=False) if container.running else None
    last_line = None
    if not container.running:
        tail = _log_lines(client.containers.get(container.id), tail=1)
        last_line = split_timestamp(tail[-1])[1] if tail else None
    return ContainerStatus(
        name=container.name,
        role=container.role,
        state=container.state,
        health=container.health,
        restarts=container.restarts,
        usage=usage(stats, container.attrs["HostConfig"]),
        last_line=last_line,
    )


def collect(client, stack: RunningStack) -> StackStatus:
    with ThreadPoolExecutor(max_workers=8) as pool:  # a stats sample takes a second or two: take them together
        containers = list(pool.map(lambda c: _container_status(client, c), stack.containers))
    executors = {c.name: executor_jobs(_log_lines(client.containers.get(c.id))) for c in stack.of(Role.EXECUTOR)}
    gateways = stack.of(Role.EGRESS_GATEWAY)
    egress = None
    if gateways:
        gateway = gateways[0]
        records = egress_decisions(
            _log_lines(client.containers.get(gateway.id), stdout=True, stderr=False, tail=EGRESS_WINDOW)
        )
        egress = EgressStatus(gateway.name, len(records), destinations(records))
    return StackStatus(
        stack=stack.stack, taken=datetime.now(UTC), containers=containers, executors=executors, egress=egress
    )


def main(argv: Sequence[str] | None = None) -> int:
    from operate.status_view import render_html, render_table

    parser = argparse.ArgumentParser(prog="scripts/status", description="Show what a running stack is doing.")
    parser.add_argument("stack", help="the stack's name, as for scripts/up (e.g. dev)")
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write the status as a static HTML page")
    args = parser.parse_args(argv)
    client = docker_client()
    status = collect(client, find_stack(client, args.stack))
    print(render_table(status))
    if args.html:
        args.html.write_text(render_html(status), encoding="utf-8")
        print(f"\nwrote {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
