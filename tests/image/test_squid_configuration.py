"""squid in the built egress image accepts every configuration the program renders (`squid -k parse`)."""

from __future__ import annotations

import re

import pytest

from components.egress_proxy import render_squid_conf
from sandbox_model.destinations import Destination

EGRESS_TAG = "opencode-sandbox/egress:test"

PARSE_CASES = {
    "ci": (["pypi.org", "files.pythonhosted.org"], ()),
    "wildcards": (["*.pythonhosted.org", "files.pythonhosted.org", "pythonhosted.org", "pypi.org"], ()),
    "external-model": ([], (Destination.from_url("http://host.docker.internal:1234/v1"),)),
    "both": (
        ["registry.npmjs.org"],
        (Destination.from_url("https://models.example.com/v1"), Destination.from_url("http://10.0.0.5:8000/v1")),
    ),
    "nothing": ([], ()),
}


@pytest.fixture(scope="module")
def egress_image():
    import docker

    from harness.images import build_image

    client = docker.from_env(timeout=120)
    build_image(client, "egress", EGRESS_TAG)
    yield client
    client.close()


@pytest.mark.docker
@pytest.mark.parametrize("case", sorted(PARSE_CASES))
def test_squid_accepts_the_rendered_configuration(egress_image, case):
    """`squid -k parse` in the built image, as the gateway's user, on a read-only root."""
    allow, destinations = PARSE_CASES[case]
    script = (
        'printf "%s\\n" "$EGRESS_SQUID_CONF" > /run/squid/squid.conf && exec squid -k parse -f /run/squid/squid.conf'
    )
    container = egress_image.containers.create(
        EGRESS_TAG,
        entrypoint=["sh", "-c", script],
        user="10001:10001",
        read_only=True,
        network_mode="none",
        tmpfs={"/run/squid": "size=16m"},
        environment={"EGRESS_SQUID_CONF": render_squid_conf(allow, destinations)},
    )
    try:
        container.start()
        exit_code = container.wait(timeout=60)["StatusCode"]
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    complaints = [
        line
        for line in output.splitlines()
        if re.search(r"FATAL|ERROR|Bungled|WARNING: '|WARNING: You should remove", line)
    ]
    assert exit_code == 0 and not complaints, f"squid -k parse exited {exit_code}:\n" + "\n".join(
        complaints or output.splitlines()[-20:]
    )
