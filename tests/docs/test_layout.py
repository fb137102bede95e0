"""The README's layout table names every top-level part of the tree, and names nothing that is not there."""

from __future__ import annotations

import re
import subprocess

from sandbox_model.paths import README, REPO_ROOT

#: Top-level files every Python or Pulumi project has, which the table need not explain.
SELF_EXPLANATORY = {"README.md", ".gitignore"}


def layout_paths() -> list[str]:
    """The backquoted paths in the first column of the README's `## Layout` table."""
    section = README.read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    paths = []
    for row in section.splitlines():
        if row.startswith("| `"):
            paths.extend(re.findall(r"`([^`]+)`", row.split("|")[1]))
    return paths


def tracked_top_level() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return {name.split("/")[0] + ("/" if "/" in name else "") for name in listed.stdout.split()}


def test_every_path_in_the_table_exists():
    missing = [path for path in layout_paths() if "<" not in path and not (REPO_ROOT / path.rstrip("/")).exists()]
    assert not missing, f"the README's layout table names paths that do not exist: {missing}"


def test_every_top_level_entry_is_in_the_table():
    named = {path.split("/")[0] + ("/" if "/" in path else "") for path in layout_paths()}
    stack_files = {name for name in tracked_top_level() if re.fullmatch(r"Pulumi\.[a-z0-9-]+\.yaml", name)}
    unexplained = tracked_top_level() - named - SELF_EXPLANATORY - stack_files
    assert not unexplained, f"add these to the README's layout table: {sorted(unexplained)}"


def test_the_tests_cost_classes_are_in_the_table():
    from tests.conftest import COST_CLASSES

    assert {f"tests/{name}/" for name in COST_CLASSES} <= set(layout_paths())


#: Where the docs name files of the tree (the README, the images' and the pack's READMEs, docs/).
DOCS = (
    "README.md",
    "images/executor/README.md",
    "images/seccomp/README.md",
    "policies/README.md",
    "docs/network-boundary.md",
    "scripts/toolchain/README.md",
)
TREE_PATH = re.compile(
    r"\b((?:sandbox_model|stacks|components|policies|images|operate|harness|bench|tests|scripts)"
    r"/[A-Za-z0-9_./-]*[A-Za-z0-9_])"
)


def test_every_path_the_docs_name_exists():
    missing = []
    for doc in DOCS:
        for path in TREE_PATH.findall((REPO_ROOT / doc).read_text()):
            if not (REPO_ROOT / path).exists() and not (REPO_ROOT / doc).parent.joinpath(path).exists():
                missing.append(f"{doc}: {path}")
    assert not missing, "the docs name paths that do not exist (moved or renamed?):\n" + "\n".join(missing)
