"""The README's networks table is scripts/policy-table's output, so it cannot drift from sandbox_model.topology.NETWORKS."""

from __future__ import annotations

import subprocess
import sys

from sandbox_model.paths import REPO_ROOT
from sandbox_model.roles import ALL_ROLES
from sandbox_model.topology import NETWORKS

README = REPO_ROOT / "README.md"
START, END = "<!-- network-table:start -->", "<!-- network-table:end -->"


def printed_table() -> str:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "policy-table"), "--networks"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_the_table_has_a_row_per_network_naming_its_roles():
    rows = printed_table().splitlines()[2:]
    assert [row.split(" | ")[0].strip("| `") for row in rows] == list(NETWORKS)
    for (purpose, net), row in zip(NETWORKS.items(), rows, strict=True):
        roles = {role.strip("` ") for role in row.split(" | ")[2].split(",")}
        assert roles == set(net.roles) and roles <= ALL_ROLES, purpose


def test_the_readme_section_is_exactly_the_printed_table():
    text = README.read_text()
    assert text.count(START) == 1 and text.count(END) == 1, (
        f"{README} needs the markers {START} and {END}; then run scripts/policy-table --write"
    )
    section = text.split(START, 1)[1].split(END, 1)[0]
    assert section.strip("\n") == printed_table().strip("\n"), "the table is stale: run scripts/policy-table --write"
