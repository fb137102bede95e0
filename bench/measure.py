"""What ``bench/run.py`` measures. Each function returns raw samples (or totals), never a verdict.

Every clock is ``time.perf_counter`` in the process that does the work: on the host for ``docker
run``, the stack, the program and the policy pack; inside the workspace container for the executor
API (bench/client.py) and inside an executor for the interpreter floor. It starts
right before the first byte of work and stops once the result has been read and checked; a result
that is not ``print(1)``'s ``1`` is a :class:`BenchError` (a broken benchmark, never a slow one).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from harness.program import STACKS, DeclaredStack, developer_machine, run_program

JOB_OUTPUT = "1\n"
#: The code of every job (bench/client.py sends the same to the executor API).
PYTHON_ARGV = ["python3", "-c", "print(1)"]
#: Marks the one-job containers of the docker-run baseline (to find leftovers).
ONESHOT_LABEL = "opencode-sandbox.bench"


class BenchError(RuntimeError):
    """A measurement could not be taken; the message says what went wrong."""


def summary(samples: Sequence[float]) -> dict[str, float]:
    """n, p50/p95/p99 (linear interpolation between the raw samples), min, mean, max."""
    if not samples:
        raise BenchError("no samples to summarise")
    cuts = statistics.quantiles(samples, n=100, method="inclusive") if len(samples) > 1 else list(samples) * 99
    return {
        "n": len(samples),
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
        "min": min(samples),
        "mean": statistics.fmean(samples),
        "max": max(samples),
    }


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# --- the executor API, from the workspace ----------------------------------------------------------

CLIENT_SOURCE_FILE = Path(__file__).with_name("client.py")


def _exec_json(client, container: str, argv: list[str], what: str):
    """``docker exec`` of ``argv`` in ``container`` (its user, seccomp profile and limits); its stdout as JSON."""
    exec_id = client.api.exec_create(container, argv)
    stdout, stderr = client.api.exec_start(exec_id, demux=True)
    code = client.api.exec_inspect(exec_id)["ExitCode"]
    if code != 0:
        raise BenchError(f"{what} in {container} exited {code}: {(stderr or b'').decode(errors='replace')[-2000:]}")
    return json.loads(stdout)


def workspace_client(client, workspace: str, request: dict) -> dict:
    """Run bench/client.py with ``request`` inside the ``workspace`` container; its JSON answer.

    Its clocks run there: the host has no address on the executor network to reach an executor from.
    """
    argv = ["python3", "-I", "-c", CLIENT_SOURCE_FILE.read_text(), json.dumps(request)]
    return _exec_json(client, workspace, argv, f"the executor client ({request['mode']})")


# --- the floor: a bare interpreter start inside a running executor ------------------------------

# Runs inside the executor container (its service's Python, PYTHONPATH has executor_service), so
# the child gets exactly a job's interpreter and environment; only the launcher and the HTTP
# service are left out. Each sample is one fork/exec/wait of `python3 -c print(1)` with its output.
_FLOOR_DRIVER = r"""
import json, shutil, subprocess, sys, time
from pathlib import Path
from executor_service.runner import JOB_PATH, job_environment
runs, warmup, code = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
argv, env = [shutil.which("python3", path=JOB_PATH), "-c", code], job_environment(Path("/tmp"))
samples = []
for index in range(warmup + runs):
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd="/tmp")
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0 or done.stdout != b"1\n":
        sys.exit(f"{argv} gave exit {done.returncode}, stdout {done.stdout!r}, stderr {done.stderr!r}")
    if index >= warmup:
        samples.append(elapsed)
print(json.dumps(samples))
"""


def interpreter_floor(client, container: str, runs: int, warmup: int) -> list[float]:
    """ms per bare ``python3 -c 'print(1)'`` fork/exec, timed inside ``container`` (as its user, seccomp, limits)."""
    argv = ["python3", "-c", _FLOOR_DRIVER, str(runs), str(warmup), "print(1)"]
    return _exec_json(client, container, argv, "the interpreter-floor loop")


# --- what each containment feature of a job costs, measured alone inside a running executor ------------

# Runs inside the executor container (its user, seccomp profile and limits, as the floor's driver). Three
# costs, each the median of alternating rounds: (1) job-launch's stacked seccomp filter, per system call it
# names: a loop of getrlimit() (prlimit64, which it inspects) under job-launch against the same loop
# without it (the container's profile alone). Calls it does not name cost nothing: the kernel caches, per
# system call, that a filter allows it whatever its arguments, and skips it. (2) The nested, scoped
# Landlock domain a forked job enters: landlock_create_ruleset + landlock_restrict_self + close, timed in
# children of a process job-launch started. (3) job-launch itself per cold start (exec, limits,
# oom_score_adj, Landlock rules, filter): `job-launch ... -- /bin/true` against `/bin/true`.
_CONTAINMENT_DRIVER = r"""
import ctypes, json, os, statistics, subprocess, sys, time
rounds = int(sys.argv[1])
launcher = "/opt/executor/bin/job-launch"
def launched(argv):
    return [launcher, "64", "61", "1024", "0", "-w", "/tmp", "--", *argv]
loop = ("import resource, time\nn = 200000\nt = time.perf_counter_ns()\nfor _ in range(n):\n"
        "    resource.getrlimit(resource.RLIMIT_NOFILE)\nprint((time.perf_counter_ns() - t) / n)")
domain = (
    "import ctypes, os, time\nsyscall = ctypes.CDLL(None).syscall\nsyscall.restype = ctypes.c_long\n"
    "attr = (ctypes.c_uint64 * 3)(0, 0, 3)\nsyscall(39)\nsamples = []\n"
    "for _ in range(200):\n"
    "    r, w = os.pipe()\n"
    "    if os.fork() == 0:\n"
    "        ok, spent = True, 0\n"
    "        for _ in range(2):  # the second: without the first's copy-on-write faults of this code path\n"
    "            t = time.perf_counter_ns()\n"
    "            fd = syscall(444, attr, 24, 0)\n"
    "            ok = ok and fd >= 0 and syscall(446, fd, 0) == 0\n"
    "            os.close(fd)\n"
    "            spent = (time.perf_counter_ns() - t) / 1000\n"
    "        os.write(w, str(spent if ok else -1).encode())\n"
    "        os._exit(0)\n"
    "    os.close(w)\n    samples.append(float(os.read(r, 64)))\n    os.close(r)\n    os.wait()\n"
    "samples.sort()\nprint(samples[len(samples) // 2])")
def number(argv):
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{argv[-1][:40]!r}: exit {done.returncode}, {done.stderr[-500:]}")
    return float(done.stdout)
def spawn_us(argv):
    started = time.perf_counter_ns()
    subprocess.run(argv, check=True)
    return (time.perf_counter_ns() - started) / 1000
filtered, plain, domains, launches, bare = [], [], [], [], []
for _ in range(rounds):
    filtered.append(number(launched([sys.executable, "-S", "-c", loop])))
    plain.append(number([sys.executable, "-S", "-c", loop]))
    domains.append(number(launched([sys.executable, "-S", "-c", domain])))
    for _ in range(20):
        launches.append(spawn_us(launched(["/bin/true"])))
        bare.append(spawn_us(["/bin/true"]))
if min(domains) < 0:
    sys.exit("the scoped Landlock domain could not be entered (Landlock ABI < 6?)")
median = statistics.median
print(json.dumps({"filter_ns_per_syscall": median(filtered) - median(plain), "syscall_ns": median(plain),
                  "nested_domain_us": median(domains), "launcher_us": median(launches) - median(bare)}))
"""


def containment_costs(client, container: str, rounds: int) -> dict[str, float]:
    """The costs of job-launch's seccomp filter, a forked job's nested Landlock domain and job-launch itself,
    timed inside ``container`` (see _CONTAINMENT_DRIVER)."""
    return _exec_json(
        client, container, ["python3", "-c", _CONTAINMENT_DRIVER, str(rounds)], "the containment-cost loop"
    )


# --- the baseline: one hardened `docker run --rm` per job ----------------------------------------


@dataclass(frozen=True)
class OneShotPlan:
    """A one-job container: docker SDK ``create_container`` keywords and ``create_host_config`` keywords."""

    name: str
    image: str
    create: dict[str, Any]
    host_config: dict[str, Any]


def oneshot_plan(inspected: dict[str, Any], name: str) -> OneShotPlan:
    """The stack's executor container as the engine runs it (``docker inspect``), turned into a one-job one.

    Same image, user, read-only root, capabilities, no-new-privileges, seccomp profile, cgroupns,
    memory/CPU/nproc limits, tmpfs and logging; no network, restart policy, healthcheck, service or
    environment: it runs ``python3 -c 'print(1)'`` and exits.
    """
    host_config = {"network_mode": "none", **_hardening(inspected["HostConfig"])}
    return OneShotPlan(
        name=name,
        image=inspected["Image"],
        host_config={k: v for k, v in host_config.items() if v not in (None, [], {})},
        create={
            "name": name,
            "command": PYTHON_ARGV,
            "user": inspected["Config"].get("User") or "",
            "labels": {ONESHOT_LABEL: "oneshot"},
        },
    )


def _hardening(host: dict[str, Any]) -> dict[str, Any]:
    """What a container of the stack is confined and limited by, from its ``docker inspect`` HostConfig."""
    return {
        "read_only": bool(host.get("ReadonlyRootfs")),
        "cap_drop": host.get("CapDrop") or [],
        "cap_add": host.get("CapAdd") or [],
        "security_opt": host.get("SecurityOpt") or [],
        "dns": host.get("Dns") or [],
        "dns_opt": host.get("DnsOptions") or [],
        "dns_search": host.get("DnsSearch") or [],
        "cgroupns": host.get("CgroupnsMode") or None,
        "mem_limit": host.get("Memory") or None,
        "memswap_limit": host.get("MemorySwap") or None,
        "nano_cpus": host.get("NanoCpus") or None,
        "ulimits": host.get("Ulimits") or [],
        "tmpfs": host.get("Tmpfs") or {},
        "log_config": host.get("LogConfig"),
        "init": bool(host.get("Init")),
        "privileged": bool(host.get("Privileged")),
    }


def variant_plan(
    inspected: dict[str, Any], name: str, uid: int, environment: dict[str, str], image: str | None = None
) -> OneShotPlan:
    """A long-running copy of the stack's executor (``docker inspect``) for comparing settings or builds
    side by side: the same hardening, limits, mounts, network and environment but ``environment``'s
    changes, its own UID (the nproc ulimit counts per UID), and optionally another image."""
    from docker.types import Mount

    config, host = inspected["Config"], inspected["HostConfig"]
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    env.update(environment)
    gid = (config.get("User") or f"{uid}:{uid}").partition(":")[2] or str(uid)
    mounts = [
        Mount(target=m["Target"], source=m["Source"], type=m["Type"], read_only=bool(m.get("ReadOnly")))
        for m in host.get("Mounts") or []
    ]
    network = next(iter(inspected["NetworkSettings"]["Networks"]))  # an executor's only network
    host_config = {"network_mode": network, "mounts": mounts, **_hardening(host)}
    return OneShotPlan(
        name=name,
        image=image or inspected["Image"],
        host_config={k: v for k, v in host_config.items() if v not in (None, [], {})},
        create={"name": name, "user": f"{uid}:{gid}", "environment": env, "labels": {ONESHOT_LABEL: "variant"}},
    )


def start_variant(client, plan: OneShotPlan) -> str:
    """Create and start a variant executor; its id. remove_oneshots() removes it (and any left over)."""
    ident = client.api.create_container(
        image=plan.image, host_config=client.api.create_host_config(**plan.host_config), **plan.create
    )["Id"]
    client.api.start(ident)
    return ident


def docker_run_argv(plan: OneShotPlan, seccomp_file: Path) -> list[str]:
    """``docker run --rm ...`` for a one-job plan; a setting it cannot express is an error, not dropped."""
    create, host = dict(plan.create), dict(plan.host_config)
    command = create.pop("command")
    argv = [
        "docker",
        "run",
        "--rm",
        "--name",
        create.pop("name"),
        "--network",
        host.pop("network_mode"),
        "--user",
        create.pop("user"),
    ]
    for key, value in create.pop("labels").items():
        argv += ["--label", f"{key}={value}"]
    if host.pop("read_only"):
        argv.append("--read-only")
    for flag, key in (("--cap-drop", "cap_drop"), ("--cap-add", "cap_add")):
        for capability in host.pop(key, []):
            argv += [flag, capability]
    for option in host.pop("security_opt", []):
        if option.startswith("seccomp="):  # the CLI takes a profile as a file and sends its text
            seccomp_file.write_text(option[len("seccomp=") :])
            option = f"seccomp={seccomp_file}"
        argv += ["--security-opt", option]
    for flag, key in (("--dns", "dns"), ("--dns-option", "dns_opt"), ("--dns-search", "dns_search")):
        for value in host.pop(key, []):
            argv += [flag, value]
    if "cgroupns" in host:
        argv += ["--cgroupns", host.pop("cgroupns")]
    if "mem_limit" in host:
        argv += ["--memory", f"{host.pop('mem_limit')}b"]
    if "memswap_limit" in host:
        argv += ["--memory-swap", f"{host.pop('memswap_limit')}b"]
    if "nano_cpus" in host:
        argv += ["--cpus", f"{host.pop('nano_cpus') / 1e9:g}"]
    for ulimit in host.pop("ulimits", []):
        argv += ["--ulimit", f"{ulimit['Name']}={ulimit['Soft']}:{ulimit['Hard']}"]
    for path, options in host.pop("tmpfs", {}).items():
        argv += ["--tmpfs", f"{path}:{options}"]
    if "log_config" in host:
        log_config = host.pop("log_config")
        if hasattr(log_config, "type"):  # a docker.types.LogConfig
            log_config = {"Type": log_config.type, "Config": log_config.config}
        argv += ["--log-driver", log_config["Type"]]
        for key, value in (log_config.get("Config") or {}).items():
            argv += ["--log-opt", f"{key}={value}"]
    argv.append(f"--init={'true' if host.pop('init', False) else 'false'}")
    # What `docker run --rm` does anyway (or what a one-job container never has).
    for key, harmless in (("auto_remove", (False, True)), ("publish_all_ports", (False,)), ("privileged", (False,))):
        if host.pop(key, False) not in harmless:
            raise BenchError(f"docker_run_argv: {key} is set on the executor; the baseline must not drop it")
    if host.pop("restart_policy", {}).get("Name", "no") != "no":
        raise BenchError("docker_run_argv: a one-job container cannot have a restart policy (`--rm`)")
    for key, default in (("tty", False), ("stdin_open", False), ("environment", []), ("use_config_proxy", False)):
        if create.pop(key, default) != default:
            raise BenchError(f"docker_run_argv: {key} is set on the one-job container and not mapped")
    unmapped = sorted(k for k, v in {**create, **host}.items() if v)
    if unmapped:
        raise BenchError(
            f"docker_run_argv: {', '.join(unmapped)} of the executor's plan are not mapped to "
            "docker run flags; map them in bench/measure.py"
        )
    return [*argv, plan.image, *command]


def docker_run_cli(plan: OneShotPlan, seccomp_file: Path) -> float:
    """ms for one ``docker run --rm`` (the CLI: create, attach, start, wait, removal) of the plan."""
    argv = docker_run_argv(plan, seccomp_file)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    elapsed = _ms_since(started)
    if done.returncode != 0 or done.stdout != JOB_OUTPUT:
        raise BenchError(f"docker run exited {done.returncode}: stdout {done.stdout!r}, stderr {done.stderr[-1000:]!r}")
    return elapsed


def docker_run_api(client, plan: OneShotPlan) -> float:
    """ms for the same one-job container through the Engine API: create, start, wait, logs, remove."""
    started = time.perf_counter()
    ident = client.api.create_container(
        image=plan.image, host_config=client.api.create_host_config(**plan.host_config), **plan.create
    )["Id"]
    try:
        client.api.start(ident)
        status = client.api.wait(ident, timeout=120)["StatusCode"]
        output = client.api.logs(ident, stdout=True, stderr=False).decode(errors="replace")
    finally:
        client.api.remove_container(ident, force=True)  # `docker run --rm` waits for the removal too
    elapsed = _ms_since(started)
    if status != 0 or output != JOB_OUTPUT:
        raise BenchError(f"the one-job container {plan.name} exited {status} with output {output!r}")
    return elapsed


def remove_oneshots(client) -> int:
    """Remove one-job containers and variant executors (a run's, or ones an interrupted run left behind);
    how many there were."""
    leftovers = client.api.containers(all=True, filters={"label": ONESHOT_LABEL})
    for info in leftovers:
        client.api.remove_container(info["Id"], force=True)
    return len(leftovers)


# --- the program and the policy pack --------------------------------------------------------------


def mocks_all_stacks(home: Path, passes: int) -> tuple[list[float], dict[str, DeclaredStack]]:
    """Seconds per pass of ``run_program`` over every committed stack, and the last pass's declarations.

    As ``pulumi preview`` runs the program: a benchmark creates no host directory of a stack.
    """
    seconds, declared = [], {}
    with developer_machine(home):
        for _ in range(passes):
            started = time.perf_counter()
            declared = {stack: run_program(stack, preview=True) for stack in STACKS}
            seconds.append(time.perf_counter() - started)
    return seconds, declared


class PolicyFigures(TypedDict):
    first_ms: list[float]
    warm_ms: list[float]
    resources: int
    diagnostics: list[str]


def policy_evaluation(declared: DeclaredStack, pack_starts: int, warm_repeats: int) -> PolicyFigures:
    """ms to analyse every resource of ``declared`` (Analyze each, then AnalyzeStack) through the pack.

    The pack is started as the engine starts it (``python -m pulumi.policy``), ``pack_starts`` times:
    its first evaluation after each start is what one ``pulumi preview`` pays ("first_ms"); then
    ``warm_repeats`` more on the last process ("warm_ms"). The pack's start is never in the clock.
    """
    from harness.analyzer_client import Analyzer, PolicyPackProcess
    from harness.declared import ChangedStack

    stack = ChangedStack(declared)  # no change: the stack as declared
    first: list[float] = []
    warm: list[float] = []
    diagnostics: list = []
    for start in range(pack_starts):
        with PolicyPackProcess() as pack:
            analyzer = Analyzer(pack.address)
            try:
                analyzer.configure({})  # every policy at the level the pack declares, as the engine does
                for repeat in range(1 + (warm_repeats if start == pack_starts - 1 else 0)):
                    started = time.perf_counter()
                    diagnostics = stack.analyze(analyzer, everything=True)
                    (first if repeat == 0 else warm).append(_ms_since(started))
            finally:
                analyzer.close()
    return PolicyFigures(
        first_ms=first,
        warm_ms=warm,
        resources=len(declared.resources),
        diagnostics=[f"{d.level} {d.policy}: {d.message}" for d in diagnostics],
    )
