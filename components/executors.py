"""Executor containers: where the code the agent generates actually runs.

Each executor is a long-lived container running the executor service
(``images/executor``) as its PID 1, on the internal executor network only (no
route out, no other peer than the workspace), under the project's strict seccomp
profile, with its own UID so that per-UID process limits of one executor cannot
starve another. All executors share the DNS alias ``executor``; the MCP endpoint
is stateless, so any of them can serve any call.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.hardening import HardenedContainerArgs, Healthcheck, NetworkAttachment, Tmpfs, hardened_container
from sandbox_model import executor_contract as contract
from sandbox_model.bearer_gate import token_digest
from sandbox_model.destinations import PROJECT_MOUNT, SHARED_ALIAS
from sandbox_model.engine_api import ApiVersion
from sandbox_model.naming import component_type, docker_name
from sandbox_model.roles import Role
from stacks.settings import ExecutorSettings


@dataclass(frozen=True)
class ExecutorPoolArgs:
    stack: str
    settings: ExecutorSettings
    image: pulumi.Input[str]
    network: pulumi.Input[str]
    token: pulumi.Input[str]
    engine_api: ApiVersion
    #: The agent's project on the host: bound read-only at the path the agent sees it at.
    project_dir: str


class ExecutorPool(pulumi.ComponentResource):
    containers: list[docker.Container]
    container_names: list[str]
    #: The API of each executor, by its own name, inside the executor network.
    endpoints: list[str]
    #: The MCP endpoint behind the shared alias.
    mcp_url: str

    def __init__(self, name: str, args: ExecutorPoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(component_type("ExecutorPool"), name, None, opts)
        settings = args.settings
        self.containers, self.container_names, self.endpoints = [], [], []
        self.mcp_url = f"http://{SHARED_ALIAS}:{contract.PORT}{contract.MCP_PATH}"
        for index in range(settings.count):
            container_name = docker_name(args.stack, "executor", str(index))
            uid = settings.uid_base + index
            self.containers.append(
                hardened_container(
                    f"{name}-{index}",
                    HardenedContainerArgs(
                        stack=args.stack,
                        role=Role.EXECUTOR,
                        name=container_name,
                        image=args.image,
                        user=f"{uid}:{settings.gid}",
                        limits=settings.limits,
                        envs={
                            # Only what verifies the token: an executor's environment is readable by
                            # every `docker exec` in it (the healthcheck), so the token itself stays out.
                            contract.TOKEN_SHA256_ENV: pulumi.Output.secret(args.token).apply(token_digest),
                            contract.PORT_ENV: str(contract.PORT),
                            contract.DEFAULT_TIMEOUT_S_ENV: f"{settings.default_timeout_s:g}",
                            contract.MAX_TIMEOUT_S_ENV: f"{settings.max_timeout_s:g}",
                            contract.MAX_OUTPUT_BYTES_ENV: str(settings.max_output_bytes),
                            contract.MAX_SOURCE_BYTES_ENV: str(settings.max_source_bytes),
                            contract.JOB_NPROC_ENV: str(settings.job_nproc),
                            contract.PROJECT_DIR_ENV: PROJECT_MOUNT,
                            contract.TEST_COMMAND_ENV: settings.test_command,
                        },
                        # The project tools' working directory; read-only (rule executor-mounts-read-only):
                        # only the workspace writes the project.
                        mounts=[
                            docker.ContainerMountArgs(
                                type="bind", source=args.project_dir, target=PROJECT_MOUNT, read_only=True
                            )
                        ],
                        # The only place a job can write; emptied after every job.
                        tmpfs={"/tmp": Tmpfs(size_mb=settings.tmp_mb, max_inodes=settings.tmp_mb * 256)},
                        networks=[NetworkAttachment(args.network, aliases=(SHARED_ALIAS,))],
                        engine_api=args.engine_api,
                        # Static and execute-only in the image: non-dumpable, so the sweep may spare it.
                        healthcheck=Healthcheck(tests=["CMD", contract.HEALTHCHECK]),
                        # The service must be PID 1: the kernel then shields it from its jobs' signals.
                        init=False,
                        wait_timeout_s=60,
                    ),
                    pulumi.ResourceOptions(parent=self),
                )
            )
            self.container_names.append(container_name)
            self.endpoints.append(f"http://{container_name}:{contract.PORT}")
        self.register_outputs({"container_names": self.container_names, "endpoints": self.endpoints})
