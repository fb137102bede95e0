"""The status command's reading of Docker stats and of the executors' and the egress gateway's logs.

The inputs are what the running stack produced (a ``stats(stream=False)`` sample of an executor on
Docker 20.10 with cgroup v1, ``docker logs --timestamps`` lines of the executor service and of squid).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from operate.status import (
    ContainerStatus,
    EgressStatus,
    ExecutorJobs,
    Job,
    StackStatus,
    Usage,
    cpu_cores,
    cpu_limit,
    destinations,
    egress_decisions,
    executor_jobs,
    memory_bytes,
    parse_job,
    usage,
)
from operate.status_view import NO_EGRESS, render_html, render_table

STATS = {
    "cpu_stats": {"cpu_usage": {"total_usage": 2333650079}, "system_cpu_usage": 22588620000000, "online_cpus": 2},
    "precpu_stats": {"cpu_usage": {"total_usage": 2332397701}, "system_cpu_usage": 22586620000000, "online_cpus": 2},
    "memory_stats": {
        "usage": 54362112,
        "limit": 536870912,
        "stats": {"cache": 1044480, "total_inactive_file": 1048576, "inactive_file": 1048576},
    },
    "pids_stats": {"current": 4},
}
EXECUTOR_HOST_CONFIG = {"NanoCpus": 1_000_000_000, "Memory": 536870912, "CpuQuota": 0, "CpuPeriod": 0}

EXECUTOR_LOG = """\
2026-12-01T15:01:13.851396502Z 2026-12-01 15:01:13,851 INFO executor_service.runner: Python jobs start forked by a fork server (EXECUTOR_PRESTART=fork, Landlock ABI 7)
2026-12-01T15:02:49.151000000Z 2026-12-01 15:02:49,151 INFO uvicorn.access: 127.0.0.1:52708 - "GET /health HTTP/1.0" 200
2026-12-01T15:03:16.479442903Z 2026-12-01 15:03:16,479 INFO executor_service.runner: job sh (cold start): exit 3 in 1.8 ms (stdout 3 B, stderr 0 B)
2026-12-01T15:03:17.494154942Z 2026-12-01 15:03:17,493 INFO executor_service.runner: job python (fork start): exit 137 in 1001.6 ms, timed out (stdout 0 B, stderr 0 B)
2026-12-01T15:08:49.953375744Z 2026-12-01 15:08:49,953 INFO executor_service.runner: job python (warm start): exit 0 in 40005.4 ms, truncated (stdout 1048576 B, stderr 0 B)
""".splitlines()

EGRESS_LOG = [
    "2026-12-01T15:01:13.100000000Z 2026/12/01 15:01:13| Accepting HTTP Socket connections at conn2 local=0.0.0.0:3128",
    '2026-12-01T15:03:16.200000000Z {"time":"2026-12-01T15:03:16Z","client":"192.168.176.3","method":"CONNECT",'
    '"host":"pypi.org","port":"443","status":"200","squid_status":"TCP_TUNNEL","error":"-","server":"203.0.113.80",'
    '"decision":"allowed"}',
    '2026-12-01T15:03:16.300000000Z {"time":"2026-12-01T15:03:16Z","client":"192.168.176.3","method":"GET",'
    '"host":"example.com","port":"80","status":"403","squid_status":"TCP_DENIED","error":"ERR_EGRESS_NOT_ALLOWLISTED",'
    '"server":"-","decision":"denied"}',
    '2026-12-01T15:04:00.000000000Z {"time":"2026-12-01T15:04:00Z","client":"192.168.176.3","method":"CONNECT",'
    '"host":"pypi.org","port":"443","status":"200","squid_status":"TCP_TUNNEL","error":"-","server":"203.0.113.80",'
    '"decision":"allowed"}',
    '2026-12-01T15:04:01.000000000Z {"time":"2026-12-01T15:04:01Z","client":"192.168.176.3","method":"CONNECT",'
    '"host":"files.pythonhosted.org","port":"443","status":"200","squid_status":"TCP_TUNNEL","error":"-",'
    '"server":"203.0.113.81","decision":"allowed"}',
]


def test_cpu_is_docker_arithmetic_over_the_two_samples():
    # 1,252,378 ns of CPU time while the system counted 2e9 ns over 2 CPUs: 1 s: 0.00125 CPUs busy.
    assert cpu_cores(STATS) == pytest.approx(0.001252378)


def test_cpu_needs_both_samples():
    assert cpu_cores({"cpu_stats": STATS["cpu_stats"], "precpu_stats": {}}) is None


def test_memory_leaves_the_inactive_page_cache_out():
    assert memory_bytes(STATS) == 54362112 - 1048576


def test_cgroup_v2_memory_names_are_read_too():
    v2 = {"memory_stats": {"usage": 1000, "stats": {"inactive_file": 200}}}
    assert memory_bytes(v2) == 800


def test_usage_is_against_the_containers_own_limits():
    use = usage(STATS, EXECUTOR_HOST_CONFIG)
    assert use.cpu_limit == 1.0 and use.memory_limit == 536870912 and use.pids == 4
    assert use.cpu_percent == pytest.approx(0.1252378)
    assert use.memory_percent == pytest.approx(100 * (54362112 - 1048576) / 536870912)


def test_a_cpu_quota_is_a_limit_too_and_no_limit_is_none():
    assert cpu_limit({"NanoCpus": 0, "CpuQuota": 50000, "CpuPeriod": 100000}) == 0.5
    assert cpu_limit({"NanoCpus": 0, "CpuQuota": 0, "CpuPeriod": 0}) is None
    assert Usage(0.5, None, 10, None, 1).cpu_percent is None


def test_the_per_job_line_is_parsed():
    job = parse_job(EXECUTOR_LOG[3])
    assert job == Job(
        time=datetime(2026, 12, 1, 15, 3, 17, 494154, tzinfo=UTC),
        language="python",
        start="fork",
        exit_code=137,
        duration_ms=1001.6,
        timed_out=True,
    )
    assert job.failed and job.describe() == "python exit 137 (timed out)"
    assert parse_job(EXECUTOR_LOG[1]) is None


def test_jobs_are_counted_and_the_last_failure_kept():
    jobs = executor_jobs(EXECUTOR_LOG)
    assert (jobs.jobs, jobs.failed, jobs.timed_out) == (3, 2, 1)
    assert jobs.last_failure.describe() == "python exit 137 (timed out)"
    assert jobs.last_error is None


def test_service_errors_and_start_up_refusals_are_the_last_error():
    errors = [
        *EXECUTOR_LOG,
        "2026-12-01T15:09:00.000000000Z 2026-12-01 15:09:00,000 ERROR executor_service.runner: cleanup after a "
        "job failed: x; refusing further jobs",
    ]
    assert executor_jobs(errors).last_error.message == "cleanup after a job failed: x; refusing further jobs"
    refused = ["2026-12-01T15:00:00.000000000Z executor: EXECUTOR_PROJECT_DIR /workspace is not readable by UID 20200"]
    assert executor_jobs(refused).last_error.message == "EXECUTOR_PROJECT_DIR /workspace is not readable by UID 20200"


def test_egress_decisions_are_grouped_by_destination_most_recent_first():
    records = egress_decisions(EGRESS_LOG)
    assert len(records) == 4  # squid's own start-up line is not a decision
    grouped = destinations(records)
    assert [(d.name, d.requests, d.last_time) for d in grouped["allowed"]] == [
        ("files.pythonhosted.org:443", 1, "2026-12-01T15:04:01Z"),
        ("pypi.org:443", 2, "2026-12-01T15:04:00Z"),
    ]
    [denied] = grouped["denied"]
    assert (denied.name, denied.last_status, denied.last_error) == (
        "example.com:80",
        "403",
        "ERR_EGRESS_NOT_ALLOWLISTED",
    )


def _status(egress: EgressStatus | None) -> StackStatus:
    taken = datetime(2026, 12, 1, 15, 10, tzinfo=UTC)
    containers = [
        ContainerStatus(
            "opencode-sandbox-ci-executor-0", "executor", "running", "healthy", 0, usage(STATS, EXECUTOR_HOST_CONFIG)
        ),
        ContainerStatus(
            "opencode-sandbox-ci-executor-1",
            "executor",
            "exited (2)",
            "-",
            5,
            Usage(None, 1.0, None, 536870912, None),
            last_line="executor: not readable",
        ),
    ]
    executors = {
        "opencode-sandbox-ci-executor-0": executor_jobs(EXECUTOR_LOG),
        "opencode-sandbox-ci-executor-1": ExecutorJobs(),
    }
    return StackStatus("ci", taken, containers, executors, egress)


def test_the_table_shows_usage_jobs_and_destinations():
    records = egress_decisions(EGRESS_LOG)
    text = render_table(_status(EgressStatus("opencode-sandbox-ci-egress", len(records), destinations(records))))
    lines = text.splitlines()
    assert lines[0].startswith("stack ci: 2 containers, 1 running, 1 healthy")
    row = next(line for line in lines if line.startswith("executor-0 ") and "running" in line)
    assert "0.00 CPU / 1 CPU (0%)" in row and "51 MiB / 512 MiB (10%)" in row
    assert "executor-1 last logged: executor: not readable" in text
    jobs = next(line for line in lines if line.startswith("executor-0 ") and "exit 137" in line)
    assert jobs.split()[1:4] == ["3", "2", "1"] and "15:03:17 python exit 137 (timed out)" in jobs
    assert any(line.split()[:3] == ["allowed", "pypi.org:443", "2"] for line in lines)
    assert any(
        line.split()[:2] == ["denied", "example.com:80"] and line.endswith("403 ERR_EGRESS_NOT_ALLOWLISTED")
        for line in lines
    )


def test_a_stack_without_egress_says_so_plainly():
    assert render_table(_status(None)).splitlines()[-1] == NO_EGRESS


def test_the_html_page_escapes_what_it_shows():
    records = egress_decisions(
        [
            json.dumps(
                {
                    "time": "2026-12-01T15:04:01Z",
                    "method": "GET",
                    "host": "<b>x</b>",
                    "port": "80",
                    "status": "403",
                    "error": "-",
                    "decision": "denied",
                }
            )
        ]
    )
    page = render_html(_status(EgressStatus("opencode-sandbox-ci-egress", 1, destinations(records))))
    assert page.startswith("<!doctype html>") and "&lt;b&gt;x&lt;/b&gt;:80" in page and "<b>x</b>" not in page
    assert "python exit 137 (timed out)" in page and 'style="width:10%"' in page
