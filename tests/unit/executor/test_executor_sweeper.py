"""Emptying scratch directories and reading the process table, on real files and processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from executor_service.sweeper import (
    CleanupFailed,
    InitSweeper,
    SessionSweeper,
    empty_directory,
    read_process_table,
    wipe,
)


def test_empty_directory_removes_everything_inside_but_not_the_directory(tmp_path):
    root = tmp_path / "scratch"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "file").write_text("x")
    (root / ".hidden").write_text("x")
    os.mkfifo(root / "fifo")
    empty_directory(root)
    assert root.is_dir()
    assert list(root.iterdir()) == []


def test_symlinks_are_removed_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    root = tmp_path / "scratch"
    root.mkdir()
    (root / "link-to-dir").symlink_to(outside)
    (root / "link-to-file").symlink_to(outside / "keep")
    empty_directory(root)
    assert list(root.iterdir()) == []
    assert (outside / "keep").read_text() == "precious"


def test_directories_made_unreadable_or_unwritable_are_removed(tmp_path):
    root = tmp_path / "scratch"
    for mode, name in ((0o000, "none"), (0o500, "readonly"), (0o300, "unlistable")):
        directory = root / name / "inner"
        directory.mkdir(parents=True)
        (directory / "f").write_text("x")
        (root / name).chmod(mode)
    empty_directory(root)
    assert list(root.iterdir()) == []


def test_nesting_deeper_than_recursion_and_path_limits_is_removed(tmp_path):
    root = tmp_path / "scratch"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    for _ in range(3000):  # about 9000 characters of path: beyond PATH_MAX and the recursion limit
        os.mkdir("dd", dir_fd=fd)
        child = os.open("dd", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(os.open("bottom", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    os.close(fd)
    empty_directory(root)
    assert list(root.iterdir()) == []


def test_many_files_in_one_directory_are_all_removed(tmp_path):
    root = tmp_path / "scratch"
    (root / "d").mkdir(parents=True)
    for i in range(5000):  # more than one unlink batch
        (root / "d" / f"f{i}").touch()
    empty_directory(root)
    assert list(root.iterdir()) == []


def test_wipe_skips_missing_directories_and_refuses_a_symlinked_one(tmp_path):
    wipe([tmp_path / "missing"])
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").touch()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(CleanupFailed, match="could not empty"):
        wipe([tmp_path / "link"])
    assert (target / "keep").exists()


def test_the_process_table_reads_names_with_spaces_and_parentheses(tmp_path):
    odd = tmp_path / "x) (y z"
    odd.symlink_to("/bin/sleep")
    child = subprocess.Popen([str(odd), "30"], start_new_session=True)
    try:
        info = read_process_table()[child.pid]
        assert info.ppid == os.getpid()
        assert info.session == child.pid
        assert info.state in "RS"
    finally:
        child.kill()
        child.wait()


def test_the_session_sweeper_ends_the_whole_session_even_reparented_members(tmp_path):
    # The job's first process starts a grandchild and exits: the grandchild is re-parented away.
    job = subprocess.Popen(
        [sys.executable, "-c", "import subprocess; print(subprocess.Popen(['sleep', '60']).pid)"],
        stdout=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    grandchild = int(job.stdout.readline())  # the grandchild keeps the pipe open: no read()
    job.wait()
    job.stdout.close()
    assert read_process_table()[grandchild].session == job.pid
    SessionSweeper().end_leftovers(job.pid)
    entry = read_process_table().get(grandchild)
    assert entry is None or entry.state == "Z"


def test_the_init_sweeper_refuses_to_exist_outside_pid_1():
    with pytest.raises(RuntimeError, match="PID 1"):
        InitSweeper()
