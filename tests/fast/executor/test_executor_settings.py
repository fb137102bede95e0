"""Settings come from EXECUTOR_* variables; a bad one stops the start with a message naming it."""

from __future__ import annotations

import typing

import pytest

from executor_service import executor_contract as contract
from executor_service.settings import (
    SERVICE_TASK_HEADROOM,
    Settings,
    SettingsError,
    check_job_nproc_fits,
    load_settings,
)
from stacks.settings import ExecutorSettings

DIGEST = "ab" * 32


def test_defaults_match_the_documented_ones():
    settings = load_settings({"EXECUTOR_TOKEN_SHA256": DIGEST})
    assert settings.port == 8080
    assert settings.default_timeout_s == 10
    assert settings.max_timeout_s == 60
    assert settings.max_output_bytes == 1024 * 1024
    assert settings.max_source_bytes == 256 * 1024
    assert settings.job_memory_mb is None
    assert str(settings.work_root) == "/tmp"
    assert (settings.prestart, settings.fork_jobs) == ("fork", 1000)


def test_values_are_read_from_the_environment():
    settings = load_settings(
        {
            "EXECUTOR_TOKEN_SHA256": DIGEST,
            "EXECUTOR_PORT": "9000",
            "EXECUTOR_DEFAULT_TIMEOUT_S": "2.5",
            "EXECUTOR_JOB_NPROC": "32",
            "EXECUTOR_JOB_MEMORY_MB": "256",
            "EXECUTOR_JOB_MEMORY_MB_UNRELATED": "x",
        }
    )
    assert (settings.port, settings.default_timeout_s, settings.job_nproc, settings.job_memory_mb) == (
        9000,
        2.5,
        32,
        256,
    )


def test_an_empty_variable_counts_as_unset():
    assert load_settings({"EXECUTOR_TOKEN_SHA256": DIGEST, "EXECUTOR_JOB_MEMORY_MB": ""}).job_memory_mb is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, "EXECUTOR_TOKEN"),
        ({"EXECUTOR_TOKEN": "short"}, "EXECUTOR_TOKEN"),
        ({"EXECUTOR_TOKEN_SHA256": DIGEST, "EXECUTOR_PORT": "http"}, "EXECUTOR_PORT"),
        ({"EXECUTOR_TOKEN_SHA256": DIGEST, "EXECUTOR_PORT": "70000"}, "EXECUTOR_PORT"),
        ({"EXECUTOR_TOKEN_SHA256": DIGEST, "EXECUTOR_MAX_OUTPUT_BYTES": "0"}, "EXECUTOR_MAX_OUTPUT_BYTES"),
        ({"EXECUTOR_TOKEN_SHA256": DIGEST, "EXECUTOR_JOB_NPROC": "1"}, "EXECUTOR_JOB_NPROC"),
        ({"EXECUTOR_TOKEN_SHA256": DIGEST, "EXECUTOR_DEFAULT_TIMEOUT_S": "90"}, "EXECUTOR_MAX_TIMEOUT_S"),
        ({"EXECUTOR_TOKEN_SHA256": DIGEST, "EXECUTOR_PRESTART": "zygote"}, "EXECUTOR_PRESTART"),
        ({"EXECUTOR_TOKEN_SHA256": DIGEST, "EXECUTOR_FORK_JOBS": "0"}, "EXECUTOR_FORK_JOBS"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(environ, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)


def test_the_error_never_echoes_the_digest():
    almost = "cd" * 31 + "zz"
    with pytest.raises(SettingsError) as refused:
        load_settings({"EXECUTOR_TOKEN_SHA256": almost})
    assert almost not in str(refused.value)


def test_the_token_itself_is_refused_in_the_environment():
    """Every `docker exec` (the healthcheck) inherits the container's environment, and jobs share its UID."""
    secret = "a-real-token-that-must-stay-out-0123456789"
    with pytest.raises(SettingsError, match="EXECUTOR_TOKEN must not be in an executor's environment") as refused:
        load_settings({"EXECUTOR_TOKEN_SHA256": DIGEST, "EXECUTOR_TOKEN": secret})
    assert secret not in str(refused.value)


def test_job_nproc_must_leave_the_service_headroom_under_the_container_limit():
    settings = load_settings({"EXECUTOR_TOKEN_SHA256": DIGEST, "EXECUTOR_JOB_NPROC": "250"})
    with pytest.raises(SettingsError, match="EXECUTOR_JOB_NPROC"):
        check_job_nproc_fits(settings, container_nproc_limit=256)
    check_job_nproc_fits(settings, container_nproc_limit=250 + SERVICE_TASK_HEADROOM)


def test_the_service_reads_exactly_the_contract_variables():
    """executor_contract.py names every variable; the service reads no other (the stack sets them by those names)."""
    named = {value for name, value in vars(contract).items() if name.endswith("_ENV")} - {contract.FORBIDDEN_TOKEN_ENV}
    assert {field.alias for field in Settings.model_fields.values()} == named
    assert typing.get_args(Settings.model_fields["prestart"].annotation) == contract.PRESTART_MODES


def test_the_stack_and_the_service_share_the_contract_defaults():
    stack, service = ExecutorSettings(), load_settings({"EXECUTOR_TOKEN_SHA256": DIGEST})
    for name in ("default_timeout_s", "max_timeout_s", "max_output_bytes", "max_source_bytes", "test_command"):
        assert getattr(stack, name) == getattr(service, name) == getattr(contract, name.upper()), name


@pytest.mark.parametrize("container_nproc", [contract.MIN_CONTAINER_NPROC, 25, 64, 256, 4096])
def test_the_stack_job_nproc_always_fits_the_service_check(container_nproc):
    """What the stack sets EXECUTOR_JOB_NPROC to passes the service's start-up check under that ulimit."""
    stack = ExecutorSettings(limits={"memory_mb": 512, "cpus": 1.0, "nproc": container_nproc})
    service = load_settings({"EXECUTOR_TOKEN_SHA256": DIGEST, "EXECUTOR_JOB_NPROC": str(stack.job_nproc)})
    check_job_nproc_fits(service, container_nproc_limit=container_nproc)
    assert stack.job_nproc <= container_nproc - SERVICE_TASK_HEADROOM


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_timeout_s", contract.MAX_TIMEOUT_S_CEILING + 1),
        ("max_output_bytes", contract.MAX_OUTPUT_BYTES_CEILING + 1),
        ("max_source_bytes", contract.MAX_SOURCE_BYTES_CEILING + 1),
    ],
)
def test_the_stack_refuses_what_the_service_would_refuse_at_start(setting, value):
    with pytest.raises(ValueError, match=setting):
        ExecutorSettings(**{setting: value})
