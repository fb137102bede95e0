#!/usr/bin/env python3
"""Benchmarks: the executor against a bare interpreter and against one `docker run` per job, and the stack.

    python bench/run.py [--json] [--quick] [--no-variants] [--executor-image LABEL=IMAGE]...

Deploys the committed ``ci`` stack's settings with the Pulumi CLI (``pulumi up`` on a copy of the
project, harness/pulumi_cli.py) under the stack name ``bench``, measures, and destroys it again,
also on failure or Ctrl-C (images stay: they are the build cache). Needs a Docker engine, the base
image (scripts/make-base-image), the Pulumi toolchain (scripts/pulumi-toolchain, its bin directory in
OPENCODE_SANDBOX_PULUMI_BIN, or a Pulumi install on PATH) and, as the ci stack does,
~/.cache/opencode-sandbox/extra-ca.pem (scripts/extra-ca-from-host). Progress goes to stderr; stdout
gets a table, or with ``--json``
one JSON object. ``--quick`` is a smoke run with small samples: its figures mean nothing.
The stack's executors start Python jobs as the stack configures them (EXECUTOR_PRESTART=fork by default);
copies of its first executor with EXECUTOR_PRESTART=python and =none (``--no-variants``: not), and with
any ``--executor-image`` build, are measured in the same run, two of each beside the stack on its network,
in rounds interleaved with the stack's own executors.
Nothing here asserts a time: the exit status is non-zero only when a measurement could not be
taken. What each figure measures is in the README's "Performance" section and bench/measure.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import measure
from bench.measure import BenchError, summary
from harness import program
from harness.pulumi_cli import PulumiError, PulumiWorkspace, toolchain_problem
from harness.stack_cleanup import docker_client, remove_stack
from harness.workflows import pulumi_args
from sandbox_model.naming import LABEL_STACK

#: The stack this deploys: the committed ci stack's settings under a name of its own (see below).
BENCH_STACK = "bench"
SETTINGS_FROM = "ci"
#: The executors' UIDs: their own range, since RLIMIT_NPROC counts per UID across the host.
BENCH_EXECUTOR_UID_BASE = 20100
CONCURRENCY = (1, 4, 16)
#: Executors measured beside the stack's own (EXECUTOR_PRESTART=fork, the default), in the same run: copies of
#: its first executor (bench/measure.py variant_plan), two of each, with one setting changed; --executor-image
#: adds copies running another build. Their UIDs follow the stack's executors'.
SETTING_VARIANTS = (("python", {"EXECUTOR_PRESTART": "python"}), ("none", {"EXECUTOR_PRESTART": "none"}))
#: The stack's own executors in the variants' table.
REFERENCE = "stack"
VARIANT_UID_BASE = BENCH_EXECUTOR_UID_BASE + 16
VARIANT_CONCURRENCY = 4


@dataclass(frozen=True)
class Samples:
    latency_runs: int
    latency_warmup: int
    floor_runs: int
    floor_warmup: int
    docker_runs: int
    docker_warmup: int
    throughput_jobs: int
    containment_rounds: int
    variant_rounds: int
    mocks_passes: int
    policy_pack_starts: int
    policy_warm_repeats: int


FULL = Samples(
    latency_runs=500,
    latency_warmup=20,
    floor_runs=300,
    floor_warmup=10,
    docker_runs=30,
    docker_warmup=2,
    throughput_jobs=400,
    containment_rounds=9,
    variant_rounds=5,
    mocks_passes=5,
    policy_pack_starts=5,
    policy_warm_repeats=20,
)
QUICK = Samples(
    latency_runs=30,
    latency_warmup=3,
    floor_runs=20,
    floor_warmup=2,
    docker_runs=3,
    docker_warmup=1,
    throughput_jobs=24,
    containment_rounds=1,
    variant_rounds=1,
    mocks_passes=2,
    policy_pack_starts=1,
    policy_warm_repeats=2,
)

#: (aim, figure, comparison, target): reported as met or missed, never asserted.
AIMS = (
    ("executor p50 <= 0.5x the interpreter floor", "executor_vs_interpreter", "<=", 0.5),
    (">= 40x faster than docker run per job", "speedup_vs_docker_run", ">=", 40),
    (">= 400 jobs/s at concurrency 4", "throughput_jobs_per_s_c4", ">=", 400),
    ("stack up < 15 s", "stack_up_s", "<", 15),
    ("policy evaluation < 1 s", "policy_eval_ms", "<", 1000),
)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- the stack --------------------------------------------------------------------------------------


def _free_loopback_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def bench_overrides(project_dir: Path) -> dict[str, Any]:
    """The ci settings with what a running ci stack holds moved aside: the project directory, the
    published ports (to free ones) and the executors' UIDs (to their own range)."""
    ci = {key.partition(":")[2]: value for key, value in program.stack_config(SETTINGS_FROM).items()}
    workspace, model = json.loads(ci["workspace"]), json.loads(ci["model"])
    executors = json.loads(ci.get("executors", "{}"))
    conductor = json.loads(ci.get("conductor", "{}"))
    web_port, model_port, conductor_port = _free_loopback_ports(3)
    workspace["project_dir"] = str(project_dir)
    workspace.setdefault("web", {})["port"] = web_port
    if "host_port" in model:
        model["host_port"] = model_port
    executors["uid_base"] = BENCH_EXECUTOR_UID_BASE
    overrides = {"workspace": workspace, "model": model, "executors": executors}
    if conductor.get("enabled"):
        overrides["conductor"] = {**conductor, "host_port": conductor_port}
    return overrides


def prepare_project_dir(project: Path, user: dict[str, int] | None) -> None:
    """The benchmark's (empty) project, as a developer's must be: the workspace's user owns it, and the
    executors, which mount it read-only under UIDs of their own, can read it (o+rX). The stack would create
    a missing one 0755."""
    project.mkdir(mode=0o755)
    project.chmod(0o755)
    if os.geteuid() == 0 and user:
        os.chown(project, user["uid"], user["gid"])


def image_sizes(client, stack: str) -> dict[str, float]:
    """Size in MB (10^6 B) of each image the stack built."""
    sizes = {}
    for image in client.images.list(filters={"label": f"{LABEL_STACK}={stack}"}):
        for tag in image.tags:
            sizes[tag.split("/", 1)[-1].split(":", 1)[0]] = image.attrs["Size"] / 1e6
    return sizes


def flat_config(overrides: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as the `pulumi config set --path` keys and values they are (lists item by item)."""
    flat = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            flat.update(flat_config({f"{key}[{index}]": item for index, item in enumerate(value)}, prefix))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


@dataclass(frozen=True)
class ExecutorPool:
    """Where the benchmark's executor client runs and what it calls (Docker container/host names)."""

    workspace: str
    executors: tuple[str, ...]

    def request(self, mode: str, targets: tuple[str, ...] | None = None, **numbers: int) -> dict[str, Any]:
        from components.opencode_config import EXECUTOR_TOKEN_ENV
        from sandbox_model.executor_contract import PORT as EXECUTOR_PORT

        return {
            "mode": mode,
            "targets": list(targets or self.executors),
            "port": EXECUTOR_PORT,
            "token_env": EXECUTOR_TOKEN_ENV,
            **numbers,
        }


def executor_pool(outputs: dict[str, Any]) -> ExecutorPool:
    containers = outputs["containers"]
    if not containers.get("workspace") or not containers.get("executors"):
        raise BenchError(f"the {SETTINGS_FROM} stack's outputs name no workspace or no executor: {containers}")
    return ExecutorPool(containers["workspace"], tuple(sorted(containers["executors"])))


# --- the run ----------------------------------------------------------------------------------------


def _r(value: float, digits: int = 2) -> float:
    return round(value, digits)


@dataclass(frozen=True)
class Variant:
    label: str
    environment: dict[str, str]
    image: str | None = None


def run(samples: Samples, client, scratch: Path, variants: tuple[Variant, ...] = ()) -> dict[str, Any]:
    """Every measurement; ``scratch`` (empty, reachable by the roles' users) holds what the program creates."""
    figures: dict[str, Any] = {}
    home = scratch / "home"
    pulumi_cli = PulumiWorkspace(scratch / "pulumi", home)

    log(f"program under mocks: {samples.mocks_passes} pass(es) over {', '.join(program.STACKS)}")
    passes, declared = measure.mocks_all_stacks(home, samples.mocks_passes)
    figures["mocks_all_stacks_s"] = _r(statistics.median(passes[1:] or passes), 3)
    figures["mocks_all_stacks_first_s"] = _r(passes[0], 3)
    figures["mocks_passes"] = len(passes)

    largest = max(declared.values(), key=lambda stack: len(stack.resources))
    log(f"policy pack: every resource of the largest stack ({largest.stack}, {len(largest.resources)} resources)")
    policy = measure.policy_evaluation(largest, samples.policy_pack_starts, samples.policy_warm_repeats)
    figures["policy_eval_ms"] = _r(statistics.median(policy["first_ms"]))
    figures["policy_eval_warm_ms"] = _r(statistics.median(policy["warm_ms"]))
    figures["policy_pack_starts"] = len(policy["first_ms"])
    figures["policy_stack"], figures["policy_resources"] = largest.stack, policy["resources"]
    figures["policy_diagnostics"] = policy["diagnostics"]

    # The ci stack's settings under a name of its own: container, network and image names and labels
    # follow the stack's name, so the benchmark never touches a ci stack that a test session or a
    # developer has running.
    overrides = bench_overrides(scratch / "project")
    prepare_project_dir(scratch / "project", overrides["workspace"].get("user"))
    pulumi_cli.init_stack(BENCH_STACK, settings_from=SETTINGS_FROM, set_config=flat_config(overrides))
    up = False
    try:
        log(
            f"stack up: `pulumi up` of the {SETTINGS_FROM} stack's settings as stack {BENCH_STACK!r}, "
            "until every container is healthy (images: BuildKit's cache, as after any earlier build)"
        )
        started = time.perf_counter()
        up = True
        pulumi_cli.run("up", "--yes", "--stack", BENCH_STACK, "--skip-preview")
        figures["stack_up_s"] = _r(time.perf_counter() - started)
        started = time.perf_counter()
        pulumi_cli.run("up", "--yes", "--stack", BENCH_STACK, "--skip-preview")
        figures["stack_noop_up_s"] = _r(time.perf_counter() - started)
        started = time.perf_counter()
        pulumi_cli.run(*pulumi_args("drift.yml"), "--stack", BENCH_STACK)
        figures["stack_refresh_preview_s"] = _r(time.perf_counter() - started)
        figures["image_sizes_mb"] = {name: _r(size, 1) for name, size in image_sizes(client, BENCH_STACK).items()}
        figures.update(_executor_figures(samples, client, executor_pool(pulumi_cli.outputs(BENCH_STACK)), variants))
    finally:
        if up:
            started = time.perf_counter()
            pulumi_cli.run("destroy", "--yes", "--stack", BENCH_STACK, "--skip-preview")
            figures["stack_down_s"] = _r(time.perf_counter() - started)
    return figures


def _executor_figures(samples: Samples, client, pool: ExecutorPool, variants: tuple[Variant, ...]) -> dict[str, Any]:
    from sandbox_model.destinations import SHARED_ALIAS

    figures: dict[str, Any] = {}
    first = pool.executors[0]

    log(f"interpreter floor: {samples.floor_runs} x python3 -c 'print(1)' inside {first}")
    floor = summary(measure.interpreter_floor(client, first, samples.floor_runs, samples.floor_warmup))
    figures.update(
        interpreter_p50_ms=_r(floor["p50"]), interpreter_p95_ms=_r(floor["p95"]), interpreter_runs=floor["n"]
    )

    log(
        f"containment costs: job-launch's seccomp filter, a forked job's nested Landlock domain, job-launch "
        f"itself ({samples.containment_rounds} rounds inside {first})"
    )
    costs = measure.containment_costs(client, first, samples.containment_rounds)
    figures.update(
        filter_ns_per_syscall=_r(costs["filter_ns_per_syscall"], 1),
        syscall_ns=_r(costs["syscall_ns"], 1),
        nested_domain_us=_r(costs["nested_domain_us"], 1),
        launcher_us=_r(costs["launcher_us"]),
    )

    log(f"executor API: {samples.latency_runs} sequential POST /v1/run of print(1), {pool.workspace} -> {first}")
    sequential = measure.workspace_client(
        client,
        pool.workspace,
        pool.request("latency", (first,), runs=samples.latency_runs, warmup=samples.latency_warmup),
    )
    latency = summary(sequential["run"])
    figures.update(
        executor_p50_ms=_r(latency["p50"]),
        executor_p95_ms=_r(latency["p95"]),
        executor_p99_ms=_r(latency["p99"]),
        executor_runs=latency["n"],
        executor_job_p50_ms=_r(summary(sequential["job"])["p50"]),
        executor_health_p50_ms=_r(summary(sequential["health"])["p50"]),
    )
    figures["executor_vs_interpreter"] = _r(latency["p50"] / floor["p50"], 3)

    spread = f"round-robin over the {len(pool.executors)} executors by container name, from the workspace"
    log(
        f"throughput: {samples.throughput_jobs} jobs at concurrency {', '.join(map(str, CONCURRENCY))}, {spread}; "
        f"then at 4 through the shared alias {SHARED_ALIAS!r}"
    )
    figures["throughput_jobs"], figures["throughput_spread"] = samples.throughput_jobs, spread
    figures["throughput_latency_p50_ms"] = {}
    runs = [(f"c{c}", c, None) for c in CONCURRENCY] + [("c4_alias", 4, (SHARED_ALIAS,))]
    for label, concurrency, targets in runs:
        result = measure.workspace_client(
            client,
            pool.workspace,
            pool.request("throughput", targets, jobs=samples.throughput_jobs, concurrency=concurrency),
        )
        figures[f"throughput_jobs_per_s_{label}"] = _r(samples.throughput_jobs / result["elapsed_s"], 1)
        figures["throughput_latency_p50_ms"][label] = _r(summary(result["latencies_ms"])["p50"])

    executor = client.api.inspect_container(first)
    log(
        f"docker run baseline: {samples.docker_runs} x (docker run --rm, and the same through the Engine API), "
        "alternating"
    )
    cli, api = [], []
    with tempfile.TemporaryDirectory(prefix="opencode-sandbox-bench-") as scratch:
        seccomp_file = Path(scratch) / "executor-seccomp.json"
        for index in range(samples.docker_warmup + samples.docker_runs):
            name = f"{BENCH_STACK}-oneshot-{os.getpid()}-{index}"
            cli_ms = measure.docker_run_cli(measure.oneshot_plan(executor, f"{name}-cli"), seccomp_file)
            api_ms = measure.docker_run_api(client, measure.oneshot_plan(executor, f"{name}-api"))
            if index >= samples.docker_warmup:
                cli.append(cli_ms)
                api.append(api_ms)
    docker_cli, docker_api = summary(cli), summary(api)
    figures.update(
        docker_run_p50_ms=_r(docker_cli["p50"]),
        docker_run_p95_ms=_r(docker_cli["p95"]),
        docker_api_run_p50_ms=_r(docker_api["p50"]),
        docker_runs=docker_cli["n"],
    )
    figures["speedup_vs_docker_run"] = _r(docker_cli["p50"] / latency["p50"], 2)
    figures["speedup_vs_docker_api_run"] = _r(docker_api["p50"] / latency["p50"], 2)

    if variants:
        log(
            f"variants: two copies of {first} each ({', '.join(v.label for v in variants)}), measured with the "
            f"stack's own executors (label {REFERENCE!r}) in {samples.variant_rounds} interleaved rounds: "
            f"{samples.latency_runs} sequential jobs and {samples.throughput_jobs} at concurrency "
            f"{VARIANT_CONCURRENCY} each in all"
        )
        figures["variants"] = _variant_figures(samples, client, pool, executor, variants)
        for entry in figures["variants"].values():
            entry["vs_interpreter"] = _r(entry["p50_ms"] / floor["p50"], 3)
    return figures


def _variant_figures(
    samples: Samples, client, pool: ExecutorPool, executor: dict[str, Any], variants: tuple[Variant, ...]
) -> dict[str, dict[str, Any]]:
    """Every variant's pair started at once and measured round by round with the stack's executors, so that
    a change of the machine's load during the run weighs on all of them alike."""
    pairs = {REFERENCE: pool.executors[:2]}
    for variant in variants:
        pairs[variant.label] = tuple(f"{BENCH_STACK}-variant-{variant.label}-{n}" for n in range(2))
    runs, jobs = samples.latency_runs // samples.variant_rounds, samples.throughput_jobs // samples.variant_rounds
    collected: dict[str, dict[str, Any]] = {label: {"run": [], "job": [], "elapsed_s": 0.0} for label in pairs}
    try:
        for index, variant in enumerate(variants):
            for number, name in enumerate(pairs[variant.label]):
                uid = VARIANT_UID_BASE + 2 * index + number
                measure.start_variant(
                    client, measure.variant_plan(executor, name, uid, variant.environment, variant.image)
                )
        everything = tuple(name for names in pairs.values() for name in names)
        measure.workspace_client(client, pool.workspace, pool.request("ready", everything, timeout_s=60))
        for _round in range(samples.variant_rounds):
            for label, names in pairs.items():
                sequential = measure.workspace_client(
                    client, pool.workspace, pool.request("latency", names[:1], runs=runs, warmup=samples.latency_warmup)
                )
                parallel = measure.workspace_client(
                    client,
                    pool.workspace,
                    pool.request("throughput", names, jobs=jobs, concurrency=VARIANT_CONCURRENCY),
                )
                collected[label]["run"] += sequential["run"]
                collected[label]["job"] += sequential["job"]
                collected[label]["elapsed_s"] += parallel["elapsed_s"]
    finally:
        for label, names in pairs.items():
            for name in names if label != REFERENCE else ():
                with contextlib.suppress(Exception):
                    client.api.remove_container(name, force=True)
    figures = {}
    for label, found in collected.items():
        latency, job = summary(found["run"]), summary(found["job"])
        throughput = jobs * samples.variant_rounds / found["elapsed_s"]
        figures[label] = {
            "p50_ms": _r(latency["p50"]),
            "p95_ms": _r(latency["p95"]),
            "p99_ms": _r(latency["p99"]),
            "job_p50_ms": _r(job["p50"]),
            "job_p95_ms": _r(job["p95"]),
            f"jobs_per_s_c{VARIANT_CONCURRENCY}": _r(throughput, 1),
        }
    return figures


def aims(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    compare = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b}
    return {
        aim: {
            "figure": key,
            "value": figures.get(key),
            "target": f"{op} {target:g}",
            "met": key in figures and compare[op](figures[key], target),
        }
        for aim, key, op, target in AIMS
    }


# --- the report ------------------------------------------------------------------------------------

ROWS = (
    ("executor_p50_ms", "ms", "POST /v1/run print(1), workspace -> result, sequential, one connection"),
    ("executor_p95_ms", "ms", ""),
    ("executor_p99_ms", "ms", ""),
    ("executor_job_p50_ms", "ms", "the same jobs: the service's own duration_ms (spawn to exit)"),
    ("executor_health_p50_ms", "ms", "GET /health on the same connection: the HTTP path without a job"),
    ("interpreter_p50_ms", "ms", "python3 -c 'print(1)' fork/exec/wait timed inside an executor"),
    ("executor_vs_interpreter", "x", "executor p50 / interpreter p50"),
    ("filter_ns_per_syscall", "ns", "job-launch's seccomp filter per call it inspects (getrlimit loop, +/- it)"),
    ("syscall_ns", "ns", "one turn of that loop under the container's profile alone"),
    ("nested_domain_us", "us", "a forked job's nested scoped Landlock domain: create + restrict + close"),
    ("launcher_us", "us", "job-launch per cold start: job-launch ... -- /bin/true minus /bin/true"),
    ("docker_run_p50_ms", "ms", "hardened docker run --rm per job (CLI), network none"),
    ("docker_api_run_p50_ms", "ms", "the same through the Engine API (create/start/wait/logs/remove)"),
    ("speedup_vs_docker_run", "x", "docker run p50 / executor p50"),
    ("speedup_vs_docker_api_run", "x", "Engine API run p50 / executor p50"),
    ("throughput_jobs_per_s_c1", "jobs/s", "fixed job count, round-robin over the executors"),
    ("throughput_jobs_per_s_c4", "jobs/s", ""),
    ("throughput_jobs_per_s_c16", "jobs/s", ""),
    ("throughput_jobs_per_s_c4_alias", "jobs/s", "concurrency 4 through the alias `executor` (Docker DNS)"),
    ("stack_up_s", "s", "pulumi up: program, engine, cached image builds, containers until healthy"),
    ("stack_noop_up_s", "s", "a second pulumi up: nothing to change"),
    ("stack_refresh_preview_s", "s", "pulumi preview --refresh --expect-no-changes (the drift check)"),
    ("stack_down_s", "s", "pulumi destroy: containers, networks, volumes"),
    ("policy_eval_ms", "ms", "Analyze every resource + AnalyzeStack, first call after the pack started"),
    ("policy_eval_warm_ms", "ms", "the same, repeated on a running pack"),
    ("mocks_all_stacks_s", "s", "run_program for every committed stack (warm passes)"),
    ("mocks_all_stacks_first_s", "s", "the first pass (imports the program's modules)"),
)


def table(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        (
            f"opencode-sandbox benchmarks ({result['mode']}; {machine['cpus']} CPUs, Docker "
            f"{machine['docker_engine']}, load average {machine['load_average_start']} "
            f"-> {machine['load_average_end']})"
        )
    ]
    if result["mode"] == "quick":
        lines.append("quick smoke run: samples are tiny, the figures mean nothing")
    width = max(len(key) for key, _, _ in ROWS)
    for key, unit, how in ROWS:
        value = result.get(key, "-")
        lines.append(f"  {key:<{width}}  {value!s:>9} {unit:<6}  {how}")
    sizes = ", ".join(f"{name} {size:g}" for name, size in sorted(result.get("image_sizes_mb", {}).items()))
    lines.append(f"  {'image_sizes_mb':<{width}}  {sizes}")
    lines.append(
        f"  samples: executor {result.get('executor_runs')}, interpreter {result.get('interpreter_runs')}, "
        f"docker run {result.get('docker_runs')} (+ as many through the API), throughput "
        f"{result.get('throughput_jobs')} jobs per concurrency, policy {result.get('policy_pack_starts')} "
        f"pack start(s) on {result.get('policy_stack')} ({result.get('policy_resources')} resources), "
        f"mocks {result.get('mocks_passes')} passes"
    )
    variants = result.get("variants") or {}
    if variants:
        lines.append(
            f"variants (two copies of executor-0 each, interleaved with the stack's own ({REFERENCE}): "
            f"p50 / p95 / p99 ms, job p50 / p95 ms, jobs/s at c{VARIANT_CONCURRENCY}, p50 / floor"
        )
        for label, figures in variants.items():
            lines.append(
                f"  {label:<{width}}  {figures['p50_ms']} / {figures['p95_ms']} / {figures['p99_ms']}, "
                f"{figures['job_p50_ms']} / {figures['job_p95_ms']}, "
                f"{figures[f'jobs_per_s_c{VARIANT_CONCURRENCY}']}, {figures['vs_interpreter']}x"
            )
    lines.append("aims:")
    for aim, verdict in result["aims"].items():
        lines.append(
            f"  [{'met' if verdict['met'] else 'MISSED':>6}] {aim}: {verdict['value']} (target {verdict['target']})"
        )
    if result.get("policy_diagnostics"):
        lines.append(
            f"note: the pack reported {len(result['policy_diagnostics'])} diagnostic(s) on "
            f"{result.get('policy_stack')}: {result['policy_diagnostics'][:3]}"
        )
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------------


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny samples (figures mean nothing)")
    parser.add_argument(
        "--executor-image",
        action="append",
        default=[],
        metavar="LABEL=IMAGE",
        help="also measure copies of the stack's executor running IMAGE (e.g. a build without "
        "one of its containment features), reported as LABEL; repeatable",
    )
    parser.add_argument(
        "--no-variants",
        action="store_true",
        help=f"skip the setting variants ({', '.join(label for label, _ in SETTING_VARIANTS)})",
    )
    args = parser.parse_args()
    samples = QUICK if args.quick else FULL
    variants = () if args.no_variants else tuple(Variant(label, env) for label, env in SETTING_VARIANTS)
    for spec in args.executor_image:
        label, _, image = spec.partition("=")
        if not label or not image:
            parser.error(f"--executor-image {spec!r}: give LABEL=IMAGE")
        variants += (Variant(label, {}, image),)

    from harness.engine import engine_problem
    from harness.images import ImageBuildError, require_base_image

    problem = engine_problem()
    if problem is not None:
        print(f"bench: {problem}. Fix: start the Docker engine (dockerd)", file=sys.stderr)
        return 2
    if toolchain_problem() is not None:
        print(f"bench: {toolchain_problem()}", file=sys.stderr)
        return 2
    client = docker_client()
    try:
        require_base_image(client)
    except ImageBuildError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, _interrupt)  # a stopped run still removes what it created
    machine = {
        "cpus": os.cpu_count(),
        "docker_engine": client.version()["Version"],
        "load_average_start": [_r(v) for v in os.getloadavg()],
    }
    scratch = Path(tempfile.mkdtemp(prefix="opencode-sandbox-bench-"))
    scratch.chmod(0o755)  # the roles' non-root users must reach the stack's directories below it
    try:
        measure.remove_oneshots(client)
        figures = run(samples, client, scratch, variants)
    except (BenchError, PulumiError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        # Whatever an interrupted or failed run left; a clean run leaves nothing for these to find.
        remove_stack(client, BENCH_STACK, log)
        if measure.remove_oneshots(client):
            log("removed leftover one-job containers or variant executors")
        shutil.rmtree(scratch, ignore_errors=True)
    machine["load_average_end"] = [_r(v) for v in os.getloadavg()]
    result = {"mode": "quick" if args.quick else "full", "machine": machine, **figures, "aims": aims(figures)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
