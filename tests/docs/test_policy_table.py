"""The README's policy table is scripts/policy-table's output, so it cannot drift from the catalog."""

from __future__ import annotations

import subprocess
import sys

from sandbox_model.paths import REPO_ROOT
from sandbox_model.security.table import RULES

README = REPO_ROOT / "README.md"
START, END = "<!-- policy-table:start -->", "<!-- policy-table:end -->"


def printed_table() -> str:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "policy-table")], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_the_table_has_a_row_per_rule_with_its_cis_id_and_fix():
    rows = printed_table().splitlines()[2:]
    assert len(rows) == len(RULES)
    for rule, row in zip(RULES, rows, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert cells[:2] == [f"`{rule.id}`", rule.cis or ""]
        assert cells[4] == rule.fix.replace("|", "\\|")


def test_the_readme_section_is_exactly_the_printed_table():
    text = README.read_text() if README.exists() else ""
    assert text.count(START) == 1 and text.count(END) == 1, (
        f"{README} needs the markers {START} and {END}; then run scripts/policy-table --write"
    )
    section = text.split(START, 1)[1].split(END, 1)[0]
    assert section.strip("\n") == printed_table().strip("\n"), "the table is stale: run scripts/policy-table --write"
