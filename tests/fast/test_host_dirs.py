"""The host directories the stack creates, and the check that executors can enter the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.host_dirs import check_project_readable, ensure_directory
from stacks.settings import UserIds


def test_a_missing_project_is_created_enterable_by_the_executors(tmp_path):
    project = tmp_path / "a" / "project"
    ensure_directory(project, UserIds(uid=1000, gid=1000), mode=0o755)
    assert project.stat().st_mode & 0o777 == 0o755  # whatever the umask
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o755
    check_project_readable(project)


def test_other_stack_directories_stay_private(tmp_path):
    cache = tmp_path / "cache"
    ensure_directory(cache, UserIds(uid=1000, gid=1000))
    assert cache.stat().st_mode & 0o777 == 0o750


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o751, 0o754], ids=oct)
def test_a_project_the_executors_cannot_enter_is_refused_naming_the_setting_and_the_fix(tmp_path, mode):
    project = tmp_path / "project"
    project.mkdir()
    project.chmod(mode)
    with pytest.raises(ValueError, match=r"workspace.project_dir .* need o\+rx on it. Fix: chmod o\+rx"):
        check_project_readable(Path(project))
