"""What the program writes is what pulumi-docker reads back, and what the engine can take.

The provider stores what it reads from the engine after a create and on every refresh; a value the
program spells differently is a difference (and for ``cpus`` and the healthcheck, a replacement) on
every ``pulumi up``. These tests hold every declared value of every committed stack to the
provider's read-back forms, taken from its source (kreuzwerker/terraform-provider-docker
``nanoInt64ToDecimalString``; ``time.Duration.String`` for healthcheck durations).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pulumi
import pytest

from components import hardening
from harness.engine import in_ci
from harness.program import STACKS, developer_machine, run_program
from sandbox_model.engine_api import HEALTHCHECK_START_INTERVAL, OLDEST_SUPPORTED_API
from sandbox_model.naming import LABEL_STACK
from sandbox_model.provider_forms import (
    NANOS_PER_SECOND,
    cpus_round_trip,
    go_duration,
    parse_cpus,
    parse_go_duration,
    provider_cpus,
)

#: NanoCPUs -> what the provider stores, worked through its Go (big.Rat FloatString(9), then
#: FloatString(1) when the nine-place string holds exactly nine zeros, else trailing zeros cut).
PROVIDER_CPUS = {
    1_000_000_000: "1.0",
    2_000_000_000: "2.0",
    4_000_000_000: "4.0",
    500_000_000: "0.5",
    1_250_000_000: "1.25",
    1_500_000_000: "1.5",
    250_000_000: "0.25",
    10_000_000_000: "10.",
    20_000_000_000: "20.",
    10_500_000_000: "10.5",
    50_000_000: "0.1",
    100_000_000: "0.1",
}
#: Seconds -> time.Duration.String().
GO_DURATIONS = {
    0: "0s",
    1: "1s",
    5: "5s",
    10: "10s",
    30: "30s",
    60: "1m0s",
    90: "1m30s",
    900: "15m0s",
    1800: "30m0s",
    3600: "1h0m0s",
    3725: "1h2m5s",
    0.5: "500ms",
    1.5: "1.5s",
    61.25: "1m1.25s",
}
HEALTHCHECK_DURATIONS = ("interval", "timeout", "startPeriod", "startInterval")


@pytest.mark.parametrize(("nanos", "stored"), sorted(PROVIDER_CPUS.items()))
def test_cpus_are_written_as_the_provider_reads_them(nanos, stored):
    assert provider_cpus(nanos / NANOS_PER_SECOND) == stored


@pytest.mark.usefixtures("on_developer_machine")
def test_a_cpu_count_the_provider_reads_back_differently_is_refused_by_the_settings():
    assert not cpus_round_trip(0.05)  # stored as "0.1": every refresh would differ
    with pytest.raises(Exception, match=r"executors.limits.cpus.*0.05.*read back by pulumi-docker as 0.1"):
        run_program(
            "ci", set_config={"executors": {"count": 2, "limits": {"memory_mb": 512, "cpus": 0.05, "nproc": 256}}}
        )


@pytest.mark.parametrize(("seconds", "text"), sorted(GO_DURATIONS.items()))
def test_durations_are_written_as_go_prints_them(seconds, text):
    assert go_duration(seconds) == text
    assert parse_go_duration(text) == round(seconds * NANOS_PER_SECOND)  # and read as Go reads them


def test_durations_match_go_itself(tmp_path):
    """The same vectors through Go's own time.Duration.String (Go is on every machine of ours)."""
    go = shutil.which("go")
    if go is None:
        if in_ci():
            pytest.fail("CI=true but there is no Go toolchain to check durations against")
        pytest.skip("needs the Go toolchain")
    (tmp_path / "main.go").write_text(
        'package main\nimport ("fmt"; "os"; "strconv"; "time")\n'
        "func main() { for _, a := range os.Args[1:] { f, _ := strconv.ParseFloat(a, 64); "
        "fmt.Println(time.Duration(f * float64(time.Second)).String()) } }\n"
    )
    seconds = sorted(GO_DURATIONS)
    # A build cache kept between runs (Go's cache is safe for concurrent use): a fresh one recompiles
    # the standard library, seconds of the fast loop.
    cache = os.environ.get("GOCACHE") or str(Path.home() / ".cache" / "opencode-sandbox" / "go-build")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "off", "GOCACHE": cache}
    output = subprocess.run(
        [go, "run", str(tmp_path / "main.go"), *map(str, seconds)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()
    assert output == [go_duration(value) for value in seconds]


def _containers(declared):
    return [(c.inputs["name"], c.inputs) for c in declared.containers]


@pytest.mark.parametrize("stack", STACKS)
def test_every_declared_cpus_survives_the_read_back(declared_stacks, stack):
    for name, inputs in _containers(declared_stacks[stack]):
        written = inputs["cpus"]
        assert provider_cpus(parse_cpus(written) / NANOS_PER_SECOND) == written, name


@pytest.mark.parametrize("stack", STACKS)
def test_every_declared_duration_survives_the_read_back(declared_stacks, stack):
    for name, inputs in _containers(declared_stacks[stack]):
        for key in HEALTHCHECK_DURATIONS:
            written = inputs["healthcheck"][key]
            assert go_duration(parse_go_duration(written) / NANOS_PER_SECOND) == written, (name, key)


def test_start_interval_is_sent_only_to_engines_that_have_it(developer_home):
    with developer_machine(developer_home):
        old = run_program("ci")
        new = run_program("ci", set_config={"engine": {"api_version": "1.44"}})
    assert OLDEST_SUPPORTED_API < HEALTHCHECK_START_INTERVAL.min_api == (1, 44)
    # Docker's Go client refuses any non-zero start_interval below API 1.44: "0s" is the provider's default.
    assert {inputs["healthcheck"]["startInterval"] for _, inputs in _containers(old)} == {"0s"}
    assert {inputs["healthcheck"]["startInterval"] for _, inputs in _containers(new)} == {"1s"}


def test_seccomp_builtin_needs_an_engine_that_has_it(developer_home):
    with developer_machine(developer_home):
        with pytest.raises(Exception, match=r"model.seccomp = builtin needs Docker 23.0\+.*engine.api_version = 1.41"):
            run_program("gpu", set_config={"engine": {"api_version": "1.41"}})


def test_an_engine_older_than_docker_20_10_is_refused(developer_home):
    with developer_machine(developer_home):
        with pytest.raises(Exception, match=r"engine.api_version.*1.40.*older than Docker 20.10"):
            run_program("ci", set_config={"engine": {"api_version": "1.40"}})


def test_waits_longer_than_the_providers_default_timeout_get_custom_timeouts(monkeypatch):
    """The provider cuts a create at 20 minutes whatever wait_timeout says: the create timeout covers the wait."""
    captured = {}

    def container(resource_name, opts=None, **inputs):
        captured.update(inputs=inputs, opts=opts)

    monkeypatch.setattr(hardening.docker, "Container", container)
    from sandbox_model.roles import Role
    from stacks.settings import Limits

    hardening.hardened_container(
        "model",
        hardening.HardenedContainerArgs(
            stack="s",
            role=Role.MODEL,
            name="s-model",
            image="i",
            user="1000:1000",
            limits=Limits(memory_mb=512, cpus=1, nproc=64),
            healthcheck=hardening.Healthcheck(tests=["CMD", "true"]),
            networks=[hardening.NetworkAttachment("n")],
            engine_api=OLDEST_SUPPORTED_API,
            wait_timeout_s=1800,
        ),
    )
    timeouts: pulumi.CustomTimeouts = captured["opts"].custom_timeouts
    assert captured["inputs"]["wait_timeout"] == 1800
    for timeout in (timeouts.create, timeouts.update):
        assert parse_go_duration(timeout) >= (1800 + 60) * NANOS_PER_SECOND > 20 * 60 * NANOS_PER_SECOND


@pytest.mark.parametrize("stack", STACKS)
def test_built_images_carry_their_label_under_either_builder(declared_stacks, stack):
    """BuildKit (the provider's default builder) reads `label`; the legacy builder reads `labels`."""
    built = [
        image
        for image in declared_stacks[stack].of_type("docker:index/remoteImage:RemoteImage")
        if image.inputs.get("build")
    ]
    assert built
    for image in built:
        build = image.inputs["build"]
        assert build["label"] == build["labels"] == {LABEL_STACK: stack}, image.name
